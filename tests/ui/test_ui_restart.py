"""Restart-as-new on the invocation page, in headless Chromium against a real ``ritornello dev
tests/cli/opsapp.py`` with an admin token: the form shows for a finished invocation only; a dry
run reports a match, a bad deployment the server's 400; "Restart as new" opens the new
invocation, which keeps the step before the cut and completes."""

from __future__ import annotations

from typing import Any

from tests.procs import http
from tests.ui.test_ui import AUTH, TOKEN, admin  # noqa: F401  (the dev process fixture)


def test_restart_as_new_from_the_invocation_page(
    browser: Any,
    admin: tuple[str, str],  # noqa: F811
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    base, ingress = admin
    wait = WebDriverWait(browser, 20)
    status, _, headers = http("POST", f"{ingress}/restate/call/Greeter/greet", "Ui")
    assert status == 200
    done = headers["x-restate-id"]
    status, sent, _ = http("POST", f"{ingress}/restate/send/Approvals/ui/request", {})
    live = sent["invocationId"]

    browser.get(f"{base}/ui/#/invocations/{live}")
    field = wait.until(ec.visibility_of_element_located((By.ID, "token-input")))
    field.send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "#token-form button[type=submit]").click()
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#timeline li.entry")))
    assert not browser.find_element(By.CSS_SELECTOR, "form.restart").is_displayed()

    browser.get(f"{base}/ui/#/invocations/{done}")
    form = wait.until(ec.visibility_of_element_located((By.CSS_SELECTOR, "form.restart")))
    cut = form.find_element(By.NAME, "from")
    cut.clear()
    cut.send_keys("2")
    form.find_element(By.CSS_SELECTOR, "button[data-action=dry-run]").click()
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".notice"), "matches"))
    assert "replayed 2 entries" in browser.find_element(By.CSS_SELECTOR, ".notice").text

    deployment = form.find_element(By.NAME, "deployment")
    deployment.clear()
    deployment.send_keys("dp_nope")
    form.find_element(By.CSS_SELECTOR, "button[data-action=dry-run]").click()
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, ".notice.error"), "400"))
    assert "unknown deployment" in browser.find_element(By.CSS_SELECTOR, ".notice").text

    deployment.clear()
    deployment.send_keys("latest")
    form.find_element(By.CSS_SELECTOR, "button[data-action=restart-as-new]").click()
    wait.until(lambda b: "#/invocations/inv_" in b.current_url and done not in b.current_url)
    new = browser.current_url.rsplit("/", 1)[1]
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "h1"), new))
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "dl.facts"), "succeeded"))
    kinds = [
        e.find_element(By.CSS_SELECTOR, ".kind").text
        for e in browser.find_elements(By.CSS_SELECTOR, "#timeline li.entry")
    ]
    assert kinds == ["input", "run", "output"]
    assert "Hello, Ui!" in browser.find_element(By.CSS_SELECTOR, "dl.facts").text
    assert http("PATCH", f"{base}/invocations/{live}/kill", headers=AUTH)[0] == 200
    logged = browser.get_log("browser")
    errors = [
        e
        for e in logged
        if e["level"] == "SEVERE" and "401" not in e["message"] and "400" not in e["message"]
    ]
    assert not errors, errors
