"""A Restate SDK endpoint over HTTPS (hypercorn with a certificate the orchestrator trusts
through ``SSL_CERT_FILE``): discovered over HTTP/1.1 on TLS, then reached over HTTP/2 by ALPN
``h2`` in BIDI_STREAM mode — a ten-step handler in one exchange."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.procs import Orchestrator, http
from tests.restate.conftest import py_app


def test_https_endpoint_over_http2_by_alpn(tmp_path: Path) -> None:
    pytest.importorskip("cryptography")
    from tests.orchestrator.test_h2_client import self_signed

    cert, key = self_signed(tmp_path)
    with py_app(tmp_path, both=True, tls=(cert, key)) as app:
        assert app.url.startswith("https://")
        orch = Orchestrator(tmp_path, SSL_CERT_FILE=str(cert)).start()
        try:
            status, dep, _ = http("POST", f"{orch.admin}/deployments", {"uri": app.url})
            assert status == 201, dep
            assert http("POST", f"{orch.ingress}/Greeter/greet", "tls")[:2] == (200, "Hello tls!")
            status, body, _ = http("POST", f"{orch.ingress}/Greeter/ten/send", "tls")
            inv = body["invocationId"]
            attach = f"{orch.ingress}/restate/invocation/{inv}/attach"
            assert http("GET", attach)[:2] == (200, 10)
            assert app.attempts(inv) == 1  # BIDI over h2: one exchange
        finally:
            orch.terminate()
