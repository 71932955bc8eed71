"""The settings page's live leg preview in headless Chromium (docs/web.md#settings): typing a price shows the
legs from `/api/grid/preview`, and editing the levels table updates them without a reload."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from exchanges.services import exchange_config_store
from positions.tests.conftest import load_rules
from web.browser import chromium_driver, chromium_missing

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def browser():
    missing = chromium_missing()
    if missing:
        pytest.skip(missing)
    driver = chromium_driver((1366, 900))
    yield driver
    driver.quit()


def test_the_leg_preview_follows_the_form(live_server, browser, trader):
    exchange_config_store(
        user=trader, exchange_name="simulator", mode="testnet", api_key="key-0000A4B1", api_secret="s" * 32
    )
    load_rules("simulator")
    client = Client()
    client.force_login(trader)
    browser.get(live_server.url + "/accounts/login/")
    browser.add_cookie(
        {"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value}
    )
    browser.get(live_server.url + "/settings/#engine")
    wait = WebDriverWait(browser, 10)

    def rows() -> list[list[str]]:
        # Read in one script: the table is rebuilt while the test looks at it.
        return browser.execute_script(
            "var t = document.getElementById('preview-legs'); if (t.hidden) return [];"
            "return Array.from(t.tBodies[0].rows, r => Array.from(r.cells, c => c.textContent));"
        )

    browser.find_element(By.ID, "preview-price").send_keys("65000")
    wait.until(lambda _: len(rows()) == 5)
    assert rows()[0][:2] == ["0", "65000.00"] and rows()[1][1] == "64675.00"  # -0.5 %
    # The table's second level moves to -1 %: the preview follows.
    gap = browser.find_element(By.NAME, "levels[1].gap_percent")
    gap.clear()
    gap.send_keys("-1")
    wait.until(lambda _: rows() and rows()[1][1] == "64350.00")
    # Weights that no longer sum to 100: the reason shows instead of the legs.
    weight = browser.find_element(By.NAME, "levels[0].weight_percent")
    weight.clear()
    weight.send_keys("30")
    status = browser.find_element(By.ID, "preview-status")
    wait.until(lambda _: "sum to 100" in status.text)
    assert not browser.find_element(By.ID, "preview-legs").is_displayed()
    # The generator instead of the table: its base order and safety orders.
    browser.find_element(By.CSS_SELECTOR, "input[name=grid_source][value=generator]").click()
    browser.find_element(By.NAME, "capital_usd").clear()  # blank: the generator's own order sizes
    wait.until(lambda _: len(rows()) == 9)  # base + 8 safety orders (the generator's defaults)
    assert 19 <= float(rows()[0][4]) <= 20  # the base order (20 USD, the quantity rounded down to the step)
    artifacts = os.environ.get("TEST_ARTIFACTS")
    if artifacts:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(Path(artifacts) / "settings-preview.png"))
