"""The Limits page (#/limits) in headless Chromium against a real ``ritornello dev`` with an
admin token (the gated app of tests/cli/test_limits_cmd.py: a step that holds a permit of limit
"gate" until the test creates a file, and a limit in ritornello.toml): limits set through
``PUT /limits`` are listed with their definitions, sources and live figures, which change on
screen when the permits are given back. A screenshot is saved under the test's tmp_path.

Needs Debian's ``chromium`` and ``chromium-driver`` like tests/ui/test_ui.py (skipped locally
without them, a failure in CI).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.test_limits_cmd import hold, limited_dev
from tests.procs import http, wait_until

TOKEN = "ui-limits-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
NONE = "\u2013"  # the page's mark for no value (an en dash)
COLUMNS = ["name", "concurrency", "rate", "source", "in flight", "waiting", "oldest wait"]


@pytest.fixture(scope="module")
def dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(admin URL, ingress URL) of the gated app's dev process, with an admin token."""
    tmp = tmp_path_factory.mktemp("ui-limits")
    with limited_dev(tmp, {"RITORNELLO_ADMIN_TOKEN": TOKEN}) as (admin, ingress, _):
        yield admin, ingress


def _put(base: str, name: str, body: dict[str, Any]) -> None:
    status, answer, _ = http("PUT", f"{base}/limits/{name}", body, headers=AUTH)
    assert status == 201, answer


def _figures(base: str, name: str) -> tuple[int, int]:
    status, limit, _ = http("GET", f"{base}/limits/{name}", headers=AUTH)
    assert status == 200, limit
    return limit["in_flight"], limit["waiting"]


def test_the_limits_page_lists_definitions_and_live_figures(
    browser: Any, dev: tuple[str, str], tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    base, ingress = dev
    wait = WebDriverWait(browser, 20)
    _put(base, "gate", {"concurrency": 1})
    _put(base, "stripe", {"rate": 50, "per": "1s", "burst": 10, "concurrency": 5})
    release = tmp_path / "release"
    for _ in range(3):
        hold(ingress, release)
    wait_until(lambda: _figures(base, "gate") == (1, 2), 20, "one holder, two waiters")

    browser.get(f"{base}/ui/#/limits")
    field = wait.until(ec.visibility_of_element_located((By.ID, "token-input")))
    field.send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()

    def cells(name: str) -> dict[str, str]:
        row = browser.find_element(By.CSS_SELECTOR, f'tr.limit[data-name="{name}"]')
        texts = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
        return dict(zip(COLUMNS, texts, strict=False))

    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, 'tr.limit[data-name="gate"]')))
    headers = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#limits th")]
    assert headers[: len(COLUMNS)] == COLUMNS
    gate = cells("gate")
    assert {k: gate[k] for k in COLUMNS[:6]} == {
        "name": "gate",
        "concurrency": "1",
        "rate": NONE,
        "source": "admin",
        "in flight": "1",
        "waiting": "2",
    }
    assert gate["oldest wait"].endswith("s"), gate  # e.g. 850ms, 1.25s
    stripe = cells("stripe")
    assert (stripe["concurrency"], stripe["rate"]) == ("5", "50/1s burst 10")
    assert (stripe["in flight"], stripe["waiting"], stripe["oldest wait"]) == ("0", "0", NONE)
    mailer = cells("mailer")
    assert (mailer["rate"], mailer["source"], mailer["concurrency"]) == ("10/1m", "config", NONE)
    active = browser.find_element(By.CSS_SELECTOR, "nav a.active")
    assert active.text == "Limits" and active.get_attribute("href").endswith("#/limits")
    _shot(browser, tmp_path, "limits")

    # Live: the permits are given back behind the page's back; the figures follow on their own.
    release.touch()
    wait.until(lambda _: (cells("gate")["in flight"], cells("gate")["waiting"]) == ("0", "0"))
    assert cells("gate")["oldest wait"] == NONE
    logged = browser.get_log("browser")
    errors = [e for e in logged if e["level"] == "SEVERE" and "401" not in e["message"]]
    assert not errors, errors


def _shot(browser: Any, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"ui-{name}.png"
    assert browser.save_screenshot(str(path))
    print(f"screenshot: {path}")
