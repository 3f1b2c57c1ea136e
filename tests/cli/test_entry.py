"""The ``ritornello`` command as a new user meets it: ``--version``, a missing ``server`` extra,
a port in use, and the help text."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

from ritornello.cli import app
from tests.procs import ROOT


def _ritornello(
    *args: str, missing: str | None = None, cwd: Path
) -> subprocess.CompletedProcess[str]:
    """``ritornello ARGS`` in a process (through ``main``), with module ``missing`` made
    unimportable as if the extra that brings it were not installed."""
    hide = f"sys.modules[{missing!r}] = None; " if missing else ""
    code = f"import sys; {hide}sys.argv = ['ritornello', *sys.argv[1:]]; "
    code += "from ritornello.cli import main; main()"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "COLUMNS": "100"}
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, cwd=cwd,
        timeout=60,
    )  # fmt: skip


def test_version_prints_the_installed_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"ritornello {version('ritornello')}"


@pytest.mark.parametrize(
    ("missing", "args"),
    [
        ("uvicorn", ("serve", "--store", "sqlite:///x.db", "--ingress-port", "0")),
        ("typer", ("invocations", "list")),
    ],
)
def test_a_missing_server_extra_names_it(
    missing: str, args: tuple[str, ...], tmp_path: Path
) -> None:
    result = _ritornello(*args, missing=missing, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "pip install 'ritornello[server]'" in result.stderr
    assert missing in result.stderr


def test_another_missing_module_is_not_blamed_on_the_extra(tmp_path: Path) -> None:
    app_file = tmp_path / "app.py"
    app_file.write_text("import no_such_module_anywhere\n")
    result = _ritornello("dev", str(app_file), "--store", "sqlite:///x.db", cwd=tmp_path)
    assert result.returncode != 0
    assert "ritornello[server]" not in result.stderr


@pytest.mark.parametrize("flag", ["--ingress-port", "--admin-port"])
def test_a_port_in_use_names_its_flag(flag: str, tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        other = "--admin-port" if flag == "--ingress-port" else "--ingress-port"
        for command in (("serve",), ("dev", str(ROOT / "tests" / "cli" / "opsapp.py"))):
            args = (*command, "--store", f"sqlite:///{tmp_path / 'x.db'}", flag, port, other, "0")
            result = _ritornello(*args, cwd=tmp_path)
            assert result.returncode == 1, result.stderr
            lines = result.stderr.strip().splitlines()
            assert lines[-1].startswith("error: cannot listen on 127.0.0.1:" + port), lines
            assert lines[-1].endswith(f"choose another port with {flag}")
            assert "Traceback" not in result.stderr


def test_help_names_what_serve_and_store_take() -> None:
    runner = CliRunner()
    serve = runner.invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert serve.exit_code == 0
    assert "dynamodb://" in serve.stdout and "sqlite:///" in serve.stdout
    assert "<str>" not in serve.stdout and "<int>" not in serve.stdout
    store = runner.invoke(app, ["store", "--help"], env={"COLUMNS": "200"})
    assert "init" in store.stdout and "inspect" not in store.stdout


def _command_paths() -> list[tuple[str, ...]]:
    """Every command and group of the CLI, as the arguments that reach it."""
    found: list[tuple[str, ...]] = [()]

    def walk(command: Any, path: tuple[str, ...]) -> None:
        for name, sub in getattr(command, "commands", {}).items():
            found.append((*path, name))
            walk(sub, (*path, name))

    walk(typer.main.get_command(app), ())
    return found


@pytest.mark.parametrize("command", _command_paths(), ids=lambda c: " ".join(c) or "ritornello")
def test_help_shows_no_type_placeholders(command: tuple[str, ...]) -> None:
    """No ``<bool>`` beside a flag or typer's ``--help``, no ``<str>`` or ``<list[str]>``
    beside an argument whose name says it: value options and arguments read by their metavar
    (``--service SERVICE``, ``ID``), in every command's help."""
    result = CliRunner().invoke(app, [*command, "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "--help" in result.stdout
    for row in result.stdout.splitlines():
        assert not any(t in row for t in ("<bool>", "<str>", "<int>", "<float>", "<list")), row
