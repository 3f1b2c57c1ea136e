"""``--log-format json``: serve and dev write one JSON object per line on stderr, the engine's
records about an invocation carrying its id, service, handler, attempt and partition."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ritornello.cli import plain_serve
from ritornello.cli._logs import JsonFormatter
from ritornello.orchestrator import ConfigError, load_settings
from tests.procs import ROOT, Endpoint, free_port, http, wait_port, wait_until

FIELDS = ("invocation_id", "service", "handler", "attempt", "partition")


def test_log_format_is_loaded_like_every_setting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_settings().log_format == "text"
    (tmp_path / "ritornello.toml").write_text('log_format = "json"\n')
    assert load_settings().log_format == "json"
    monkeypatch.setenv("RITORNELLO_LOG_FORMAT", "text")
    assert load_settings().log_format == "text"
    assert load_settings(log_format="json").log_format == "json"
    with pytest.raises(ConfigError, match="log_format"):
        load_settings(log_format="xml")
    assert plain_serve(["serve", "--log-format", "json"]) == {"log_format": "json"}
    assert plain_serve(["serve", "--log-format=text"]) == {"log_format": "text"}


def test_a_bad_log_format_is_reported_by_typer() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ritornello", "serve", "--log-format", "xml"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 2 and "log_format" in done.stderr


def test_a_json_line_holds_the_exception_and_the_extra_fields() -> None:
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        record = logging.getLogger("x").makeRecord(
            "ritornello.engine",
            logging.ERROR,
            __file__,
            1,
            "driver of %s failed",
            ("inv_1",),
            sys.exc_info(),
            extra={"invocation_id": "inv_1", "attempt": 2},
        )
    line = JsonFormatter().format(record)
    assert "\n" not in line
    parsed = json.loads(line)
    assert parsed["message"] == "driver of inv_1 failed"
    assert parsed["level"] == "ERROR" and parsed["logger"] == "ritornello.engine"
    assert parsed["invocation_id"] == "inv_1" and parsed["attempt"] == 2
    assert "ValueError: bad\nvalue" in parsed["exception"]
    assert parsed["time"].endswith("Z")
    assert datetime.fromisoformat(parsed["time"]).tzinfo == UTC
    assert "service" not in parsed


def _lines(stderr: Path) -> list[dict[str, Any]]:
    """Every line of ``stderr``, each a JSON object with the fields every line has."""
    lines = []
    for text in stderr.read_text().splitlines():
        line = json.loads(text)  # a line that is not JSON fails the test here
        assert isinstance(line, dict), text
        assert {"time", "level", "logger", "message"} <= line.keys(), text
        assert datetime.fromisoformat(line["time"]).utcoffset() is not None, text
        lines.append(line)
    return lines


def _about(lines: list[dict[str, Any]], invocation_id: str) -> list[dict[str, Any]]:
    return [line for line in lines if line.get("invocation_id") == invocation_id]


@contextmanager
def _running(tmp: Path, *args: str) -> Iterator[tuple[str, str, Path]]:
    """``ritornello ARGS --log-format json`` on free ports, stderr apart from stdout: the
    ingress and admin URLs, and the stderr file (read once it has stopped)."""
    ingress, admin = free_port(), free_port()
    stderr = tmp / "stderr.log"
    command = [sys.executable, "-m", "ritornello", *args, "--store", f"sqlite:///{tmp / 'r.db'}"]
    command += ["--ingress-port", str(ingress), "--admin-port", str(admin), "--log-format", "json"]
    with (tmp / "stdout.log").open("wb") as out, stderr.open("wb") as err:
        proc = subprocess.Popen(command, stdout=out, stderr=err, cwd=ROOT)
    try:
        wait_port(admin, proc)
        wait_port(ingress, proc)
        yield f"http://127.0.0.1:{ingress}", f"http://127.0.0.1:{admin}", stderr
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_serve_logs_json_lines_and_a_failed_attempt_with_its_invocation(tmp_path: Path) -> None:
    endpoint = Endpoint(tmp_path, ROOT / "examples", "app").start()
    try:
        with _running(tmp_path, "serve") as (ingress, admin, stderr):
            assert http("POST", f"{admin}/deployments", {"uri": endpoint.uri})[0] in (200, 201)
            endpoint.terminate()  # down: every attempt fails
            status, sent, _ = http("POST", f"{ingress}/restate/send/Greeter/greet", "Ada")
            assert status == 202, sent
            inv_id = sent["invocationId"]
            wait_until(
                lambda: len(_about(_lines(stderr), inv_id)) >= 2,
                20,
                "two failed attempts logged",
            )
    finally:
        endpoint.terminate()
    lines = _lines(stderr)
    assert any(line["message"].startswith("ritornello serving") for line in lines)
    failed = _about(lines, inv_id)
    assert [line["attempt"] for line in failed[:2]] == [1, 2]
    for line in failed:
        assert line["level"] == "WARNING" and line["logger"] == "ritornello.engine"
        assert (line["service"], line["handler"]) == ("Greeter", "greet")
        assert isinstance(line["partition"], int)
        assert inv_id in line["message"] and "unreachable" in line["message"]
    assert any("partition" in line and "invocation_id" not in line for line in lines)


def test_dev_logs_json_lines_and_a_failed_attempt_with_its_invocation(tmp_path: Path) -> None:
    app = str(ROOT / "tests" / "cli" / "opsapp.py")
    with _running(tmp_path, "dev", app) as (ingress, _admin, stderr):
        order = {"name": "logs", "fail": 1}
        status, answer, _ = http("POST", f"{ingress}/restate/call/Flaky/succeed_after", order)
        assert (status, answer) == (200, "logs ok after 2 attempts")
    lines = _lines(stderr)
    assert any(line["message"].startswith("ritornello serving") for line in lines)
    (failed,) = [line for line in lines if line.get("service") == "Flaky"]
    assert (
        failed["invocation_id"].startswith("inv_") and failed["invocation_id"] in failed["message"]
    )
    assert (failed["handler"], failed["attempt"], failed["level"]) == (
        "succeed_after",
        1,
        "WARNING",
    )
    assert "flaky failure 1 of logs" in failed["message"]
    assert isinstance(failed["partition"], int)
    assert "serving" in (tmp_path / "stdout.log").read_text()  # dev's own line: stdout
