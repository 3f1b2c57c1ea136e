"""An AWS durable function's execution on the invocation page, in headless Chromium against a
real ``ritornello serve`` and ``ritornello lambda-emulator`` (the ``pair`` fixture of
tests/integration/test_aws_durable.py, registered there): its operations show with their names,
kinds and timings, and a callback keeps its name beside the id that resolves it."""

from __future__ import annotations

from typing import Any

from tests.integration.test_aws_durable import Pair, pair, suspended, wait_for  # noqa: F401
from tests.procs import http


def test_a_durable_execution_on_the_invocation_page(browser: Any, pair: Pair) -> None:  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, 20)
    status, body, headers = pair.call({"mode": "steps", "numbers": [1, 2]})
    assert status == 200, body
    done = headers["x-restate-id"]
    browser.get(f"{pair.orch.admin}/ui/#/invocations/{done}")
    wait.until(ec.text_to_be_present_in_element((By.CSS_SELECTOR, "dl.facts"), "succeeded"))
    entries = browser.find_elements(By.CSS_SELECTOR, "#timeline li.entry")
    rows = [
        (e.find_element(By.CSS_SELECTOR, ".kind").text, e.text.replace("\n", " ")) for e in entries
    ]
    assert [kind for kind, _ in rows][:1] == ["input"] and rows[-1][0] == "output", rows
    for name in ("STEP START add-1", "STEP SUCCEED add-1", "STEP SUCCEED add-2"):
        assert any(name in text for _, text in rows), (name, rows)
    assert "Orders/run" in browser.find_element(By.CSS_SELECTOR, "dl.facts").text

    publish = pair.tmp / "callback-ui.txt"
    waiting = pair.send({"mode": "callback", "publish_to": str(publish)})
    callback_id = wait_for(publish)
    suspended(pair, waiting)
    browser.get(f"{pair.orch.admin}/ui/#/invocations/{waiting}")
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#timeline li.entry")))
    texts = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#timeline li.entry")]
    assert any("CALLBACK START approval" in t and callback_id in t for t in texts), texts
    assert http("PATCH", f"{pair.orch.admin}/invocations/{waiting}/kill")[0] == 200
