"""The Services pages (#/services, #/services/NAME) in headless Chromium against a real
``ritornello dev tests/cli/opsapp.py`` with an admin token: the list links each service to its
page, which shows its settings and handlers; the form changes them (PATCH /services/NAME), the
page shows what an operator set (and the OpenAPI document, fetched again, loses the paths of
the now private service), a bad duration is shown as the API's error, and the change is what
the admin API then answers. A screenshot is saved under the test's tmp_path."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.procs import http
from tests.ui.test_ui import AUTH, TOKEN, admin  # noqa: F401  (the dev process fixture)


def test_a_services_page_shows_and_changes_its_settings(
    browser: Any,
    admin: tuple[str, str],  # noqa: F811
    tmp_path: Path,
) -> None:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import Select, WebDriverWait

    base, ingress = admin
    # the page re-renders after a save: an element read mid-way is stale, read it again
    wait = WebDriverWait(browser, 20, ignored_exceptions=(StaleElementReferenceException,))
    browser.get(f"{base}/ui/#/services")
    field = wait.until(ec.visibility_of_element_located((By.ID, "token-input")))
    field.send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()
    row = wait.until(
        ec.presence_of_element_located((By.CSS_SELECTOR, 'tr.service[data-name="Greeter"]'))
    )
    assert "yes" in row.text  # public
    row.find_element(By.TAG_NAME, "a").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, 'dd[data-setting="public"]')))
    assert "#/services/Greeter" in browser.current_url

    def setting(key: str) -> str:
        return str(browser.find_element(By.CSS_SELECTOR, f'dd[data-setting="{key}"]').text)

    assert setting("public") == "yes"
    assert setting("journal_retention") == "1day"  # the orchestrator's default retention
    assert browser.find_element(By.CSS_SELECTOR, 'tr.handler[data-name="greet"]')
    assert not browser.find_elements(By.NAME, "workflow_completion_retention")  # a service
    paths = browser.find_element(By.CSS_SELECTOR, "#openapi summary")
    assert paths.text == "4 paths"  # the service's OpenAPI document, on the same page

    form = browser.find_element(By.ID, "settings-form")
    form.find_element(By.NAME, "journal_retention").send_keys("soon")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    problem = wait.until(ec.visibility_of_element_located((By.ID, "settings-error")))
    assert "invalid journal_retention 'soon'" in problem.text

    form.find_element(By.NAME, "journal_retention").clear()
    form.find_element(By.NAME, "journal_retention").send_keys("30d")
    Select(form.find_element(By.NAME, "public")).select_by_value("false")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda _: setting("public").startswith("no"))
    assert setting("public") == "no (set by an operator)"
    assert setting("journal_retention") == "30days (set by an operator)"
    # the document is fetched again: the ingress refuses a private service, it has no path
    assert browser.find_element(By.CSS_SELECTOR, "#openapi summary").text == "0 paths"
    browser.save_screenshot(str(tmp_path / "service.png"))
    status, svc, _ = http("GET", f"{base}/services/Greeter", headers=AUTH)
    assert status == 200 and svc["public"] is False and svc["journal_retention"] == "30days"
    status, answer, _ = http("POST", f"{ingress}/restate/call/Greeter/greet", "x")
    assert status == 400 and "private" in answer["message"]
