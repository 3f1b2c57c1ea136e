"""Auth settings: from ``ritornello.toml`` or ``RITORNELLO_*`` (the environment wins), never
shown by ``repr`` (a logged Settings leaks no secret)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ritornello.orchestrator import load_settings
from ritornello.orchestrator._config import header_names


def test_tokens_come_from_the_config_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("ADMIN_TOKEN", "INGRESS_TOKEN", "SIGNING_SECRET", "REDACT_HEADERS"):
        monkeypatch.delenv(f"RITORNELLO_{name}", raising=False)
    config = tmp_path / "ritornello.toml"
    config.write_text(
        'admin_token = "file-admin"\ningress_token = "file-ingress"\n'
        'signing_secret = "file-secret"\nredact_headers = "authorization, X-Tenant-Key"\n'
    )
    settings = load_settings(str(config))
    assert (settings.admin_token, settings.ingress_token) == ("file-admin", "file-ingress")
    assert settings.signing_secret == "file-secret"
    assert header_names(settings.redact_headers) == {"authorization", "x-tenant-key"}
    monkeypatch.setenv("RITORNELLO_ADMIN_TOKEN", "env-admin")
    settings = load_settings(str(config))
    assert settings.admin_token == "env-admin"
    shown = repr(settings)
    assert not any(s in shown for s in ("env-admin", "file-ingress", "file-secret")), shown


def test_the_default_redaction_covers_credentials() -> None:
    names = header_names(load_settings(None).redact_headers)
    assert {"authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"} <= names
