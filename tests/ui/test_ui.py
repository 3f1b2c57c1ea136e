"""The web UI (/ui) in headless Chromium against a real ``ritornello dev tests/cli/opsapp.py``
(the examples and a flaky handler) with an admin token: the page asks for the token, lists
invocations with live status, opens one and draws its journal as a timeline and its retries;
the state, deployments and schedules pages show what the API holds. A screenshot of each page
is saved under the test's tmp_path (the path is printed).

Needs Debian's ``chromium`` and ``chromium-driver`` (``make install`` installs them). Without
them the test is skipped locally, and fails in CI (``CI`` set), where they must be present.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.procs import ROOT, Proc, free_port, http, wait_port, wait_until

TOKEN = "ui-test-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def admin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(admin URL, ingress URL) of a dev process serving the examples, with an admin token."""
    tmp: Path = tmp_path_factory.mktemp("ui")
    ingress, port = free_port(), free_port()
    args = [sys.executable, "-m", "ritornello", "dev", str(ROOT / "tests" / "cli" / "opsapp.py")]
    args += ["--store", f"sqlite:///{tmp / 'ui.db'}", "--ingress-port", str(ingress)]
    args += ["--admin-port", str(port)]
    proc = Proc(args, tmp / "dev.log", env={"RITORNELLO_ADMIN_TOKEN": TOKEN}).start()
    try:
        wait_port(port, proc.proc)
        wait_port(ingress, proc.proc)
        base = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: http("GET", f"{base}/services", headers=AUTH)[1]["services"], 20, "deployed"
        )
        yield base, f"http://127.0.0.1:{ingress}"
    finally:
        proc.terminate()


def _call(ingress: str, path: str, body: object) -> tuple[int, Any, dict[str, str]]:
    status, answer, headers = http("POST", f"{ingress}{path}", body)
    assert status in (200, 202), answer
    return status, answer, headers


def test_list_open_an_invocation_and_see_its_timeline(
    browser: Any, admin: tuple[str, str], tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    base, ingress = admin
    wait = WebDriverWait(browser, 20)
    _, _, headers = _call(ingress, "/restate/call/Checkout/place_order", {"items": ["pear"]})
    order_id = headers["x-restate-id"]
    _call(ingress, "/restate/call/Counter/ui/add", 3)
    waiting_id = _call(ingress, "/restate/send/Approvals/ui/request", {})[1]["invocationId"]

    # The API answers 401 without a token: the page asks for one and keeps it for the tab.
    assert http("GET", f"{base}/invocations")[0] == 401
    browser.get(f"{base}/ui")
    field = wait.until(ec.visibility_of_element_located((By.ID, "token-input")))
    field.send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()

    row = f'tr.invocation[data-id="{order_id}"]'
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, row)))
    assert "Checkout/place_order" in browser.find_element(By.CSS_SELECTOR, row).text
    waiting_row = f'tr.invocation[data-id="{waiting_id}"] .badge'
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, waiting_row), "suspended"))
    # Live status: cancel it behind the page's back; the list shows it finish on its own.
    assert http("PATCH", f"{base}/invocations/{waiting_id}/cancel", headers=AUTH)[0] == 200
    # (the handler catches the cancellation and answers: it succeeded)
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, waiting_row), "succeeded"))
    _shot(browser, tmp_path, "list")

    browser.find_element(By.CSS_SELECTOR, f"{row} a").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#timeline li.entry")))
    entries = browser.find_elements(By.CSS_SELECTOR, "#timeline li.entry")
    kinds = [e.find_element(By.CSS_SELECTOR, ".kind").text for e in entries]
    assert kinds == ["input", "call", "call", "output"]
    assert "Inventory/reserve" in entries[1].text and "70" in entries[1].text
    assert "Payments/charge" in entries[2].text
    assert "confirmed" in entries[3].text
    bars = browser.find_elements(By.CSS_SELECTOR, "#timeline li.entry .bar")
    assert len(bars) == 4  # every entry carries its commit time
    assert "succeeded" in browser.find_element(By.CSS_SELECTOR, "dl.facts").text
    _shot(browser, tmp_path, "invocation")

    _, _, headers = _call(ingress, "/restate/call/Flaky/succeed_after", {"name": "ui", "fail": 2})
    browser.get(f"{base}/ui/#/invocations/{headers['x-restate-id']}")
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#retries li.retry")))
    retries = browser.find_elements(By.CSS_SELECTOR, "#retries li.retry")
    assert [r.find_element(By.CSS_SELECTOR, ".name").text for r in retries] == [
        "attempt 1",
        "attempt 2",
    ]
    assert "flaky failure 2 of ui" in retries[1].text
    _shot(browser, tmp_path, "retries")

    browser.get(f"{base}/ui/#/state?service=Counter&key=ui")
    wait.until(ec.text_to_be_present_in_element((By.ID, "state"), "count"))
    assert "3" in browser.find_element(By.ID, "state").text
    _shot(browser, tmp_path, "state")

    browser.get(f"{base}/ui/#/deployments")
    wait.until(ec.text_to_be_present_in_element((By.ID, "deployments"), "inproc://app"))
    browser.get(f"{base}/ui/#/schedules")
    wait.until(ec.text_to_be_present_in_element((By.ID, "schedules"), "ritornello schedules"))
    # No script error on any page (the 401s before the token was given are expected).
    logged = browser.get_log("browser")
    errors = [e for e in logged if e["level"] == "SEVERE" and "401" not in e["message"]]
    assert not errors, errors


def test_a_service_page_shows_its_handlers_schemas_and_openapi_document(
    browser: Any, admin: tuple[str, str], tmp_path: Path
) -> None:
    """From the deployments page to #/services/Counter: each handler's input and output in
    words, a schema unfolded as JSON, and the service's OpenAPI document (its paths, the
    document itself, and a download link holding it)."""
    import json
    from urllib.parse import unquote

    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    base, _ = admin
    wait = WebDriverWait(browser, 20)
    browser.get(f"{base}/ui/#/deployments")
    browser.execute_script("sessionStorage.setItem('ritornello.adminToken', arguments[0])", TOKEN)
    browser.refresh()
    link = wait.until(ec.element_to_be_clickable((By.LINK_TEXT, "Counter")))
    link.click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, 'tr.handler[data-name="add"]')))
    assert browser.current_url.endswith("#/services/Counter")
    add = browser.find_element(By.CSS_SELECTOR, 'tr.handler[data-name="add"]')
    cells = [td.text for td in add.find_elements(By.TAG_NAME, "td")]
    assert cells == ["add", "Exclusive", "integer", "integer", "yes", ""]
    get = browser.find_element(By.CSS_SELECTOR, 'tr.handler[data-name="get"]')
    assert get.find_elements(By.TAG_NAME, "td")[2].text == "none"
    add.find_element(By.CSS_SELECTOR, "details.input summary").click()
    shown = add.find_element(By.CSS_SELECTOR, "details.input pre").text
    assert json.loads(shown) == {"type": "integer"}
    browser.find_element(By.CSS_SELECTOR, "#openapi summary").click()
    text = browser.find_element(By.ID, "openapi").text
    assert "POST /restate/call/Counter/{key}/add" in text and "POST /Counter/{key}/add/send" in text
    document = json.loads(browser.find_element(By.CSS_SELECTOR, "#openapi pre").text)
    assert document == http("GET", f"{base}/services/Counter/openapi", headers=AUTH)[1]
    download = browser.find_element(By.ID, "openapi-download")
    assert download.get_attribute("download") == "Counter.openapi.json"
    href = download.get_attribute("href")
    prefix = "data:application/json;charset=utf-8,"
    assert href.startswith(prefix) and json.loads(unquote(href[len(prefix) :])) == document
    _shot(browser, tmp_path, "service")
    browser.get(f"{base}/ui/#/services/Nope")
    wait.until(ec.text_to_be_present_in_element((By.ID, "service"), "service Nope not found"))


def _login(browser: Any, base: str) -> None:
    """Give this tab the admin token (as the token question would)."""
    browser.get(f"{base}/ui/style.css")  # any page of the origin
    browser.execute_script("sessionStorage.setItem('ritornello.adminToken', arguments[0])", TOKEN)


def _buttons(browser: Any) -> dict[str, tuple[bool, str]]:
    """The invocation page's action buttons: action -> (enabled, title)."""
    from selenium.webdriver.common.by import By

    found = browser.find_elements(By.CSS_SELECTOR, ".actions button")
    return {
        b.get_attribute("data-action"): (b.is_enabled(), b.get_attribute("title")) for b in found
    }


def test_failed_and_succeeded_badges_and_actions_only_where_they_apply(
    browser: Any, admin: tuple[str, str], tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    base, ingress = admin
    wait = WebDriverWait(browser, 20)
    status, answer, headers = http("POST", f"{ingress}/restate/call/Flaky/refuse", "ui")
    assert status == 422, answer
    failed = headers["x-restate-id"]
    ok = _call(ingress, "/restate/call/Greeter/greet", "Badge")[2]["x-restate-id"]
    live = _call(ingress, "/restate/send/Approvals/badges/request", {})[1]["invocationId"]
    wait_until(
        lambda: http("GET", f"{base}/invocations/{live}", headers=AUTH)[1]["status"] == "suspended",
        20,
        "the request waits",
    )
    _login(browser, base)

    # The list: a red badge for failed, a green one for succeeded; the status filter has both.
    browser.get(f"{base}/ui/#/invocations?status=failed")
    badge = f'tr.invocation[data-id="{failed}"] .badge'
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, badge), "failed"))
    rows = browser.find_elements(By.CSS_SELECTOR, "tr.invocation")
    assert {r.find_element(By.CSS_SELECTOR, ".badge").text for r in rows} == {"failed"}
    options = browser.find_elements(By.CSS_SELECTOR, "select[name=status] option")
    assert {"succeeded", "failed"} <= {o.get_attribute("value") for o in options}
    red = browser.find_element(By.CSS_SELECTOR, badge)
    assert "st-failed" in red.get_attribute("class").split()
    browser.get(f"{base}/ui/#/invocations?service=Greeter")
    green_badge = f'tr.invocation[data-id="{ok}"] .badge'
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, green_badge), "succeeded"))
    green = browser.find_element(By.CSS_SELECTOR, green_badge).value_of_css_property("color")
    browser.get(f"{base}/ui/#/invocations?status=failed")
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, badge), "failed"))
    shown = browser.find_element(By.CSS_SELECTOR, badge).value_of_css_property("color")
    r, g, b = (int(x) for x in shown[shown.index("(") + 1 :].split(",")[:3])
    assert r > 2 * max(g, b) and shown != green, (shown, green)  # red, unlike succeeded's
    _shot(browser, tmp_path, "failed")

    # A finished invocation: only purge applies; each disabled button says why.
    browser.get(f"{base}/ui/#/invocations/{failed}")
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "dl.facts"), "failed"))
    wait.until(lambda _: _buttons(browser)["purge"][0])
    buttons = _buttons(browser)
    for action in ("cancel", "kill", "pause"):
        assert buttons[action] == (False, f"already failed: nothing left to {action}"), buttons
    assert not buttons["resume"][0] and "not paused" in buttons["resume"][1]
    assert buttons["purge"][0]

    # A live one: cancel, kill and pause apply; resume and purge do not.
    browser.get(f"{base}/ui/#/invocations/{live}")
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "dl.facts"), "suspended"))
    wait.until(lambda _: _buttons(browser)["pause"][0])
    buttons = _buttons(browser)
    assert all(buttons[a][0] for a in ("cancel", "kill", "pause")), buttons
    assert buttons["resume"] == (False, "suspended, not paused: only a paused invocation resumes")
    assert buttons["purge"] == (False, "suspended: only a finished invocation can be purged")
    # Paused from the page: now resume applies and pause does not.
    browser.find_element(By.CSS_SELECTOR, '.actions button[data-action="pause"]').click()
    wait.until(lambda _: _buttons(browser)["resume"][0])
    assert _buttons(browser)["pause"] == (False, "already paused")
    _shot(browser, tmp_path, "paused")
    assert http("PATCH", f"{base}/invocations/{live}/kill", headers=AUTH)[0] == 200


def test_the_list_is_newest_first_and_loads_older_pages(
    browser: Any, admin: tuple[str, str]
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    base, ingress = admin
    wait = WebDriverWait(browser, 20)
    made = [
        _call(ingress, "/restate/call/Counter/pages/add", n)[2]["x-restate-id"] for n in range(5)
    ]
    newest = made[::-1]
    _login(browser, base)
    browser.get(f"{base}/ui/#/invocations?key=pages&limit=2")

    # The list is drawn again every 2 s: read and click it in one script each (no stale nodes).
    def shown() -> list[str]:
        script = "return [...document.querySelectorAll('tr.invocation')].map(r => r.dataset.id)"
        return list(browser.execute_script(script))

    def older() -> None:
        browser.execute_script("document.querySelector('.pager button.more').click()")

    wait.until(lambda _: shown() == newest[:2])
    more = ".pager button.more"
    older()
    wait.until(lambda _: shown() == newest[:4])
    # A new invocation arrives: it goes on top, and the pages below still neither skip nor repeat.
    late = _call(ingress, "/restate/call/Counter/pages/add", 9)[2]["x-restate-id"]
    wait.until(lambda _: shown() == [late, *newest[:3]])
    older()
    wait.until(lambda _: shown() == [late, *newest[:5]])
    wait.until(
        lambda _: "No older invocation" in browser.find_element(By.CSS_SELECTOR, ".pager").text
    )
    assert not browser.find_elements(By.CSS_SELECTOR, more)


def _shot(browser: Any, tmp_path: Path, name: str) -> None:
    path = tmp_path / f"ui-{name}.png"
    assert browser.save_screenshot(str(path))
    print(f"screenshot: {path}")


def test_the_static_files_are_public_confined_and_typed(admin: tuple[str, str]) -> None:
    base, _ = admin
    status, _, headers = http("GET", f"{base}/ui")  # urllib follows the relative redirect
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in headers["content-security-policy"]
    status, _, headers = http("GET", f"{base}/ui/invocation.js")  # no token needed
    assert status == 200 and headers["content-type"].startswith("text/javascript")
    for path in ("nope.js", "..%2F_ui.py", "..%2F..%2Fcli%2F__init__.py", "", "index"):
        status, body, _ = http("GET", f"{base}/ui/{path}")
        assert status == 404 or (path == "" and status == 200), (path, status, body)
    assert http("GET", f"{base}/invocations")[0] == 401  # the data stays behind the token
