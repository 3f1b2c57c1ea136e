"""GET /services/{svc}/state/{key} and POST /services/{svc}/state (optimistic version; refused
while an exclusive invocation holds the key), over a real ``ritornello serve``."""

from __future__ import annotations

from tests.admin.conftest import Api


def _state(api: Api, key: str) -> dict:  # type: ignore[type-arg]
    status, body = api.admin("GET", f"/services/Box/state/{key}")
    assert status == 200, body
    return dict(body)


def test_read_what_handlers_wrote(api: Api) -> None:
    empty = _state(api, "fresh")
    assert empty["state"] == {} and empty["service"] == "Box" and empty["key"] == "fresh"
    api.call("/restate/call/Box/s1/put", {"n": [1, 2]})
    got = _state(api, "s1")
    assert got["state"] == {"v": {"n": [1, 2]}}
    assert got["version"] != empty["version"]
    assert _state(api, "s1")["version"] == got["version"]  # stable while unchanged


def test_write_replaces_the_state_and_handlers_see_it(api: Api) -> None:
    api.call("/restate/call/Box/s2/put", "old")
    version = _state(api, "s2")["version"]
    body = {"object_key": "s2", "new_state": {"a": 1, "b": {"c": None}}, "version": version}
    status, answer = api.admin("POST", "/services/Box/state", body)
    assert status == 200, answer
    now = _state(api, "s2")
    assert now["state"] == {"a": 1, "b": {"c": None}}  # "v" is gone: the whole state replaced
    assert answer["version"] == now["version"] != version
    assert api.call("/restate/call/Box/s2/peek")[1] == {"a": 1, "b": {"c": None}}
    # the old version is stale now
    status, answer = api.admin("POST", "/services/Box/state", body)
    assert status == 409 and "version" in answer["detail"]
    assert _state(api, "s2")["state"] == {"a": 1, "b": {"c": None}}
    # without a version: unconditional
    status, answer = api.admin("POST", "/services/Box/state", {"object_key": "s2", "new_state": {}})
    assert status == 200 and _state(api, "s2") == {
        "service": "Box",
        "key": "s2",
        "version": answer["version"],
        "state": {},
    }
    # an exclusive handler that runs next reads the written state
    assert api.call("/restate/call/Box/s2/put", 5)[1] is None


def test_write_is_refused_while_an_exclusive_invocation_holds_the_key(api: Api) -> None:
    holder = api.send("/Box/s3/hold", "h")
    api.wait_status(holder, "suspended")
    version = _state(api, "s3")["version"]
    body = {"object_key": "s3", "new_state": {"x": 1}, "version": version}
    status, answer = api.admin("POST", "/services/Box/state", body)
    assert status == 409 and holder in answer["detail"]
    assert "x" not in _state(api, "s3")["state"]
    api.admin("PATCH", f"/invocations/{holder}/kill")
    api.wait_status(holder, "killed")
    status, answer = api.admin("POST", "/services/Box/state", body)
    assert status == 200, answer
    assert _state(api, "s3")["state"] == {"x": 1}
    # the key is free again afterwards: exclusive invocations run
    assert api.call("/restate/call/Box/s3/put", 2)[1] is None
    assert api.call("/restate/call/Box/s3/peek")[1] == {"x": 1, "v": 2}


def test_bad_requests(api: Api) -> None:
    assert api.admin("GET", "/services/Nope/state/k")[0] == 404
    status, body = api.admin("GET", "/services/Echo/state/k")
    assert status == 400 and "virtual objects" in body["detail"]
    body = {"object_key": "k", "new_state": {}}
    assert api.admin("POST", "/services/Nope/state", body)[0] == 404
    assert api.admin("POST", "/services/Echo/state", body)[0] == 400
    assert api.admin("POST", "/services/Box/state", {"new_state": {}})[0] == 422
    assert api.admin("POST", "/services/Box/state", {"object_key": "k"})[0] == 422
    bad = {"object_key": "k", "new_state": {"\u0000p:x": 1}}
    status, body = api.admin("POST", "/services/Box/state", bad)
    assert status == 400 and "reserved" in body["detail"]
