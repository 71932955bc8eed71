"""Strategy instances through `/api/strategies`, and the live tick: real candles in the store, an RSI
instance on them, its signals through the webhook's intake (source=strategy) opening a group and then
exiting it; auto-disable on health. PostgreSQL and Redis, no exchange."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from exchanges.candles import services as candle_services
from positions import hooks
from positions.models import PositionGroup, WebhookSignal
from strategies.library import candles_frame, strategy_for
from strategies.models import StrategyInstance, StrategySignal
from strategies.services import live

HOUR = 3_600_000
pytestmark = pytest.mark.django_db


def _create(client, **data):
    body = {"kind": "rsi", "symbols": ["BTCUSDT"], "timeframes": ["1h"], "exchange": "simulator", **data}
    return client.post("/api/strategies", body, format="json")


def test_create_with_defaults_and_read_back(auth_client, sim_config) -> None:
    answer = _create(auth_client, params={"length": 21})
    assert answer.status_code == 201, answer.content
    body = answer.json()
    assert body["params"] == {"length": 21, "oversold": 30.0, "overbought": 70.0}
    assert (body["symbols"], body["timeframes"], body["exchange"], body["enabled"]) == (
        ["BTC/USDT"],
        ["1h"],
        "simulator",
        True,
    )
    assert body["entry_rule"] == "RSI(length) crosses up through oversold"
    assert body["health"]["trades"] == 0
    listed = auth_client.get("/api/strategies").json()
    assert [item["id"] for item in listed] == [body["id"]]
    changed = auth_client.patch(f"/api/strategies/{body['id']}", {"params": {"oversold": 25}}, format="json")
    assert changed.status_code == 200 and changed.json()["params"]["oversold"] == 25.0
    off = auth_client.post(f"/api/strategies/{body['id']}/disable")
    assert off.json()["enabled"] is False and off.json()["disabled_reason"] == "disabled by its owner"
    on = auth_client.post(f"/api/strategies/{body['id']}/enable")
    assert on.json()["enabled"] is True and on.json()["disabled_reason"] == ""
    assert auth_client.delete(f"/api/strategies/{body['id']}").status_code == 204
    assert not StrategyInstance.objects.exists()


@pytest.mark.parametrize(
    ("data", "field", "reason"),
    [
        ({"kind": "ichimoku"}, "kind", "unknown strategy 'ichimoku'"),
        ({"params": {"length": 500}}, "params.length", "must be between 2 and 200"),
        ({"kind": "stochastic", "params": {"oversold": 90}}, "params.oversold", "must be below overbought"),
        ({"symbols": ["NOPEUSDT"]}, "symbols", "'NOPEUSDT' is not a market on simulator"),
        ({"symbols": []}, "symbols", "must be a non-empty list"),
        ({"timeframes": ["7m"]}, "timeframes", "unknown timeframe '7m'"),
        ({"confirm_timeframe": "15m"}, "confirm_timeframe", "must be higher"),
        ({"exchange": "kraken"}, "exchange", "no enabled exchange config named 'kraken'"),
    ],
)
def test_bad_instances_are_refused_by_field(auth_client, sim_config, data: dict, field: str, reason: str) -> None:
    answer = _create(auth_client, **data)
    assert answer.status_code == 400
    assert reason in answer.json()["fields"][field][0]
    assert not StrategyInstance.objects.exists()


def test_other_users_strategies_are_not_found(auth_client, sim_config, user_factory, api_client) -> None:
    created = _create(auth_client).json()
    stranger = user_factory(role="trader")
    api_client.force_authenticate(stranger)
    assert api_client.get(f"/api/strategies/{created['id']}").status_code == 404
    assert api_client.post(f"/api/strategies/{created['id']}/disable").status_code == 404


@pytest.fixture
def btc_lines(shared_data: Path) -> list[str]:
    with gzip.open(shared_data / "candles" / "binance_BTC_USDT_1h.csv.gz", "rt") as handle:
        return handle.read().splitlines()[1:1201]


def _store(lines: list[str]) -> None:
    candle_services.candles_import(
        exchange_name="simulator",
        symbol="BTC/USDT",
        timeframe="1h",
        lines=["timestamp_ms,open,high,low,close,volume", *lines],
    )


def _at_close(line: str) -> datetime:
    return datetime.fromtimestamp((int(line.split(",")[0]) + HOUR) / 1000, tz=UTC) + timedelta(seconds=5)


def test_rsi_instance_opens_and_exits_a_group_through_the_intake(auth_client, sim_config, btc_lines) -> None:
    instance = StrategyInstance.objects.get(pk=_create(auth_client).json()["id"])
    rows = [tuple(float(v) for v in line.split(",")) for line in btc_lines]
    signals = strategy_for("rsi").signals(candles_frame(rows))  # the whole history, as a backtest sees it
    entry = next(i for i in range(200, len(rows)) if signals["entry"].iloc[i])
    exit_ = next(i for i in range(entry + 1, len(rows)) if signals["exit"].iloc[i])

    # Candles arrive as they close: up to the entry candle, then the tick at its close.
    _store(btc_lines[: entry + 1])
    tick = live.strategies_tick(now=_at_close(btc_lines[entry]), sync=False)
    assert tick.evaluated == 1 and len(tick.signals) == 1
    sent = tick.signals[0]
    assert (sent["action"], sent["outcome"]) == ("entry", "new_entry")
    assert Decimal(sent["price"]) == Decimal(btc_lines[entry].split(",")[4])
    group = PositionGroup.objects.get(pk=sent["group_id"])
    assert (group.symbol, group.timeframe, group.status) == ("BTC/USDT", "1h", "waiting")
    webhook_row = WebhookSignal.objects.get(group_id=group.pk, classification="new_entry")
    assert webhook_row.source == "strategy"
    # Stamped with its tick's time, which the stale-alert guard reads (live: now).
    assert webhook_row.tv_timestamp == _at_close(btc_lines[entry]).isoformat().replace("+00:00", "Z")
    assert isinstance(webhook_row.body, dict) and webhook_row.body["secret"] == "[redacted]"

    # The same close again sends nothing.
    assert live.strategies_tick(now=_at_close(btc_lines[entry]), sync=False).signals == []

    # Up to the exit candle: the exit goes through the intake for the open group.
    _store(btc_lines[entry + 1 : exit_ + 1])
    tick = live.strategies_tick(now=_at_close(btc_lines[exit_]), sync=False)
    (sent,) = tick.signals
    assert (sent["action"], sent["outcome"], sent["group_id"]) == ("exit", "exit", str(group.pk))
    assert WebhookSignal.objects.get(group_id=group.pk, classification="exit").processing_status == "pending"
    assert StrategySignal.objects.filter(instance=instance).count() == 2


def test_no_signal_on_a_quarantined_or_missing_candle(auth_client, sim_config, btc_lines) -> None:
    _create(auth_client)
    _store(btc_lines[:300])
    # The tick an hour after the newest stored candle closed: the candle it wants is not stored.
    late = _at_close(btc_lines[299]) + timedelta(hours=1)
    assert live.strategies_tick(now=late, sync=False).skipped == 1
    bad = btc_lines[300].split(",")
    bad[2] = str(float(bad[4]) - 10)  # high below close: quarantined
    _store([",".join(bad)])
    tick = live.strategies_tick(now=_at_close(btc_lines[300]), sync=False)
    assert (tick.evaluated, tick.skipped, tick.signals) == (0, 1, [])


def test_a_failing_strategy_disables_itself_and_stays_disabled(
    auth_client, sim_config, django_capture_on_commit_callbacks
) -> None:
    instance = StrategyInstance.objects.get(pk=_create(auth_client).json()["id"])
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(11):
        group = PositionGroup.objects.create(
            user=instance.user,
            exchange_config=sim_config,
            symbol="BTC/USDT",
            timeframe="1h",
            status="closed",
            realized_pnl=Decimal("-1"),
            total_cost=Decimal("100"),
            closed_at=start + timedelta(hours=i),
        )
        StrategySignal.objects.create(
            instance=instance,
            symbol="BTC/USDT",
            timeframe="1h",
            candle_open=start + timedelta(hours=i),
            action="entry",
            price=Decimal("1"),
            group_id=group.pk,
        )
    announced: list[hooks.EngineEvent] = []
    hooks.engine_event_subscribe(announced.append)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            tick = live.strategies_tick(now=datetime(2026, 2, 1, tzinfo=UTC), sync=False)
    finally:
        hooks.engine_event_unsubscribe(announced.append)
    assert tick.disabled == [str(instance.pk)]
    # Told to the apps above (notifications tells the owner): which instance and why.
    (event,) = [e for e in announced if e.kind == hooks.STRATEGY_DISABLED]
    assert event.data == {
        "strategy_id": str(instance.pk),
        "kind": "rsi",
        "symbols": ["BTC/USDT"],
        "reason": "11 losing trades in a row (more than 10)",
    }
    instance.refresh_from_db()
    assert not instance.enabled
    assert instance.disabled_reason == "auto-disabled: 11 losing trades in a row (more than 10)"
    detail = auth_client.get(f"/api/strategies/{instance.pk}").json()
    assert detail["health"]["consecutive_losses"] == 11 and detail["enabled"] is False
    # Disabled instances are not evaluated, and nothing re-enables them but a person.
    assert live.strategies_tick(now=datetime(2026, 2, 2, tzinfo=UTC), sync=False).instances == 0
    assert auth_client.post(f"/api/strategies/{instance.pk}/enable").json()["enabled"] is True


def _falling_then_jump(base: float, *, count: int = 400) -> list[str]:
    """Hourly candles that fall (by 0.1 % and 0.2 % in turn) and then jump 2 %: RSI(14) crosses up
    through 30 on the last one."""
    closes = [base]
    for i in range(count - 2):
        closes.append(closes[-1] * (0.999 if i % 2 else 0.998))
    closes.append(closes[-1] * 1.02)
    start = 1_767_225_600_000  # 2026-01-01
    lines = []
    for i, close in enumerate(closes):
        opened = closes[i - 1] if i else close
        high, low = max(opened, close) * 1.001, min(opened, close) * 0.999
        lines.append(f"{start + i * HOUR},{opened:.6f},{high:.6f},{low:.6f},{close:.6f},10")
    return lines


def _store_series(symbol: str, lines: list[str], timeframe: str = "1h") -> None:
    candle_services.candles_import(
        exchange_name="simulator",
        symbol=symbol,
        timeframe=timeframe,
        lines=["timestamp_ms,open,high,low,close,volume", *lines],
    )


def test_correlation_guard_blocks_an_entry_next_to_a_correlated_open_group(auth_client, sim_config) -> None:
    eth, btc = _falling_then_jump(3000.0), _falling_then_jump(60000.0)
    _store_series("ETH/USDT", eth)
    _store_series("BTC/USDT", btc)
    PositionGroup.objects.create(
        user=sim_config.user, exchange_config=sim_config, symbol="ETH/USDT", timeframe="1h", status="live"
    )
    guarded = _create(auth_client, correlation_guard=True).json()
    assert guarded["correlation_guard"] is True and Decimal(guarded["max_correlation"]) == Decimal("0.7")
    (sent,) = live.strategies_tick(now=_at_close(btc[-1]), sync=False).signals
    assert sent["action"] == "entry" and sent["outcome"] == "blocked"
    assert sent["reason"] == "returns correlate 1.00 with the open ETH/USDT group (max 0.7)"
    assert not PositionGroup.objects.filter(symbol="BTC/USDT").exists()
    # Without the guard the same signal opens a group.
    auth_client.patch(f"/api/strategies/{guarded['id']}", {"correlation_guard": False}, format="json")
    StrategySignal.objects.all().delete()
    from django.core.cache import cache

    cache.clear()
    (sent,) = live.strategies_tick(now=_at_close(btc[-1]), sync=False).signals
    assert sent["outcome"] == "new_entry"


def test_confirm_timeframe_holds_back_entries(auth_client, sim_config) -> None:
    btc = _falling_then_jump(60000.0)
    _store_series("BTC/USDT", btc)
    # 4h candles still falling: RSI(14) on 4h is far below 50, the entry is confirmed.
    four_hours = [line for line in btc if int(line.split(",")[0]) % (4 * HOUR) == 0][:-1]
    _store_series("BTC/USDT", [line for line in four_hours], timeframe="4h")
    created = _create(auth_client, confirm_timeframe="4h").json()
    (sent,) = live.strategies_tick(now=_at_close(btc[-1]), sync=False).signals
    assert sent["outcome"] == "new_entry", sent
    # A 4h series that rose instead (RSI above 50) holds the entry back.
    StrategySignal.objects.all().delete()
    PositionGroup.objects.all().delete()
    auth_client.patch(f"/api/strategies/{created['id']}", {"confirm_timeframe": "1d"}, format="json")
    rising = [
        f"{1_760_000_000_000 // 86_400_000 * 86_400_000 + i * 86_400_000},{100 + i},{102 + i},{99 + i},{101 + i},1"
        for i in range(40)
    ]
    _store_series("BTC/USDT", rising, timeframe="1d")
    from django.core.cache import cache

    cache.clear()
    (sent,) = live.strategies_tick(now=_at_close(btc[-1]), sync=False).signals
    assert (sent["outcome"], sent["reason"]) == ("blocked", "not confirmed on 1d (RSI 14 is not below 50)")
