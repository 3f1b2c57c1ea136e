"""``ritornello call`` and ``ritornello invocations ...`` against a real ``ritornello dev``."""

from __future__ import annotations

import json
import time

from tests.cli.conftest import Dev
from tests.procs import wait_until


def _status(dev: Dev, inv_id: str) -> str:
    return str(dev.json("invocations", "show", inv_id)["status"])


def test_call_then_list_and_show_with_its_timeline(dev: Dev) -> None:
    out = dev.json("call", "Greeter/greet", '"Cli"')
    assert out["output"] == "Hello, Cli!"
    inv_id = out["invocation_id"]
    assert inv_id.startswith("inv_")

    listed = dev.json("invocations", "list", "--service", "Greeter", "--status", "completed")
    assert inv_id in [i["id"] for i in listed["invocations"]]
    assert {i["service"] for i in listed["invocations"]} == {"Greeter"}

    shown = dev.json("invocations", "show", inv_id)
    assert [e["kind"] for e in shown["journal"]] == ["input", "run", "output"]
    assert shown["journal"][1]["name"] == "compose"

    table = dev.ok("invocations", "show", inv_id).stdout  # the timeline, drawn
    assert "journal (3 entries)" in table
    for text in ("input", "compose", '"Hello, Cli!"', "succeeded", "Greeter/greet"):
        assert text in table, table

    plain = dev.ok("call", "Greeter/greet", '"Again"')
    assert json.loads(plain.stdout) == "Hello, Again!"
    assert "invocation inv_" in plain.stderr


def test_call_with_a_key_and_an_idempotency_key(dev: Dev) -> None:
    first = dev.json("call", "Counter/add", "2", "--key", "idem", "--idempotency-key", "k-1")
    again = dev.json("call", "Counter/add", "2", "--key", "idem", "--idempotency-key", "k-1")
    assert first == again and first["output"] == 2  # the same invocation, not a second add
    assert dev.json("call", "Counter/get", "--key", "idem")["output"] == 2


def test_list_pages_with_a_cursor_and_all(dev: Dev) -> None:
    made = [dev.json("call", "Counter/add", "1", "--key", f"page-{n}") for n in range(3)]
    newest = [m["invocation_id"] for m in made][::-1]
    first = dev.json("invocations", "list", "--service", "Counter", "--limit", "2")
    assert [i["id"] for i in first["invocations"]] == newest[:2]  # newest first
    assert isinstance(first["next_cursor"], str)
    second = dev.json(
        "invocations", "list", "--service", "Counter", "--limit", "2",
        "--cursor", first["next_cursor"],
    )  # fmt: skip
    assert second["invocations"][0]["id"] == newest[2]
    seen = {i["id"] for i in first["invocations"]} | {i["id"] for i in second["invocations"]}
    assert len(seen) == len(first["invocations"]) + len(second["invocations"])
    every = dev.json("invocations", "list", "--service", "Counter", "--limit", "2", "--all")
    assert every["next_cursor"] is None
    assert seen <= {i["id"] for i in every["invocations"]}
    assert len(every["invocations"]) >= 4
    oldest = dev.json("invocations", "list", "--service", "Counter", "--order", "oldest", "--all")[
        "invocations"
    ]
    assert [i["id"] for i in oldest] == [i["id"] for i in every["invocations"]][::-1]
    bad = dev.run("invocations", "list", "--order", "sideways")
    assert bad.exit_code != 0 and "newest or oldest" in bad.output
    line = dev.fails("invocations", "list", "--cursor", "not-a-cursor")
    assert "400" in line and "cursor" in line


def test_list_failed_and_succeeded_apart(dev: Dev) -> None:
    result = dev.run("call", "Flaky/refuse", '"apart"')
    assert result.exit_code == 1, result.output
    ok = dev.json("call", "Greeter/greet", '"Apart"')["invocation_id"]
    failed = dev.json("invocations", "list", "--service", "Flaky", "--status", "failed", "--all")
    ids = [i["id"] for i in failed["invocations"]]
    assert len(ids) == 1 and {i["status"] for i in failed["invocations"]} == {"failed"}
    assert _status(dev, ids[0]) == "failed"
    assert _status(dev, ok) == "succeeded"
    done = dev.json("invocations", "list", "--status", "completed", "--all")["invocations"]
    assert {ids[0], ok} <= {i["id"] for i in done}  # completed: either outcome
    assert {i["status"] for i in done} <= {"succeeded", "failed"}
    table = dev.ok("invocations", "list", "--service", "Flaky", "--status", "failed").stdout
    assert ids[0] in table and "failed" in table and "succeeded" not in table


def test_send_then_pause_resume_kill_and_purge_one(dev: Dev) -> None:
    sent = dev.ok("call", "Approvals/request", "{}", "--key", "one", "--send")
    inv_id = sent.stdout.strip()
    assert inv_id.startswith("inv_")
    wait_until(lambda: _status(dev, inv_id) == "suspended", 20, "the request waits")

    assert dev.json("invocations", "pause", inv_id)["status"] == "paused"
    assert dev.json("invocations", "resume", inv_id)["status"] != "paused"
    assert "killed" in dev.ok("invocations", "kill", inv_id).stderr
    assert _status(dev, inv_id) == "killed"
    line = dev.fails("invocations", "cancel", inv_id)  # nothing left to cancel
    assert "409" in line and inv_id in line

    assert dev.json("invocations", "purge", inv_id) == {"id": inv_id}
    assert "404" in dev.fails("invocations", "show", inv_id)


def test_bulk_cancel_by_filter_with_progress(dev: Dev) -> None:
    ids = [
        dev.ok("call", "Approvals/request", "{}", "--key", f"bulk-{n}", "--send").stdout.strip()
        for n in range(3)
    ]
    wait_until(lambda: all(_status(dev, i) == "suspended" for i in ids), 20, "three requests wait")
    filters = ("--service", "Approvals", "--handler", "request", "--status", "suspended")

    refused = dev.run("invocations", "cancel", *filters, "--json")  # no --yes: nothing done
    assert refused.exit_code == 1 and "--yes" in refused.stderr
    assert all(_status(dev, i) == "suspended" for i in ids)
    asked = dev.run("invocations", "cancel", *filters, input="n\n")  # asked, and declined
    assert asked.exit_code == 1 and "3 invocation(s)?" in asked.stderr
    listing = asked.stderr.split("3 invocation(s)?")[0]  # the matches are listed before asking
    for inv_id in ids:
        assert inv_id in listing, asked.stderr
    assert "Approvals/bulk-0/request" in listing and "suspended" in listing
    assert all(_status(dev, i) == "suspended" for i in ids)

    done = dev.json("invocations", "cancel", *filters, "--yes")
    assert sorted(done["done"]) == sorted(ids) and done["failed"] == []
    for inv_id in ids:
        wait_until(lambda i=inv_id: _status(dev, i) == "succeeded", 20, f"{inv_id} cancelled")
        assert dev.json("invocations", "show", inv_id)["result"] == {"value": "rejected: cancelled"}
    again = dev.json("invocations", "cancel", *filters, "--yes")
    assert again == {"done": [], "failed": []}  # nothing matches any more

    purged = dev.ok("invocations", "purge", *ids, "--yes")  # several IDs, one progress bar
    assert "purged 3 of 3" in purged.stderr


def test_action_needs_ids_or_filters(dev: Dev) -> None:
    assert "give an invocation ID" in dev.fails("invocations", "cancel", "--yes")
    assert "not both" in dev.fails("invocations", "kill", "inv_x", "--service", "Greeter")


def test_call_errors_are_one_line(dev: Dev) -> None:
    assert "404" in dev.fails("call", "Nope/handler", "1")
    line = dev.fails("call", "Checkout/place_order", '{"items": ["durian"]}')
    assert "400" in line and "unknown items: durian" in line  # the handler's terminal error
    assert "not valid JSON" in dev.fails("call", "Greeter/greet", "not-json")
    assert "Service/handler" in dev.fails("call", "Greeter", '"x"')
    assert "404" in dev.fails("invocations", "show", "inv_doesnotexist")


def test_show_draws_the_failed_attempts(dev: Dev) -> None:
    out = dev.json("call", "Flaky/succeed_after", '{"name": "cli", "fail": 2}')
    assert out["output"] == "cli ok after 3 attempts"
    shown = dev.json("invocations", "show", out["invocation_id"])
    assert [r["attempt"] for r in shown["retries"]] == [1, 2]
    assert all("flaky failure" in r["error"] for r in shown["retries"])
    drawn = dev.ok("invocations", "show", out["invocation_id"]).stdout
    assert "retries (2)" in drawn and "flaky failure 2 of cli" in drawn


def test_list_by_creation_time(dev: Dev) -> None:
    before = dev.json("call", "Greeter/greet", '"Early"')["invocation_id"]
    time.sleep(1.2)
    after = dev.json("call", "Greeter/greet", '"Late"')["invocation_id"]
    recent = {
        i["id"] for i in dev.json("invocations", "list", "--since", "1s", "--all")["invocations"]
    }
    assert after in recent and before not in recent
    older = {
        i["id"] for i in dev.json("invocations", "list", "--until", "1s", "--all")["invocations"]
    }
    assert before in older and after not in older
    iso = {
        i["id"]
        for i in dev.json("invocations", "list", "--since", "2000-01-01T00:00:00", "--all")[
            "invocations"
        ]
    }
    assert {before, after} <= iso
    bad = dev.run("invocations", "list", "--since", "yesterday-ish")
    assert bad.exit_code != 0 and "neither an age" in bad.output


def test_restart_as_new_dry_run_and_resume_on_a_deployment(dev: Dev) -> None:
    done = dev.json("call", "Greeter/greet", '"Again"')["invocation_id"]
    report = dev.ok("invocations", "restart-as-new", done, "--from", "2", "--dry-run").stdout
    assert "matches" in report and "yes" in report and "replayed 2 entries" in report
    dry = dev.json("invocations", "restart-as-new", done, "--from", "2", "--dry-run")
    assert dry["matches"] is True and dry["kept"] == 2
    new = dev.json("invocations", "restart-as-new", done, "--from", "2", "--deployment", "latest")
    new_id = new["new_invocation_id"]
    wait_until(lambda: _status(dev, new_id) == "succeeded", 20, "the restarted invocation")
    shown = dev.json("invocations", "show", new_id)
    assert [e["kind"] for e in shown["journal"]] == ["input", "run", "output"]
    assert shown["result"] == {"value": "Hello, Again!"}
    plain = dev.ok("invocations", "restart-as-new", done)
    assert f"restarted {done} as inv_" in plain.stderr
    line = dev.fails("invocations", "restart-as-new", done, "--from", "9")
    assert "400" in line and "out of range" in line
    assert "400" in dev.fails("invocations", "restart-as-new", done, "--deployment", "dp_nope")

    sent = dev.ok("call", "Approvals/request", "{}", "--key", "moved", "--send").stdout.strip()
    wait_until(lambda: _status(dev, sent) == "suspended", 20, "the request waits")
    assert "409" in dev.fails("invocations", "restart-as-new", sent)  # not finished
    dev.ok("invocations", "pause", sent)
    line = dev.fails("invocations", "resume", sent, "--deployment", "dp_nope")
    assert "400" in line and "unknown deployment" in line
    resumed = dev.json("invocations", "resume", sent, "--deployment", "latest")
    assert resumed["status"] != "paused"
    dev.ok("invocations", "kill", sent)
