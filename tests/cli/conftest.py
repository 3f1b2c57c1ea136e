"""One ``ritornello dev tests/cli/opsapp.py`` (the examples and a flaky handler) per test
module, with an admin token, and the ``ritornello`` command run in-process (typer's CliRunner)
against it over HTTP."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from typer.testing import CliRunner

from ritornello.cli import app
from tests.procs import ROOT, Proc, free_port, http, wait_port, wait_until

TOKEN = "cli-test-token"
INGRESS_TOKEN = "cli-ingress-token"


class Dev:
    """The running dev process and a way to run CLI commands against it."""

    def __init__(self, admin: str, ingress: str, proc: Proc) -> None:
        self.admin = admin
        self.ingress = ingress
        self.proc = proc
        self.runner = CliRunner()

    def run(
        self,
        *args: str,
        token: str | None = TOKEN,
        ingress_token: str | None = INGRESS_TOKEN,
        input: str | None = None,
        columns: int = 200,
    ) -> Result:
        """``ritornello ARGS`` with the URLs (and the tokens) from the environment, on a
        terminal ``columns`` wide (by default as wide as a desktop terminal)."""
        env = {"RITORNELLO_ADMIN_URL": self.admin, "RITORNELLO_INGRESS_URL": self.ingress}
        env["COLUMNS"] = str(columns)
        env["RITORNELLO_ADMIN_TOKEN"] = token or ""
        env["RITORNELLO_INGRESS_TOKEN"] = ingress_token or ""
        return self.runner.invoke(app, list(args), env=env, input=input)

    def ok(self, *args: str) -> Result:
        result = self.run(*args)
        assert result.exit_code == 0, (result.stdout, result.stderr, result.exception)
        return result

    def json(self, *args: str) -> Any:
        """Run with ``--json``; the parsed stdout."""
        return json.loads(self.ok(*args, "--json").stdout)

    def fails(self, *args: str, **tokens: str | None) -> str:
        """Run, expect exit status 1 with one ``error:`` line; that line."""
        result = self.run(*args, **tokens)  # type: ignore[arg-type]
        assert result.exit_code == 1, (result.stdout, result.stderr, result.exception)
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        return lines[0]


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dev]:
    tmp: Path = tmp_path_factory.mktemp("cli")
    ingress, admin = free_port(), free_port()
    args = [sys.executable, "-m", "ritornello", "dev", str(ROOT / "tests" / "cli" / "opsapp.py")]
    args += ["--store", f"sqlite:///{tmp / 'dev.db'}"]
    args += ["--ingress-port", str(ingress), "--admin-port", str(admin)]
    proc = Proc(
        args,
        tmp / "dev.log",
        env={"RITORNELLO_ADMIN_TOKEN": TOKEN, "RITORNELLO_INGRESS_TOKEN": INGRESS_TOKEN},
    ).start()
    try:
        wait_port(admin, proc.proc)
        wait_port(ingress, proc.proc)
        auth = {"authorization": f"Bearer {TOKEN}"}
        wait_until(
            lambda: http("GET", f"http://127.0.0.1:{admin}/services", headers=auth)[1]["services"],
            20,
            "the app's deployment registered",
        )
        yield Dev(f"http://127.0.0.1:{admin}", f"http://127.0.0.1:{ingress}", proc)
    finally:
        proc.terminate()
