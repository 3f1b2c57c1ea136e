"""The admin API on Lambda (``ritornello.admin.lambda_handler.handler``, Mangum) applies the same
bearer token as the orchestrator's admin port: Function URL events in the test process, over a
real SQLite store file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

TOKEN = "lambda-admin-token-c0ffee"


def event(method: str, path: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"host": "abc.lambda-url.us-east-1.on.aws", **(headers or {})},
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc",
            "domainName": "abc.lambda-url.us-east-1.on.aws",
            "http": {
                "method": method,
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": "test",
            },
            "requestId": "r-1",
            "routeKey": "$default",
            "stage": "$default",
            "time": "12/Mar/2026:19:03:58 +0000",
            "timeEpoch": 1773342238390,
        },
        "isBase64Encoded": False,
    }


@pytest.fixture
def admin_lambda(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.setenv("RITORNELLO_STORE", f"sqlite:///{tmp_path / 'admin.db'}")
    monkeypatch.setenv("RITORNELLO_ADMIN_TOKEN", TOKEN)
    from ritornello.admin import lambda_handler

    assert lambda_handler.admin.app is None, "another test left the admin app open"
    try:
        yield lambda_handler
    finally:
        lambda_handler._LOOP.run_until_complete(lambda_handler.admin.close())


def call(module: ModuleType, ev: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
    answer = module.handler(ev, None)
    body = answer["body"]
    return answer["statusCode"], json.loads(body) if body else None, answer["headers"]


def test_the_admin_lambda_requires_the_token(admin_lambda: ModuleType) -> None:
    status, body, headers = call(admin_lambda, event("GET", "/version"))
    assert status == 401 and "Bearer" in body["detail"], body
    assert headers["www-authenticate"].startswith("Bearer")
    wrong = {"authorization": "Bearer nope"}
    assert call(admin_lambda, event("GET", "/deployments", wrong))[0] == 401
    assert call(admin_lambda, event("GET", "/health"))[0] == 200
    right = {"authorization": f"Bearer {TOKEN}"}
    status, body, _ = call(admin_lambda, event("GET", "/deployments", right))
    assert (status, body) == (200, {"deployments": []})
