"""Schemathesis fuzzes the admin API, served by a real ``ritornello serve`` (uvicorn on
127.0.0.1, SQLite store), from its own OpenAPI document: no 5xx, and every response conforms
to the documented status codes, content types and schemas.

``POST /deployments`` is left out: it connects to whatever URI or Lambda ARN it is given, and
fuzzed ones point off this machine. Bounded: few examples per operation, a time limit.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.admin.conftest import Api


def test_fuzzing_finds_no_server_error_and_no_schema_violation(api: Api, tmp_path: Path) -> None:
    # Some real data for the fuzzer to run into: an object key with state, finished invocations.
    api.call("/restate/call/Box/fz/put", {"a": 1})
    api.call("/restate/call/Echo/say", "fz")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{api.orch.admin}/openapi.json",
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,"
            "response_schema_conformance,response_headers_conformance",
            "--exclude-name",
            "POST /deployments",
            "--max-examples",
            "12",
            "--phases",
            "examples,coverage,fuzzing",
            "--seed",
            "7",
            "--request-timeout",
            "10",
            "--no-color",
        ],
        cwd=tmp_path,  # schemathesis keeps its cache in .schemathesis/ there
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
    assert "POST /services/{service}/state" in done.stdout  # it really ran the operations
