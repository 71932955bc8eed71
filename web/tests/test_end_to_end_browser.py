"""A new trader from sign-up to a closed grid trade, entirely in a real headless Chromium (docs/web.md#tests).

The real stack: daphne web processes on the test database (as `make run` starts them), the exchange
simulator, a celery worker (with the signal dispatcher), the browser. The test plays the parts that are
not the trader's: the simulator's control API (an account, the price), TradingView (it fills the alert's
placeholders and posts it to the webhook) and the beat's fill monitor. Every step leaves a screenshot in
`$TEST_ARTIFACTS` (else `.artifacts/e2e-browser/`, ignored by git).
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings as django_settings
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException, TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from accounts.models import User
from exchanges.services import exchange_config_store
from positions.models import DCAOrder, EngineConfig, PositionGroup
from positions.services.monitor import monitor_fills
from tradingsite.tests.support import ROOT, web_processes
from web.browser import chromium_driver, chromium_missing
from web.demo import populate

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.browser]

WAIT_S = 30  # generous: the box running the suite may be busy
EMAIL, PASSWORD = "e2e-trader@example.com", "Browser-e2e-2026"
MARKER = "window.__e2e_page"  # set on a page; still there later means the page was never reloaded


@pytest.fixture
def artifacts() -> Path:
    path = Path(os.environ.get("TEST_ARTIFACTS") or ROOT / ".artifacts") / "e2e-browser"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def stack(simulator, settings, celery_worker, tmp_path, monkeypatch) -> Iterator[str]:
    """The web processes, pointed (like this process and its worker) at the session's simulator."""
    settings.SIMULATOR_URL = simulator.url
    settings.EXCHANGE_TIMEOUT_MS = 5000
    monkeypatch.setenv("SIMULATOR_URL", simulator.url)
    simulator.set_price("BTCUSDT", "65000")
    with web_processes(tmp_path, 1) as (base, _):
        yield base
    simulator.clear_faults()


@pytest.fixture
def browser() -> Iterator[Any]:
    missing = chromium_missing()
    if missing:
        pytest.skip(missing)
    driver = chromium_driver((1366, 900))
    driver.set_page_load_timeout(WAIT_S)
    yield driver
    driver.quit()


def _until(driver: Any, condition: Callable[[Any], Any], message: str, timeout: float = WAIT_S) -> Any:
    # A live region re-rendered between finding an element and reading it leaves a stale reference: look again.
    ignored = (NoSuchElementException, StaleElementReferenceException)
    return WebDriverWait(driver, timeout, poll_frequency=0.1, ignored_exceptions=ignored).until(condition, message)


def _wait_for(predicate: Callable[[], Any], message: str, timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {message}")


def _mark(driver: Any) -> None:
    driver.execute_script(MARKER + " = 'not reloaded';")
    # What the socket brought and which region swaps happened, for a failure to tell a lost event from a
    # region that was not fetched (static/js/live.js dispatches both).
    driver.execute_script(
        "window.__e2e_seen = [];"
        "document.addEventListener('live:event', e => window.__e2e_seen.push(e.detail.type + ':' +"
        " ((e.detail.data || {}).status || '')));"
        "document.addEventListener('live:swapped', e => window.__e2e_seen.push('swapped:' + e.detail));"
    )


def _not_reloaded(driver: Any) -> bool:
    return bool(driver.execute_script("return " + MARKER + " === 'not reloaded';"))


def _live(driver: Any) -> None:
    _until(
        driver,
        lambda d: d.execute_script("return document.getElementById('conn').dataset.state") == "live",
        "the page's websocket to connect",
    )


def _type(driver: Any, name: str, value: str) -> None:
    field = driver.find_element(By.NAME, name)
    field.clear()
    field.send_keys(value)


def _tradingview_fills(template: str, **values: str) -> str:
    """What TradingView sends for an alert message: each {{placeholder}} replaced by its value, as text."""
    for placeholder, value in values.items():
        template = template.replace("{{" + placeholder + "}}", value)
    assert "{{" not in template, template
    return template


def test_sign_up_to_a_closed_grid_trade_in_the_browser(stack, browser, simulator, artifacts) -> None:
    base, driver = stack, browser
    step = iter(range(1, 100))

    def shot(name: str) -> None:
        driver.save_screenshot(str(artifacts / f"{next(step):02d}-{name}.png"))

    # Sign up through allauth's form: the new user lands on the dashboard, logged in.
    driver.get(base + "/accounts/signup/")
    _type(driver, "email", EMAIL)
    _type(driver, "username", "e2etrader")
    _type(driver, "password1", PASSWORD)
    _type(driver, "password2", PASSWORD)
    shot("signup")
    driver.find_element(By.CSS_SELECTOR, "main form button[type=submit], main form button").click()
    _until(driver, expected_conditions.url_to_be(base + "/"), "the dashboard after sign-up")
    user = User.objects.get(email=EMAIL)
    assert "No open positions" in driver.find_element(By.ID, "main").text

    # Keys: an account on the simulator (its control API), then the keys typed into /settings/.
    api_key, api_secret = "sim" + secrets.token_hex(16), secrets.token_hex(32)
    simulator.create_account(api_key, api_secret, {"USDT": "10000", "BTC": "0"})
    driver.get(base + "/settings/#keys")
    _type(driver, "exchange", "simulator")
    _type(driver, "api_key", api_key)
    _type(driver, "api_secret", api_secret)
    driver.find_element(By.CSS_SELECTOR, "#key-form button").click()
    _until(driver, lambda d: "simulator keys" in d.find_element(By.CSS_SELECTOR, ".messages").text, "the keys saved")
    driver.find_element(By.XPATH, "//section[@id='keys']//button[normalize-space()='Validate']").click()
    _until(driver, lambda d: "connection works" in d.find_element(By.CSS_SELECTOR, ".messages").text, "validated")
    assert api_key not in driver.page_source and api_secret not in driver.page_source
    assert f"****{api_key[-4:]}" in driver.find_element(By.ID, "keys").text
    shot("keys")

    # The grid in the engine form: three levels (the other default rows blanked), the preview follows.
    driver.get(base + "/settings/#engine")
    levels = (("0", "40", "1"), ("-0.5", "30", "1"), ("-1", "30", "1"), ("", "", ""), ("", "", ""))
    for index, (gap, weight, tp) in enumerate(levels):
        _type(driver, f"levels[{index}].gap_percent", gap)
        _type(driver, f"levels[{index}].weight_percent", weight)
        _type(driver, f"levels[{index}].tp_percent", tp)
    driver.find_element(By.ID, "preview-price").send_keys("65000")

    def preview() -> list[list[str]]:
        return list(
            driver.execute_script(
                "var t = document.getElementById('preview-legs'); if (t.hidden) return [];"
                "return Array.from(t.tBodies[0].rows, r => Array.from(r.cells, c => c.textContent.trim()));"
            )
        )

    _until(driver, lambda _: len(preview()) == 3, "three legs in the preview")
    assert [row[1] for row in preview()] == ["65000.00", "64675.00", "64350.00"]
    driver.execute_script("document.getElementById('preview').scrollIntoView();")
    shot("grid-preview")

    # A form error is shown beside its field and keeps what was typed; nothing is saved.
    _type(driver, "capital_usd", "-5")
    driver.find_element(By.CSS_SELECTOR, "#engine-form > button").click()
    capital = _until(
        driver, lambda d: d.find_element(By.CSS_SELECTOR, "input[name=capital_usd][aria-invalid=true]"), "the error"
    )
    assert capital.get_attribute("value") == "-5"
    assert capital.find_element(By.XPATH, "following-sibling::*[contains(@class, 'field-error')]").text
    assert driver.find_element(By.NAME, "levels[1].gap_percent").get_attribute("value") == "-0.5"
    assert not EngineConfig.objects.filter(user=user).exists()
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", capital)
    shot("form-error-kept")
    _type(driver, "capital_usd", "300")
    driver.find_element(By.CSS_SELECTOR, "#engine-form > button").click()
    _until(driver, lambda d: "saved" in d.find_element(By.CSS_SELECTOR, ".messages").text.lower(), "saved")
    saved = EngineConfig.objects.get(user=user).data
    assert [Decimal(level["gap_percent"]) for level in saved["levels"]] == [0, Decimal("-0.5"), -1]

    # The entry alert message, as the Copy button copies it (the element its data-copy names).
    driver.get(base + "/settings/#webhook")
    copy = driver.find_element(By.CSS_SELECTOR, "#webhook button[data-copy='#alert-entry']")
    message = driver.find_element(By.CSS_SELECTOR, copy.get_attribute("data-copy")).get_attribute("value")
    assert (
        user.webhook_secret in message
        and user.webhook_secret not in driver.find_element(By.ID, "alert-entry-shown").text
    )
    webhook_path = httpx.URL(driver.find_element(By.ID, "webhook-url").get_attribute("value")).path
    shot("alert-message")
    body = _tradingview_fills(
        message,
        timenow=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        ticker="BTCUSDT",
        interval="60",
        close="65000",
        alert_name="grid",
        **{
            "strategy.order.action": "buy",
            "strategy.market_position": "long",
            "strategy.market_position_size": "0.0046",
            "strategy.prev_market_position": "flat",
            "strategy.prev_market_position_size": "0",
            "strategy.order.price": "65000",
            "strategy.order.contracts": "0.0046",
            "strategy.order.id": "Long 1",
            "strategy.order.comment": "",
        },
    )
    assert json.loads(body)["tv"]["exchange"].lower() == "simulator"

    # The dashboard is open when the alert arrives: the group appears without a reload.
    driver.get(base + "/")
    _live(driver)
    _mark(driver)
    answer = httpx.post(base + webhook_path, content=body, headers={"Content-Type": "text/plain"}, timeout=WAIT_S)
    assert answer.status_code == 202, answer.text
    group_id = answer.json()["group_id"]
    row = _until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, f"tr[data-group='{group_id}']"), "the group row")
    assert "BTC/USDT" in row[0].text
    _until(
        driver,
        lambda d: "1 / 3" in d.find_element(By.CSS_SELECTOR, f"tr[data-group='{group_id}']").text,
        "entry filled",
    )
    assert _not_reloaded(driver)
    shot("dashboard-group-live")

    # The group's page; the price falls through the other two legs (the beat's fill monitor books them).
    driver.get(f"{base}/positions/{group_id}/")
    _live(driver)
    _mark(driver)
    simulator.set_price("BTCUSDT", "64300")

    def filled() -> bool:
        monitor_fills()
        return DCAOrder.objects.filter(group_id=group_id, status="filled").count() == 3

    _wait_for(filled, "legs filled")
    _until(driver, lambda d: "3 / 3 legs" in d.find_element(By.ID, "main").text, "three legs filled on the page")
    _until(driver, lambda d: d.find_element(By.ID, "main").text.count("Filled") >= 3, "the legs' fills listed")
    assert _not_reloaded(driver)
    driver.execute_script("document.querySelector('[data-live=detail]').scrollIntoView();")
    shot("group-legs-filled")

    # Close at market from the group page; the browser asks first.
    close = driver.find_element(By.XPATH, "//button[normalize-space()='Close at market']")
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", close)  # not under the top bar
    close.click()
    alert = _until(driver, expected_conditions.alert_is_present(), "the confirmation")
    assert "at market" in alert.text
    alert.accept()
    try:
        _until(driver, lambda d: "Closed" in d.find_element(By.ID, "main").text, "the group closed", timeout=WAIT_S * 2)
    except TimeoutException:
        shot("group-not-closed")
        group = PositionGroup.objects.get(pk=group_id)
        exits = list(group.exit_orders.values_list("purpose", "order_type", "status", "quantity", "last_error"))
        events = list(group.events.order_by("at").values_list("kind", "message"))
        seen = driver.execute_script("return window.__e2e_seen || [];")
        raise AssertionError(
            f"not shown closed: status {group.status}, exits {exits}, events {events}; the page saw {seen}"
        ) from None
    group = _wait_for(
        lambda: PositionGroup.objects.filter(pk=group_id, status="closed").exclude(realized_pnl=0).first(), "closed"
    )
    shown = f"{group.realized_pnl:+,.2f}"  # the `signed` filter
    assert group.realized_pnl < 0  # bought 65000..64350, sold near 64300
    _until(driver, lambda d: shown in d.find_element(By.CSS_SELECTOR, "[data-live=head]").text, "realized PnL")
    shot("group-closed-realized")

    # Another user's group is refused: a 404 in the page and to the same session over HTTP.
    other = User.objects.create_user(email="other@example.com", username="other", password=PASSWORD)
    config, _ = exchange_config_store(
        user=other, exchange_name="simulator", mode="testnet", api_key="other-key-0001", api_secret="s" * 32
    )
    populate(user=other, exchange_config=config, groups=1, legs=2, closed_share=0)
    theirs = PositionGroup.objects.get(user=other)
    driver.get(f"{base}/positions/{theirs.pk}/")
    assert "Not found" in driver.find_element(By.TAG_NAME, "h1").text
    assert theirs.symbol not in driver.find_element(By.ID, "main").text
    cookie = driver.get_cookie(django_settings.SESSION_COOKIE_NAME)["value"]
    refused = httpx.get(
        f"{base}/positions/{theirs.pk}/", cookies={django_settings.SESSION_COOKIE_NAME: cookie}, timeout=WAIT_S
    )
    assert refused.status_code == 404
    shot("other-users-group-404")
    assert Decimal(group.realized_pnl) == PositionGroup.objects.get(pk=group_id).realized_pnl
