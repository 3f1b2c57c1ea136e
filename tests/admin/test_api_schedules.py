"""/schedules over a real ``ritornello serve`` (SQLite) and the admin test endpoint: create,
list, show, pause, resume, delete, the invocations a schedule fires, and bad input."""

from __future__ import annotations

from typing import Any

import pytest

from tests.admin.conftest import Api
from tests.procs import wait_until


def _create(api: Api, **body: Any) -> dict[str, Any]:
    status, answer = api.admin("POST", "/schedules", body)
    assert status == 201, answer
    return dict(answer)


def _get(api: Api, schedule_id: str) -> dict[str, Any]:
    status, answer = api.admin("GET", f"/schedules/{schedule_id}")
    assert status == 200, answer
    return dict(answer)


def test_a_schedule_fires_ordinary_invocations(api: Api) -> None:
    s = _create(api, cron="* * * * * *", target="Echo/say", input="tick")
    assert s["id"].startswith("sch_")
    assert {k: s[k] for k in ("cron", "target", "key", "input", "overlap", "timezone")} == {
        "cron": "* * * * * *",
        "target": "Echo/say",
        "key": None,
        "input": "tick",
        "overlap": "skip",
        "timezone": "UTC",
    }
    assert (s["paused"], s["last_fire_at"], s["last_invocation_id"], s["fires"]) == (
        False,
        None,
        None,
        0,
    )
    assert s["next_fire_at"] > s["created_at"]
    wait_until(lambda: _get(api, s["id"])["fires"] >= 2, 20, "two fires")
    now = _get(api, s["id"])
    inv = api.wait_status(now["last_invocation_id"], "succeeded")
    assert inv["result"] == {"value": "TICK"}
    assert inv["idempotency_key"] == f"schedule:{s['id']}:{now['last_fire_at']}"
    assert now["last_fire_at"] % 1000 == 0 and now["next_fire_at"] > now["last_fire_at"]
    status, listed = api.admin("GET", "/schedules")
    assert status == 200 and s["id"] in [x["id"] for x in listed["schedules"]]
    status, answer = api.admin("DELETE", f"/schedules/{s['id']}")
    assert (status, answer) == (200, {"id": s["id"]})


def test_an_object_schedule_runs_on_its_key(api: Api) -> None:
    s = _create(api, cron="* * * * * *", target="Box/put", key="sched", input={"n": 1})
    wait_until(lambda: _get(api, s["id"])["fires"] >= 1, 20, "a fire")
    inv = api.invocation(_get(api, s["id"])["last_invocation_id"])
    assert (inv["service"], inv["handler"], inv["key"]) == ("Box", "put", "sched")
    api.admin("DELETE", f"/schedules/{s['id']}")
    status, state = api.admin("GET", "/services/Box/state/sched")
    assert status == 200 and state["state"] == {"v": {"n": 1}}


def test_pause_resume_delete(api: Api) -> None:
    s = _create(api, cron="*/5 * * * *", target="Echo/say", input="x", overlap="allow")
    assert s["overlap"] == "allow"
    status, paused = api.admin("PATCH", f"/schedules/{s['id']}/pause")
    assert status == 200 and paused["paused"] is True and paused["next_fire_at"] is None
    status, again = api.admin("PATCH", f"/schedules/{s['id']}/pause")
    assert status == 409 and "already paused" in again["detail"]
    assert _get(api, s["id"])["paused"] is True
    status, resumed = api.admin("PATCH", f"/schedules/{s['id']}/resume")
    assert status == 200 and resumed["paused"] is False and resumed["next_fire_at"] is not None
    status, again = api.admin("PATCH", f"/schedules/{s['id']}/resume")
    assert status == 409 and "not paused" in again["detail"]
    status, answer = api.admin("DELETE", f"/schedules/{s['id']}")
    assert (status, answer) == (200, {"id": s["id"]})
    status, _ = api.admin("GET", f"/schedules/{s['id']}")
    assert status == 404
    assert s["id"] not in [x["id"] for x in api.admin("GET", "/schedules")[1]["schedules"]]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/schedules/sch_nope"),
        ("PATCH", "/schedules/sch_nope/pause"),
        ("PATCH", "/schedules/sch_nope/resume"),
        ("DELETE", "/schedules/sch_nope"),
    ],
)
def test_unknown_ids_are_404(api: Api, method: str, path: str) -> None:
    status, answer = api.admin(method, path)
    assert status == 404 and "sch_nope not found" in answer["detail"]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"cron": "61 * * * *", "target": "Echo/say"}, 400, "not valid"),
        ({"cron": "* * *", "target": "Echo/say"}, 400, "5 fields"),
        ({"cron": "* * 31 2 *", "target": "Echo/say"}, 400, "never fires"),
        ({"cron": "* * * * *", "target": "Echo/say", "timezone": "Nowhere/X"}, 400, "time zone"),
        ({"cron": "* * * * *", "target": "Nope/say"}, 404, "service Nope not found"),
        ({"cron": "* * * * *", "target": "Echo/nope"}, 404, "handler Echo/nope not found"),
        ({"cron": "* * * * *", "target": "Echo"}, 400, "Service/handler"),
        ({"cron": "* * * * *", "target": "Box/put"}, 400, "give a key"),
        ({"cron": "* * * * *", "target": "Echo/say", "key": "k"}, 400, "takes no key"),
        ({"cron": "* * * * *", "target": "Echo/say", "overlap": "queue"}, 422, "overlap"),
        ({"target": "Echo/say"}, 422, "cron"),
        ({"cron": "* * * * *", "target": "Echo/say", "colour": "blue"}, 422, "colour"),
    ],
)
def test_bad_input_is_refused_and_creates_nothing(
    api: Api, body: dict[str, Any], status: int, message: str
) -> None:
    before = api.admin("GET", "/schedules")[1]["schedules"]
    got, answer = api.admin("POST", "/schedules", body)
    assert got == status, answer
    assert message in str(answer["detail"])
    assert api.admin("GET", "/schedules")[1]["schedules"] == before


def test_openapi_describes_the_schedules(api: Api) -> None:
    status, doc = api.admin("GET", "/openapi.json")
    assert status == 200
    paths = doc["paths"]
    assert set(paths["/schedules"]) == {"get", "post"}
    assert set(paths["/schedules/{schedule_id}"]) == {"get", "delete"}
    assert "patch" in paths["/schedules/{schedule_id}/pause"]
    assert "patch" in paths["/schedules/{schedule_id}/resume"]
    post = paths["/schedules"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/CreateSchedule"
    )
    assert {"201", "400", "404", "422"} <= set(post["responses"])
    schedule = doc["components"]["schemas"]["Schedule"]["properties"]
    assert {"id", "cron", "next_fire_at", "last_fire_at", "skipped", "missed"} <= set(schedule)
