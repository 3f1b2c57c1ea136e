"""/deployments over a real ``ritornello serve``: register, list, get, and DELETE refused
(409) while unfinished invocations are pinned to the deployment unless ?force=true."""

from __future__ import annotations

from tests.admin.conftest import Api


def test_register_list_get(api: Api) -> None:
    status, body = api.admin("GET", "/deployments")
    assert status == 200
    (dep,) = body["deployments"]
    assert dep["id"] == api.deployment_id and dep["uri"] == api.endpoint.uri
    names = {s["name"] for s in dep["services"]}
    assert names == {"Box", "Echo", "Flaky"}
    assert api.admin("GET", f"/deployments/{dep['id']}") == (200, dep)
    assert api.admin("GET", "/deployments/dp_nope")[0] == 404
    status, again = api.admin("POST", "/deployments", {"uri": api.endpoint.uri})
    assert status == 201 and again["id"] == dep["id"]
    assert api.admin("POST", "/deployments", {"uri": "ftp://x"})[0] == 400
    assert api.admin("POST", "/deployments", {"uri": "x", "arn": "arn:aws:x"})[0] == 422


def test_delete_is_refused_while_invocations_are_pinned(api: Api) -> None:
    holder = api.send("/Box/pin/hold", "p")
    api.wait_status(holder, "suspended")
    status, body = api.admin("DELETE", f"/deployments/{api.deployment_id}")
    assert status == 409 and holder in body["detail"] and "force" in body["detail"]
    assert api.admin("GET", f"/deployments/{api.deployment_id}")[0] == 200  # still there
    api.admin("PATCH", f"/invocations/{holder}/kill")
    api.wait_status(holder, "killed")
    blocker = api.send("/Box/pin2/hold", "p")
    api.wait_status(blocker, "suspended")
    status, body = api.admin("DELETE", f"/deployments/{api.deployment_id}?force=true")
    assert (status, body) == (202, {"id": api.deployment_id})
    assert api.admin("GET", f"/deployments/{api.deployment_id}")[0] == 404
    assert api.admin("DELETE", f"/deployments/{api.deployment_id}")[0] == 404
    # registering it again brings the services back
    status, body = api.admin("POST", "/deployments", {"uri": api.endpoint.uri})
    assert status == 201
    assert api.admin("GET", "/services/Box")[0] == 200
