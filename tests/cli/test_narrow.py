"""With ``COLUMNS=80`` every line the operator commands print fits 80 characters: tables wrap
their cells (ids, targets, results), the journal timeline keeps its bars whole and narrows
them, and nothing is cut off silently."""

from __future__ import annotations

import json

import pytest

from tests.cli.conftest import Dev
from tests.procs import wait_until

WIDTH = 80


def _narrow(dev: Dev, *args: str) -> str:
    """``ritornello ARGS`` on an 80-column terminal; its stdout, every line checked."""
    result = dev.run(*args, columns=WIDTH)
    assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
    out = result.stdout
    assert out.strip(), args
    long = [line for line in out.splitlines() if len(line) > WIDTH]
    assert not long, "\n".join([f"{len(x)}: {x}" for x in long] + [out])
    return out


@pytest.fixture(scope="module")
def made(dev: Dev) -> dict[str, str]:
    """Invocations of every kind worth drawing: long keys and results, retries, a failure, one
    still waiting; a schedule and a limit."""
    key = "a-rather-long-object-key-" + "x" * 40
    done = dev.json("call", "Counter/add", "7", "--key", key)["invocation_id"]
    retried = dev.json("call", "Flaky/succeed_after", json.dumps({"name": "n" * 70, "fail": 2}))
    dev.run("call", "Flaky/refuse", json.dumps("why " * 30))
    waiting = dev.ok("call", "Approvals/request", "{}", "--key", key, "--send").stdout.strip()
    wait_until(
        lambda: dev.json("invocations", "show", waiting)["status"] == "suspended", 20, "waits"
    )
    dev.ok(
        "schedules", "create", "--cron", "0 3 * * *", "--target", "Counter/add",
        "--key", key, "--input", "1",
    )  # fmt: skip
    dev.ok("limits", "set", "a-long-limit-name-for-the-narrow-terminal", "--concurrency", "3")
    return {"done": done, "retried": retried["invocation_id"], "waiting": waiting}


def test_invocation_listings_fit(dev: Dev, made: dict[str, str]) -> None:
    out = _narrow(dev, "invocations", "list", "--limit", "20")
    lines = out.splitlines()
    assert lines[0].split() == ["id", "target", "status", "attempt", "created"]  # none broken
    for inv_id in made.values():  # whole ids and statuses (never cut), on their row's line
        (line,) = [x for x in lines if inv_id in x]
        assert line.split()[2] in ("succeeded", "failed", "suspended"), line
    assert {"failed", "succeeded", "suspended"} <= {x.split()[2] for x in lines[2:] if x[:1] != " "}
    failed = _narrow(dev, "invocations", "list", "--status", "failed").splitlines()
    assert failed[2].split()[2] == "failed"
    wide = dev.run("invocations", "list", "--limit", "20", columns=200).stdout
    assert "entries" in wide and "modified" in wide  # a wide terminal gets every column


@pytest.mark.parametrize("which", ["done", "retried", "waiting"])
def test_the_journal_timeline_fits(dev: Dev, made: dict[str, str], which: str) -> None:
    out = _narrow(dev, "invocations", "show", made[which])
    shown = dev.json("invocations", "show", made[which])
    assert made[which] in out and f"journal ({len(shown['journal'])} entries)" in out
    lines = out.splitlines()
    (header,) = [x for x in lines if x.split()[:2] == ["#", "kind"]]
    col = header.index("timeline")
    assert header.index("result / error") - col - 2 == 16  # the scale, narrowed from 32
    # Each entry's row starts with its index, and its bar is whole on that first line, in the
    # timeline column: the name and result cells wrap, the bar never does.
    for entry in shown["journal"]:
        (line,) = [x for x in lines if x.startswith(f"{entry['index']}  {entry['kind']} ")]
        bar = line[col : col + 16]
        assert bar.count("●") == 1 and set(bar) <= {" ", "●", "━"}, line
    assert sum(x.count("●") for x in lines) == len(shown["journal"]) + len(shown["retries"])
    if which == "retried":
        assert "retries (2)" in out and "flaky failure 2" in out
        assert [x.split()[0] for x in lines if "handler: RuntimeError" in x] == ["1", "2"]


@pytest.mark.parametrize(
    "args",
    [
        ("services", "list"),
        ("services", "show", "Checkout"),
        ("deployments", "list"),
        ("schedules", "list"),
        ("limits", "list"),
        ("limits", "show", "a-long-limit-name-for-the-narrow-terminal"),
    ],
)
def test_resource_listings_fit(dev: Dev, made: dict[str, str], args: tuple[str, ...]) -> None:
    out = _narrow(dev, *args)
    header = out.splitlines()[0].split()
    if args == ("schedules", "list"):  # headers wrap between words, never inside one
        assert header == ["id", "cron", "target", "key", "state", "last", "fire", "next", "fire"]
        assert "active" in out
    if args == ("services", "list"):
        assert header == ["service", "type", "deployment", "handlers"]
    if args == ("deployments", "list"):
        assert header == ["id", "uri", "created", "services"]
