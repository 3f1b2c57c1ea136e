"""``ritornello invocations export`` against a real ``ritornello dev`` process, and the export
replayed in process against the code as it was and as it is now."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ritornello import Context, Service
from ritornello.cli import app
from ritornello.testing import History, replay
from tests.procs import ROOT, Proc, free_port, http, wait_port, wait_until

from .exportapp import shipping

# the code now: a step renamed; the rest as it was
shipping_now = Service("Shipping")
NOW_RAN: list[str] = []


@shipping_now.handler(name="ship")
async def ship_now(ctx: Context, order: dict[str, object]) -> str:
    label = await ctx.run("label", lambda: f"label-{order['id']}")
    await ctx.run("email", NOW_RAN.append, "email")
    return label


class Dev:
    def __init__(self, admin: str, ingress: str) -> None:
        self.admin, self.ingress = admin, ingress
        self.runner = CliRunner()

    def cli(self, *args: str) -> Any:
        env = {"RITORNELLO_ADMIN_URL": self.admin, "RITORNELLO_ADMIN_TOKEN": "", "COLUMNS": "300"}
        return self.runner.invoke(app, list(args), env=env)

    def ship(self, order: dict[str, Any], *, send: bool = False) -> str:
        path = "send/Shipping/ship" if send else "call/Shipping/ship"
        status, _, headers = http("POST", f"{self.ingress}/restate/{path}", order)
        assert status in (200, 202), status
        return {k.lower(): v for k, v in headers.items()}["x-restate-id"]


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    tmp: Path = tmp_path_factory.mktemp("export")
    ingress, admin = free_port(), free_port()
    args = [sys.executable, "-m", "ritornello", "dev", str(ROOT / "tests/testing/exportapp.py")]
    args += ["--store", f"sqlite:///{tmp / 'dev.db'}"]
    args += ["--ingress-port", str(ingress), "--admin-port", str(admin)]
    proc = Proc(args, tmp / "dev.log").start()
    try:
        wait_port(admin, proc.proc)
        wait_port(ingress, proc.proc)
        base = f"http://127.0.0.1:{admin}"
        wait_until(lambda: http("GET", f"{base}/services")[1]["services"], 20, "registered")
        yield Dev(base, f"http://127.0.0.1:{ingress}")
    finally:
        proc.terminate()


def test_an_export_replays_against_the_code_it_ran_and_diverges_from_the_new(
    dev: Dev, tmp_path: Path
) -> None:
    inv = dev.ship({"id": "o1"})
    out = tmp_path / "o1.json"
    result = dev.cli("invocations", "export", inv, "-o", str(out))
    assert result.exit_code == 0, result.output
    assert f"wrote {inv} (succeeded, 4 entries) to {out}" in result.stderr
    doc = json.loads(out.read_text())
    assert doc["format"] == "ritornello-history" and doc["version"] == 1
    assert doc["invocation"]["id"] == inv and doc["invocation"]["result"] == {"value": "label-o1"}
    assert [(e["kind"], e.get("name")) for e in doc["journal"]] == [
        ("input", None),
        ("run", "label"),
        ("run", "notify"),
        ("output", None),
    ]
    assert replay(out, [shipping]).ok
    report = replay(out, [shipping_now])
    d = report.divergence
    assert d is not None and (d.index, d.journal_has, d.handler_did) == (
        2,
        "run 'notify'",
        "run 'email'",
    )
    assert NOW_RAN == []  # the new step never ran


def test_an_unfinished_invocation_exports_its_completions_and_says_what_comes_next(
    dev: Dev,
) -> None:
    inv = dev.ship({"id": "o2", "wait": True}, send=True)
    wait_until(
        lambda: http("GET", f"{dev.admin}/invocations/{inv}")[1]["status"] == "suspended",
        10,
        "suspended on its sleep",
    )
    result = dev.cli("invocations", "export", inv)  # to stdout
    assert result.exit_code == 0, result.output
    history = History.load(result.stdout)
    assert history.status == "suspended" and not history.finished
    report = replay(history, [shipping])
    assert report.ok and report.next == "wait on entries [2]"


def test_export_of_an_unknown_invocation_is_a_clean_error(dev: Dev, tmp_path: Path) -> None:
    result = dev.cli("invocations", "export", "inv_nope", "-o", str(tmp_path / "x.json"))
    assert result.exit_code == 1
    assert result.stderr.strip().startswith("error: 404 from GET /invocations/inv_nope")
    assert not (tmp_path / "x.json").exists()
