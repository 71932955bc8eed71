"""A fill on the simulator reaches every enabled channel (webhook -> worker -> simulator -> fill -> message),
and a dead channel does not hold trading up. Prints the fill -> message latency."""

from __future__ import annotations

import statistics
import time

import pytest

from notifications.models import Delivery
from positions.models import DCAOrder, Fill, PositionGroup
from positions.services.guards import guard_pause_set
from positions.tests.conftest import alert, post

from .conftest import TOKEN, configure_all

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

PRICES = (("BTCUSDT", "65000"), ("ETHUSDT", "3500"), ("SOLUSDT", "150"))


def wait_for(predicate, timeout: float = 20.0, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {message}")


def test_a_fill_reaches_every_enabled_channel(
    client, simulator_account, celery_worker, service_settings, capture_http, capture_smtp
) -> None:
    user = simulator_account.config.user
    configure_all(user, capture_http)
    simulator_account.simulator.set_price("BTCUSDT", "65000")
    response = post(client, user, alert(user.webhook_secret, tv={"exchange": "simulator"}))
    assert response.status_code == 202, response.content
    group = PositionGroup.objects.get(pk=response.json()["group_id"])

    def delivered() -> bool:
        return bool(
            capture_http.on(f"/tg/bot{TOKEN}/sendMessage")
            and capture_http.on("/discord/")
            and capture_http.on("/slack/")
            and capture_smtp.messages
        )

    wait_for(delivered, message="a message on every channel")
    fill = Fill.objects.filter(group=group, dca_order__dca_level=0).get()
    text = capture_http.on("/slack/")[0].body["text"]
    assert text.startswith("Filled: BTC/USDT BUY ")
    assert f"@ {fill.price.normalize():f} (entry)" in text
    assert f"/positions/{group.pk}/" in text
    assert capture_http.on("/discord/")[0].body["content"] == text
    assert capture_http.on(f"/tg/bot{TOKEN}/sendMessage")[0].body["text"] == text
    assert text.splitlines()[0] in capture_smtp.messages[0].body["data"]
    # One message per channel for the one fill (the grid's other legs rest).
    time.sleep(0.5)
    assert Delivery.objects.filter(event_type="entry_filled").count() == 4
    latencies = sorted(
        (received.at - fill.recorded_at.timestamp()) * 1000
        for received in (
            capture_http.on(f"/tg/bot{TOKEN}/sendMessage")[0],
            capture_http.on("/discord/")[0],
            capture_http.on("/slack/")[0],
            capture_smtp.messages[0],
        )
    )
    print(f"\nfill -> message latency ms (telegram, discord, slack, email sorted): {[round(x, 1) for x in latencies]}")
    assert latencies[-1] < 5000


def _signal_to_entry_ack_ms(client, user, index: int, timeframe: str) -> float:
    symbol, price = PRICES[index % len(PRICES)]
    body = alert(
        user.webhook_secret,
        tv={
            "exchange": "simulator",
            "symbol": symbol,
            "entry_price": price,
            "close_price": price,
            "timeframe": timeframe,
        },
        strategy_info={"trade_id": f"T-{timeframe}-{index}"},
    )
    started = time.time()
    response = post(client, user, body)
    assert response.status_code == 202, response.content
    group_id = response.json()["group_id"]
    order = wait_for(
        lambda: DCAOrder.objects.filter(group_id=group_id, dca_level=0, acknowledged_at__isnull=False).first(),
        message="entry acknowledged",
    )
    return (order.acknowledged_at.timestamp() - started) * 1000


def _round(client, user, timeframe: str) -> list[float]:
    took = []
    for index in range(len(PRICES)):
        took.append(_signal_to_entry_ack_ms(client, user, index, timeframe))
        time.sleep(0.2)  # the next signal arrives while this entry's messages are being sent
    return took


def test_a_dead_channel_does_not_slow_signal_to_order(
    client, simulator_account, celery_worker, service_settings, capture_http
) -> None:
    user = simulator_account.config.user
    configure_all(user, capture_http)
    for symbol, price in PRICES:
        simulator_account.simulator.set_price(symbol, price)
    _round(client, user, "5")  # warm-up: the worker's first tasks load what they need
    healthy = _round(client, user, "15")
    capture_http.hang("/discord/", 30)  # answers nothing within the timeout: every send times out
    capture_http.hang("/slack/", 30)
    dead = _round(client, user, "60")
    wait_for(
        lambda: Delivery.objects.filter(channel__kind="discord", error="timed out").exists(),
        message="a dead channel's send timed out",
    )
    print(
        f"\nsignal -> entry acknowledged, ms: channels healthy {[round(x) for x in healthy]}, "
        f"Discord and Slack dead {[round(x) for x in dead]}"
    )
    # A worker thread held by a dead channel's timeout (1 s here) would show as a second more.
    assert statistics.median(dead) < statistics.median(healthy) + 500


def test_a_resting_entry_a_guard_refusal_and_a_sequence_anomaly_reach_the_channels(
    client, simulator_account, celery_worker, service_settings, capture_http, capture_smtp
) -> None:
    user = simulator_account.config.user
    configure_all(user, capture_http, events=["entry_placed", "guard_triggered", "sequence_anomaly"])
    simulator_account.simulator.set_price("BTCUSDT", "66000")  # the limit entry at 65000 rests
    accepted = post(client, user, alert(user.webhook_secret, tv={"exchange": "simulator"}))
    assert accepted.status_code == 202, accepted.content
    wait_for(lambda: capture_http.on("/slack/"), message="the entry placed message")
    guard_pause_set(user=user, paused=True, actor=user)
    sent_at = time.time()
    refused = post(
        client,
        user,
        alert(
            user.webhook_secret, tv={"exchange": "simulator", "symbol": "ETHUSDT"}, strategy_info={"trade_id": "T-2"}
        ),
    )
    assert refused.json()["status"] == "ignored"
    wait_for(lambda: len(capture_http.on("/slack/")) >= 2, message="the guard message")
    took_ms = (capture_http.on("/slack/")[1].at - sent_at) * 1000
    print(f"\nrefused alert sent -> guard message on Slack: {took_ms:.0f} ms")
    missed = alert(
        user.webhook_secret,
        tv={"exchange": "simulator", "symbol": "SOLUSDT", "action": "sell", "prev_market_position": "long"},
        execution_intent={"type": "exit", "side": "sell"},
        strategy_info={"trade_id": "T-3"},
    )
    assert post(client, user, missed).status_code == 200
    wait_for(lambda: len(capture_http.on("/slack/")) >= 3, message="the sequence anomaly message")
    placed, guard, anomaly = (received.body["text"] for received in capture_http.on("/slack/"))
    assert placed.startswith("Entry placed: BTC/USDT BUY ") and "@ 65000 (limit, entry)" in placed
    assert guard.splitlines()[:2] == ["Guard pause: ETH/USDT 1h buy ignored", "pause: trading is paused: no new groups"]
    assert anomaly.splitlines()[:2] == [
        "Sequence anomaly: SOL/USDT 1h sell",
        "an exit arrived with nothing open or queued for this symbol",
    ]
    wait_for(
        lambda: (
            len(capture_http.on("/discord/")) == 3
            and len(capture_http.on(f"/tg/bot{TOKEN}/sendMessage")) == 3
            and len(capture_smtp.messages) == 3
        ),
        message="three messages on every channel",
    )
    assert Delivery.objects.filter(event_type="guard_triggered", status="sent").count() == 4
