"""The invocation page draws fan-outs as a tree and step retries as retry timers, in headless
Chromium against a real ``ritornello dev`` (an app written to the test's tmp directory).

One invocation runs, through the real engine, a map of three items (one fails with a
``TerminalError`` whose message holds markup), a map that stops at its first success (the other
branches are ``not_started``), a parallel whose second branch holds a nested map, a
``ctx.child``, and a step that fails once and is retried after a durable timer. The page must
nest each branch's entries (found by ``ctx`` in the journal the admin API returns) under its
fan-out, label each branch with its name and status, show the outcome's reason, keep every
entry's global index, draw the ``sleep`` with ``retry`` as a retry timer, and render the
journal's text as text. A second invocation is left suspended inside a parallel: a finished
branch shows ``succeeded``, the waiting one ``running``, the fan-out no outcome yet.

Needs Debian's ``chromium`` and ``chromium-driver`` like tests/ui/test_ui.py (skipped locally
without them, a failure in CI).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.procs import Proc, free_port, http, wait_port, wait_until

APP = """
from datetime import timedelta

from ritornello import Context, Endpoint, Service, TerminalError

fan = Service("Fan")
_tries: dict[str, int] = {}


async def charge(ctx: Context, item: str) -> str:
    def attempt() -> str:
        if item.startswith("<"):
            raise TerminalError(f"cannot charge {item}")
        return f"charged {item}"

    return await ctx.run("charge", attempt)


async def double(ctx: Context, n: int) -> int:
    return await ctx.run("double", lambda: n * 2)


async def quote_a(ctx: Context) -> int:
    return await ctx.run("a", lambda: 1)


async def quote_b(ctx: Context) -> int:
    inner = await ctx.map("inner", [1, 2], double)
    return sum(inner.values())


async def subtotal(ctx: Context, n: int) -> int:
    return await ctx.run("sum", lambda: n + 1)


@fan.handler()
async def go(ctx: Context, name: str) -> dict:
    def flaky() -> str:
        _tries[name] = _tries.get(name, 0) + 1
        if _tries[name] == 1:
            raise ConnectionError(f"flaky {name} on try 1")
        return "ok"

    charged = await ctx.map("charge-all", ["pear", "<b>bad</b>", "fig"], charge)
    first = await ctx.map("first", ["x", "y", "z"], charge, max_concurrency=1, min_successful=1)
    quotes = await ctx.parallel("quotes", quote_a, quote_b)
    total = await ctx.child("subtotal", subtotal, 41)
    step = await ctx.run(
        "flaky", flaky, max_attempts=3, initial_retry_interval=timedelta(milliseconds=10)
    )
    return {"charged": charged.values(), "first": first.values(), "quotes": quotes.values(),
            "total": total, "step": step}


async def done_now(ctx: Context) -> int:
    return await ctx.run("now", lambda: 7)


async def hold(ctx: Context) -> int:
    _, later = ctx.awakeable()
    return await later


@fan.handler()
async def hang(ctx: Context) -> list:
    both = await ctx.parallel("wait", done_now, hold)
    return both.values()


endpoint = Endpoint([fan])
"""


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(admin URL, ingress URL) of ``ritornello dev`` serving APP, without an admin token."""
    tmp: Path = tmp_path_factory.mktemp("ui-fanout")
    app = tmp / "fanapp.py"
    app.write_text(APP)
    ingress, port = free_port(), free_port()
    args = [sys.executable, "-m", "ritornello", "dev", str(app)]
    args += ["--store", f"sqlite:///{tmp / 'fan.db'}", "--ingress-port", str(ingress)]
    args += ["--admin-port", str(port)]
    proc = Proc(args, tmp / "dev.log", env={"RITORNELLO_ADMIN_TOKEN": ""}).start()
    try:
        wait_port(port, proc.proc)
        wait_port(ingress, proc.proc)
        base = f"http://127.0.0.1:{port}"
        wait_until(lambda: http("GET", f"{base}/services")[1]["services"], 20, "deployed")
        yield base, f"http://127.0.0.1:{ingress}"
    finally:
        proc.terminate()


def _journal(base: str, invocation_id: str) -> list[dict[str, Any]]:
    status, inv, _ = http("GET", f"{base}/invocations/{invocation_id}")
    assert status == 200, inv
    return list(inv["journal"])


def _fanout_index(journal: list[dict[str, Any]], name: str) -> int:
    (index,) = [e["index"] for e in journal if e.get("child") and e["name"] == name]
    return int(index)


def _in_ctx(journal: list[dict[str, Any]], ctx: str) -> list[int]:
    return [e["index"] for e in journal if e.get("ctx") == ctx]


def test_fanouts_are_a_tree_and_retries_are_timers(
    browser: Any, dev: tuple[str, str], tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    base, ingress = dev
    wait = WebDriverWait(browser, 20)
    status, answer, headers = http("POST", f"{ingress}/restate/call/Fan/go", "ui")
    assert status == 200, answer
    assert answer == {
        "charged": ["charged pear", "charged fig"],
        "first": ["charged x"],
        "quotes": [1, 6],
        "total": 42,
        "step": "ok",
    }
    journal = _journal(base, headers["x-restate-id"])
    charge_all, first = _fanout_index(journal, "charge-all"), _fanout_index(journal, "first")
    quotes, subtotal = _fanout_index(journal, "quotes"), _fanout_index(journal, "subtotal")
    inner = _fanout_index(journal, "inner")
    (timer,) = [e for e in journal if e["kind"] == "sleep"]
    assert timer["retry"]["attempt"] == 1

    browser.get(f"{base}/ui/#/invocations/{headers['x-restate-id']}")
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#timeline li.fanout")))

    def find(css: str, root: Any = browser) -> Any:
        return root.find_element(By.CSS_SELECTOR, css)

    def find_all(css: str, root: Any = browser) -> list[Any]:
        return list(root.find_elements(By.CSS_SELECTOR, css))

    # Top level: the entries without ctx, in index order, each fan-out in its entry's place.
    top = find_all("#timeline > li:not(.tl-head)")
    assert [int(li.get_attribute("data-index")) for li in top] == [
        e["index"] for e in journal if "ctx" not in e
    ]
    # Every row keeps its global index, and every entry of the journal has exactly one row.
    rows = find_all("#timeline .entry")
    assert sorted(int(r.get_attribute("data-index")) for r in rows) == [e["index"] for e in journal]
    for r in rows:
        assert find(".num", r).text == r.get_attribute("data-index")

    def branches(fan: Any) -> list[tuple[str, str, list[int]]]:
        """(name, status, indices of the branch's own entries) of each branch of ``fan``."""
        found = []
        for b in find_all(":scope > details > ol > li.branch", fan):
            own = find_all(":scope > details > ol > .entry, :scope > details > ol > .fanout", b)
            indices = [int(x.get_attribute("data-index")) for x in own]
            found.append((find(".branch-name", b).text, find(".badge", b).text, indices))
        return found

    # The map: three branches with their entries, the failed one failed, the outcome's reason.
    fan = find(f'#timeline > li.fanout[data-index="{charge_all}"]')
    assert fan.get_attribute("data-child") == "map"
    head = find(":scope > details > summary", fan)
    assert find(".kind.fan", head).text == "map" and "3 branches" in head.text
    assert "all_completed · 2 succeeded · 1 failed" in head.text
    assert branches(fan) == [
        (f"charge-all[{i}]", status, _in_ctx(journal, f"{charge_all}/{i}"))
        for i, status in enumerate(["succeeded", "failed", "succeeded"])
    ]
    failed = find("li.branch[data-branch='1'] > details > summary", fan)
    assert "cannot charge <b>bad</b>" in failed.text  # journal text stays text
    assert not find_all("#timeline b, #timeline img, #timeline script")
    (outcome,) = find_all(":scope > details > ol > li.fanout-outcome", fan)
    assert outcome.get_attribute("data-index") == str(*_in_ctx(journal, str(charge_all)))
    assert "all_completed" in outcome.text

    # A map that stopped at its first success: with max_concurrency=1 no other branch started.
    (decided,) = [e for e in journal if e.get("ctx") == str(first)]
    statuses = [item["status"] for item in decided["value"]["items"]]
    assert statuses == ["succeeded", "not_started", "not_started"], statuses
    fan = find(f'#timeline > li.fanout[data-index="{first}"]')
    assert [(n, s) for n, s, _ in branches(fan)] == [
        (f"first[{i}]", status) for i, status in enumerate(statuses)
    ]
    head = find(":scope > details > summary", fan)
    assert "min_successful_reached · 1 succeeded" in head.text and "2 not started" in head.text

    # The parallel: branches named i:fn; the second holds the nested map and its branches.
    fan = find(f'#timeline > li.fanout[data-index="{quotes}"]')
    assert [(n, s) for n, s, _ in branches(fan)] == [
        ("0:quote_a", "succeeded"),
        ("1:quote_b", "succeeded"),
    ]
    assert branches(fan)[1][2] == _in_ctx(journal, f"{quotes}/1")
    nested = find(f"li.branch[data-branch='1'] li.fanout[data-index='{inner}']", fan)
    assert nested.get_attribute("data-fan") == f"{quotes}/1/{inner}"
    assert branches(nested) == [
        (f"inner[{j}]", "succeeded", _in_ctx(journal, f"{quotes}/1/{inner}/{j}")) for j in (0, 1)
    ]

    # ctx.child: one branch, named like the fan-out, and its value as the outcome.
    fan = find(f'#timeline > li.fanout[data-index="{subtotal}"]')
    assert [(n, s) for n, s, _ in branches(fan)] == [("subtotal", "succeeded")]
    assert "42" in find(":scope > details > summary .outcome", fan).text

    # The step's retry: a timer between attempts 1 and 2, with the error; no plain sleep.
    row = find(f'#timeline > li.entry[data-index="{timer["index"]}"]')
    assert "retry-timer" in (row.get_attribute("class") or "")
    assert find(".kind", row).text == "retry timer"
    assert find(".name", row).text == "retry timer for step flaky after attempt 1"
    assert "ConnectionError: flaky ui on try 1" in find(".outcome", row).text
    assert "sleep" not in [k.text for k in find_all("#timeline .entry .kind")]
    _shot(browser, tmp_path, "fanout")

    # Fan-outs and branches fold.
    fan = find(f'#timeline > li.fanout[data-index="{charge_all}"]')
    branch_row = find("li.branch > details > summary", fan)
    assert branch_row.is_displayed()
    find(":scope > details > summary", fan).click()
    wait.until(lambda _: not branch_row.is_displayed())
    find(":scope > details > summary", fan).click()
    wait.until(lambda _: branch_row.is_displayed())

    # Still running: a finished branch is succeeded from its own result, the other running.
    status, answer, _ = http("POST", f"{ingress}/restate/send/Fan/hang")
    assert status == 202, answer
    hang_id = answer["invocationId"]
    wait_until(
        lambda: http("GET", f"{base}/invocations/{hang_id}")[1]["status"] == "suspended",
        20,
        "hang suspended",
    )
    browser.get(f"{base}/ui/#/invocations/{hang_id}")
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#timeline li.fanout")))
    fan = find("#timeline > li.fanout")
    assert [(n, s) for n, s, _ in branches(fan)] == [
        ("0:done_now", "succeeded"),
        ("1:…", "running"),
    ]
    assert "running…" in find(":scope > details > summary .outcome", fan).text
    assert not find_all(":scope > details > ol > li.fanout-outcome", fan)
    _shot(browser, tmp_path, "fanout-running")

    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert not errors, errors


def _shot(browser: Any, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"ui-{name}.png"
    assert browser.save_screenshot(str(path))
    print(f"screenshot: {path}")
