"""/health, /version, /cluster, /services over a real ``ritornello serve``."""

from __future__ import annotations

from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

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
    detail = spec["components"]["schemas"]["InvocationDetail"]["properties"]
    assert {"journal", "retries", "status"} <= set(detail)


def test_discovery_over_http_carries_the_schemas_to_the_service_view_and_its_openapi(
    api: Api,
) -> None:
    """The endpoint (uvicorn) answers discovery with each handler's schemas; the orchestrator
    keeps them; ``GET /services/Echo`` shows them and ``/services/Echo/openapi`` documents
    them; a body made to the documented schema is accepted at the ingress."""
    status, echo = api.admin("GET", "/services/Echo")
    assert status == 200
    handlers = {h["name"]: h for h in echo["handlers"]}
    assert handlers["say"]["input_json_schema"] == {"type": "string"}
    assert handlers["say"]["output_json_schema"] == {"type": "string"}
    tally = handlers["tally"]["input_json_schema"]
    assert tally["$defs"]["Tally"] == {
        "title": "Tally",
        "description": "Words to count.",
        "type": "object",
        "properties": {
            "words": {"type": "array", "items": {"type": "string"}},
            "min_length": {"type": "integer", "default": 1},
        },
        "additionalProperties": False,
        "required": ["words"],
    }
    status, doc = api.admin("GET", "/services/Echo/openapi")
    assert status == 200
    validate(doc)
    op = doc["paths"]["/restate/call/Echo/tally"]["post"]
    schema = op["requestBody"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/Tally"}
    body = {"words": ["a", "bb", "bb"], "min_length": 2}
    Draft202012Validator({**schema, "components": doc["components"]}).validate(body)
    assert api.call("/restate/call/Echo/tally", body)[:2] == (200, {"bb": 2})
    status, box = api.admin("GET", "/services/Box/openapi")
    assert status == 200 and "/restate/call/Box/{key}/put" in box["paths"]
    validate(box)
    assert api.admin("GET", "/services/Nope/openapi")[0] == 404
