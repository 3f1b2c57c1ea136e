"""``ritornello limits list|show|set|delete`` against a real ``ritornello dev`` serving a handler
whose one step holds a permit of limit ``gate`` until the test creates a file, with a limit in
``ritornello.toml`` beside it: the figures follow the invocations holding and waiting, a bad
value is the server's 400 in one line, and deleting asks first and is refused while permits
are out. ``limited_dev`` also serves the UI test (tests/ui/test_limits_page.py)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ritornello.cli import app
from tests.cli.conftest import INGRESS_TOKEN, TOKEN, Dev
from tests.procs import Proc, free_port, http, wait_port, wait_until

#: The app ``ritornello dev`` serves: Gated/hold's step takes a permit of "gate" and keeps it
#: until the file named by the input exists.
GATED_APP = """
import asyncio
from pathlib import Path

from ritornello import Context, Endpoint, Service

gated = Service("Gated")


async def _until(path: str) -> str:
    while not Path(path).exists():
        await asyncio.sleep(0.02)
    return "released"


@gated.handler()
async def hold(ctx: Context, path: str) -> str:
    return await ctx.run("hold", _until, path, limit="gate")


endpoint = Endpoint([gated])
"""

CONFIG = """
[limits.mailer]
rate = 10
per = "1m"
"""


@contextmanager
def limited_dev(tmp: Path, env: dict[str, str]) -> Iterator[tuple[str, str, Proc]]:
    """(admin URL, ingress URL, process) of ``ritornello dev`` serving ``GATED_APP`` with
    ``CONFIG``."""
    (tmp / "gatedapp.py").write_text(GATED_APP)
    (tmp / "ritornello.toml").write_text(CONFIG)
    ingress, port = free_port(), free_port()
    args = [sys.executable, "-m", "ritornello", "dev", str(tmp / "gatedapp.py")]
    args += ["--store", f"sqlite:///{tmp / 'dev.db'}", "--config", str(tmp / "ritornello.toml")]
    args += ["--ingress-port", str(ingress), "--admin-port", str(port)]
    proc = Proc(args, tmp / "dev.log", env=env).start()
    try:
        wait_port(port, proc.proc)
        wait_port(ingress, proc.proc)
        yield f"http://127.0.0.1:{port}", f"http://127.0.0.1:{ingress}", proc
    finally:
        proc.terminate()


def hold(ingress: str, release: Path, token: str | None = None) -> str:
    """Send Gated/hold (its step waits for ``release`` to exist); its invocation id."""
    headers = {"authorization": f"Bearer {token}"} if token else {}
    status, body, _ = http(
        "POST", f"{ingress}/restate/send/Gated/hold", str(release), headers=headers
    )
    assert status == 202, body
    return str(body["invocationId"])


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    tmp = tmp_path_factory.mktemp("limits")
    env = {"RITORNELLO_ADMIN_TOKEN": TOKEN, "RITORNELLO_INGRESS_TOKEN": INGRESS_TOKEN}
    with limited_dev(tmp, env) as (admin, ingress, proc):
        yield Dev(admin, ingress, proc)


def _figures(dev: Dev, name: str) -> tuple[int, int]:
    limit = dev.json("limits", "show", name)
    return limit["in_flight"], limit["waiting"]


def test_set_list_show_and_figures_of_held_and_waiting_permits(dev: Dev, tmp_path: Path) -> None:
    (mailer,) = dev.json("limits", "list")["limits"]  # ritornello.toml's
    assert mailer["source"] == "config" and mailer["rate"] == 10 and mailer["per"] == "1m"

    made = dev.run("limits", "set", "gate", "--concurrency", "1")
    assert made.exit_code == 0, made.stderr
    assert "created limit gate" in made.stderr and "concurrency" in made.stdout
    shown = dev.json("limits", "show", "gate")
    assert shown["concurrency"] == 1 and shown["source"] == "admin" and shown["version"] == 1

    release = tmp_path / "release"
    ids = [hold(dev.ingress, release, INGRESS_TOKEN) for _ in range(3)]
    wait_until(lambda: _figures(dev, "gate") == (1, 2), 20, "one holder, two waiters")
    shown = dev.json("limits", "show", "gate")
    assert shown["oldest_wait_ms"] is not None and shown["oldest_wait_ms"] >= 0
    assert shown["granted_last_minute"] == 1  # this process owns it (one orchestrator)

    listed = dev.ok("limits", "list").stdout
    row = next(line for line in listed.splitlines() if "gate" in line)
    cells = row.split()
    assert cells[:6] == ["gate", "1", "-", "admin", "1", "2"], cells
    assert cells[6].endswith("s"), cells  # the oldest wait, e.g. 312ms
    assert "10/1m" in listed and "config" in listed
    text = dev.ok("limits", "show", "gate").stdout
    for label, value in (("in flight", "1"), ("waiting", "2"), ("source", "admin")):
        assert any(line.split() == [*label.split(), value] for line in text.splitlines()), text

    # Deleting while permits are out is refused, in the CLI's words.
    line = dev.fails("limits", "delete", "gate", "--yes")
    assert "409" in line and "1 permit(s) out and 2 invocation(s) waiting" in line
    assert "--force" in line and "?force" not in line

    release.touch()

    def all_completed() -> bool:
        return {dev.json("invocations", "show", i)["status"] for i in ids} == {"succeeded"}

    wait_until(all_completed, 20, "all three completed")
    assert _figures(dev, "gate") == (0, 0)

    replaced = dev.run("limits", "set", "gate", "--rate", "50", "--burst", "10", "--json")
    assert replaced.exit_code == 0, replaced.stderr
    body = json.loads(replaced.stdout)
    assert body["concurrency"] is None  # set replaces the whole definition
    assert (body["rate"], body["per"], body["burst"], body["version"]) == (50, "1s", 10, 2)
    assert "50/1s burst 10" in dev.ok("limits", "list").stdout


def test_bad_values_are_the_servers_400_in_one_line(dev: Dev) -> None:
    line = dev.fails("limits", "set", "bad", "--concurrency", "0")
    assert line.startswith("error: 400 from PUT /limits/bad: ")
    assert "concurrency must be a whole number from 1 to 1000000" in line
    line = dev.fails("limits", "set", "bad", "--rate", "5", "--per", "2s")
    assert "400" in line and "per must be one of 1s, 1m, 1h, 1d" in line
    assert "per and burst shape a rate" in dev.fails("limits", "set", "bad", "--burst", "3")
    assert "invalid limit name" in dev.fails("limits", "set", "no spaces", "--concurrency", "1")
    assert "give --concurrency" in dev.fails("limits", "set", "bad")
    assert "404" in dev.fails("limits", "show", "bad")  # nothing was stored
    assert "not defined" in dev.fails("limits", "show", "bad")


def test_delete_asks_first_and_says_what_it_did(dev: Dev) -> None:
    dev.ok("limits", "set", "temp", "--concurrency", "2")
    kept = dev.run("limits", "delete", "temp", input="n\n")
    assert kept.exit_code == 1 and "delete limit temp?" in kept.stderr
    assert dev.json("limits", "show", "temp")["concurrency"] == 2
    assert "add --yes" in dev.fails("limits", "delete", "temp", "--json")

    gone = dev.run("limits", "delete", "temp", input="y\n")
    assert gone.exit_code == 0 and "deleted limit temp" in gone.stderr
    assert "404" in dev.fails("limits", "show", "temp")
    assert "404" in dev.fails("limits", "delete", "temp", "--yes")
    # the admin API's definition of a config limit goes; ritornello.toml's applies again
    dev.ok("limits", "set", "mailer", "--concurrency", "3")
    assert dev.json("limits", "show", "mailer")["source"] == "admin"
    assert dev.json("limits", "delete", "mailer", "--yes", "--force") == {"name": "mailer"}
    assert dev.json("limits", "show", "mailer")["source"] == "config"


def test_the_table_fits_80_columns(dev: Dev) -> None:
    """Wider than 80 columns on one line each, the headers and the burst take a second line
    and a name of up to 24 characters stays whole; a longer one folds."""
    name = "payments.stripe:eu-west"
    dev.ok("limits", "set", name, "--concurrency", "25", "--rate", "50", "--burst", "10")
    dev.ok("limits", "set", "x" * 60, "--concurrency", "1000000")
    env = {"RITORNELLO_ADMIN_URL": dev.admin, "RITORNELLO_ADMIN_TOKEN": TOKEN, "COLUMNS": "80"}
    result = CliRunner().invoke(app, ["limits", "list"], env=env)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80, result.stdout
    (row,) = [line.split() for line in lines if name in line]
    assert row == [name, "25", "50/1s", "admin", "0", "0", "-"], result.stdout
    assert any(line.split() == ["burst", "10"] for line in lines), result.stdout
    assert "1000000" in result.stdout
    dev.ok("limits", "delete", "x" * 60, "--yes")
    wide = dev.ok("limits", "list").stdout  # 200 columns: one line per limit
    assert [line.split() for line in wide.splitlines() if name in line] == [
        [name, "25", "50/1s", "burst", "10", "admin", "0", "0", "-"]
    ]


def test_call_debounces_and_sets_priority_and_limit_key(dev: Dev, tmp_path: Path) -> None:
    """``ritornello call --send --debounce``: the second send with the key replaces the first
    (409 superseded); ``--priority`` and ``--limit-key`` reach the input's headers; a priority
    out of 0-10 is refused before anything is sent."""
    released = tmp_path / "released"
    released.touch()
    args = ["call", "Gated/hold", json.dumps(str(released)), "--send", "--debounce", "30s"]
    first = dev.json(*args, "--idempotency-key", "deb")
    second = dev.json(*args, "--idempotency-key", "deb")
    assert first["invocationId"] != second["invocationId"]
    shown = dev.json("invocations", "show", first["invocationId"])
    assert shown["status"] == "failed", shown
    assert "superseded" in shown["result"]["failure"]["message"]
    assert dev.run("invocations", "cancel", second["invocationId"], "--yes").exit_code == 0
    sent = dev.json(
        "call",
        "Gated/hold",
        json.dumps(str(released)),
        "--send",
        "--priority",
        "9",
        "--limit-key",
        "cust-1",
    )
    headers = dev.json("invocations", "show", sent["invocationId"])["journal"][0]["headers"]
    assert (headers["x-ritornello-priority"], headers["x-ritornello-limit-key"]) == ("9", "cust-1")
    refused = dev.run("call", "Gated/hold", "--priority", "11")
    assert refused.exit_code == 2 and "--priority" in refused.stderr  # typer's usage error
    refused = dev.run("call", "Gated/hold", "--debounce", "5s")
    assert refused.exit_code != 0 and "--debounce goes with" in refused.stderr + refused.stdout
