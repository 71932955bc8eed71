"""A strategy instance on the simulator with real candles: its entry and exit signals go through the
webhook's intake, the celery worker places the grid on the simulator through the real ccxt client, and
the exit closes the group (no mocks anywhere)."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from exchanges.candles import services as candle_services
from positions.models import PositionGroup
from positions.services.configs import config_set
from positions.tests.test_end_to_end import wait_for
from strategies.library import candles_frame, strategy_for
from strategies.models import StrategyInstance
from strategies.services import live
from strategies.services.live import WINDOWS

HOUR = 3_600_000
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def _store(lines: list[str]) -> None:
    candle_services.candles_import(
        exchange_name="simulator",
        symbol="BTC/USDT",
        timeframe="1h",
        lines=["timestamp_ms,open,high,low,close,volume", *lines],
    )


def _at_close(line: str) -> datetime:
    return datetime.fromtimestamp((int(line.split(",")[0]) + HOUR) / 1000, tz=UTC) + timedelta(seconds=5)


def test_rsi_on_the_simulator_opens_and_closes_a_group(
    auth_client, simulator_account, celery_worker, shared_data: Path
) -> None:
    WINDOWS.clear()
    # One leg at the market and a take-profit far away: only the strategy's exit can close the group.
    config_set(
        user=simulator_account.config.user,
        # The ticks replay historic closes: the stale-alert guard would refuse their signals.
        data={
            "levels": [{"gap_percent": "0", "weight_percent": "100", "tp_percent": "50"}],
            "max_alert_lag_seconds": 0,
        },
        partial=True,
    )
    with gzip.open(shared_data / "candles" / "binance_BTC_USDT_1h.csv.gz", "rt") as handle:
        lines = handle.read().splitlines()[1:1201]
    created = auth_client.post(
        "/api/strategies",
        {"kind": "rsi", "symbols": ["BTC/USDT"], "timeframes": ["1h"], "exchange": "simulator"},
        format="json",
    )
    assert created.status_code == 201, created.content
    instance = StrategyInstance.objects.get(pk=created.json()["id"])
    rows = [tuple(float(v) for v in line.split(",")) for line in lines]
    signals = strategy_for("rsi").signals(candles_frame(rows))
    entry = next(i for i in range(200, len(rows)) if signals["entry"].iloc[i])
    exit_ = next(i for i in range(entry + 1, len(rows)) if signals["exit"].iloc[i])

    _store(lines[: entry + 1])
    simulator_account.simulator.set_price("BTCUSDT", lines[entry].split(",")[4])
    (sent,) = live.strategies_tick(now=_at_close(lines[entry]), sync=False).signals
    assert sent["outcome"] == "new_entry"
    group = PositionGroup.objects.get(pk=sent["group_id"])
    wait_for(lambda: PositionGroup.objects.get(pk=group.pk).filled_quantity > 0, message="entry filled")

    _store(lines[entry + 1 : exit_ + 1])
    simulator_account.simulator.set_price("BTCUSDT", lines[exit_].split(",")[4])
    (sent,) = live.strategies_tick(now=_at_close(lines[exit_]), sync=False).signals
    assert (sent["action"], sent["outcome"], sent["group_id"]) == ("exit", "exit", str(group.pk))
    wait_for(lambda: PositionGroup.objects.get(pk=group.pk).status == "closed", message="group closed")
    detail = auth_client.get(f"/api/strategies/{instance.pk}").json()
    assert detail["health"]["trades"] == 1
    WINDOWS.clear()
