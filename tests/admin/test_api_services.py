"""/health, /version, /cluster, /services over a real ``ritornello serve``."""

from __future__ import annotations

from tests.admin.conftest import Api


def test_health_version_cluster(api: Api) -> None:
    assert api.admin("GET", "/health") == (200, {"status": "ok"})
    status, body = api.admin("GET", "/version")
    assert status == 200 and body["max_admin_api_version"] >= 1 and body["protocol_version"] >= 1
    status, body = api.admin("GET", "/cluster")
    assert status == 200 and body["partitions"] >= 1
    assert body["leading"] == list(range(body["partitions"]))  # alone on SQLite: all of them
    assert {m["node"] for m in body["members"]} <= {body["node"]}


def test_services_and_handlers(api: Api) -> None:
    status, body = api.admin("GET", "/services")
    assert status == 200
    by_name = {s["name"]: s for s in body["services"]}
    assert set(by_name) == {"Box", "Echo", "Flaky"}
    assert by_name["Box"]["ty"] == "VirtualObject" and by_name["Echo"]["ty"] == "Service"
    assert by_name["Box"]["deployment_id"] == api.deployment_id
    assert api.admin("GET", "/services/Box") == (200, by_name["Box"])
    status, body = api.admin("GET", "/services/Box/handlers")
    kinds = {h["name"]: h["ty"] for h in body["handlers"]}
    assert kinds == {"put": "Exclusive", "peek": "Shared", "hold": "Exclusive"}
    assert api.admin("GET", "/services/Nope")[0] == 404
    assert api.admin("GET", "/services/Nope/handlers")[0] == 404


def test_openapi_documents_every_route(api: Api) -> None:
    status, spec = api.admin("GET", "/openapi.json")
    assert status == 200
    paths = spec["paths"]
    for path, method in [
        ("/invocations", "get"),
        ("/invocations/{invocation_id}", "get"),
        ("/invocations/{invocation_id}/purge", "patch"),
        ("/invocations/{invocation_id}/restart-as-new", "patch"),
        ("/deployments/{deployment_id}", "delete"),
        ("/services/{service}/state/{key}", "get"),
        ("/services/{service}/state", "post"),
        ("/metrics", "get"),
    ]:
        op = paths[path][method]
        assert "200" in op["responses"] or "201" in op["responses"] or "202" in op["responses"]
    assert set(paths["/invocations/{invocation_id}/purge"]["patch"]["responses"]) >= {
        "200",
        "404",
        "409",
    }
    restart = paths["/invocations/{invocation_id}/restart-as-new"]["patch"]
    assert {p["name"] for p in restart["parameters"]} >= {"from", "deployment", "dry_run"}
    assert set(restart["responses"]) >= {"200", "400", "404", "409"}
    resume = paths["/invocations/{invocation_id}/resume"]["patch"]
    assert "deployment" in {p["name"] for p in resume["parameters"]}
    detail = spec["components"]["schemas"]["InvocationDetail"]["properties"]
    assert {"journal", "retries", "status"} <= set(detail)
