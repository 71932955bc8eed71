"""The live engine on the replaying simulator and the backtester on the same candles and alerts agree:
the same fills (side, price, quantity) and the same realized PnL (docs/backtests.md#fill-model).

One day of real BTC/USDT 1m candles and a handful of alerts. The live side is the whole engine: the
webhook, the celery worker placing orders through ccxt, the simulator matching them, the fill monitor
booking fills and placing take-profits. The test moves the simulator's price along each candle's walk
(`exchanges.fillmodel.walk_points`, as its candle replay does) and lets the engine settle after every
point; candles whose range crosses no resting order are passed over (nothing can fill there, and this
config has no price-triggered exit). An alert is sent at its candle's close, with the price at the close.
"""

from __future__ import annotations

import time
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from analytics.backtest import BacktestRequest, Signal, run_backtest
from analytics.backtest.files import read_candles
from exchanges.fillmodel import walk_points
from exchanges.precision import market_rules_from_exchange_info

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SYMBOL = "BTC/USDT"
CONFIG = {
    "levels": [
        {"gap_percent": "0", "weight_percent": "40", "tp_percent": "0.3"},
        {"gap_percent": "-0.3", "weight_percent": "30", "tp_percent": "0.3"},
        {"gap_percent": "-0.6", "weight_percent": "30", "tp_percent": "0.4"},
    ],
    "capital_usd": "300",
    "max_pyramids": 2,
    "tp_mode": "per_leg",
    "max_alert_lag_seconds": 0,  # the alerts carry their candle's time, two years ago
}
# (minute of the day, action): two deals, the first with a pyramid, the second closed by its exit alert.
ALERTS = [(60, "entry"), (240, "entry"), (700, "exit"), (800, "entry"), (1300, "exit")]


def wait_for(predicate, timeout: float = 30.0, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {message}")


def _settled() -> bool:
    from positions.models import DCAOrder, ExitOrder, WebhookSignal

    unsent = ("pending", "unknown")
    return (
        not DCAOrder.objects.filter(status__in=unsent).exists()
        and not ExitOrder.objects.filter(status__in=unsent).exists()
        and not WebhookSignal.objects.filter(processing_status="pending").exists()
    )


def _settle() -> None:
    """Book what the simulator filled and wait until every order the engine decided on has been sent."""
    from positions.services.monitor import check_exits, monitor_fills

    for _ in range(2):
        wait_for(_settled, message="the engine to settle")
        monitor_fills()
        check_exits()
    wait_for(_settled, message="the engine to settle")


def test_live_engine_on_the_simulator_equals_the_backtest(client, simulator_account, celery_worker, shared_data):
    import json

    from positions.models import PositionGroup
    from positions.services.configs import config_set
    from positions.tests.conftest import alert, post

    account = simulator_account
    user = account.config.user
    config_set(user=user, data=CONFIG, partial=True)
    minutes = read_candles(shared_data / "candles" / "binance_BTC_USDT_1m_2024-07-26_30d.csv.gz", timeframe="1m")
    day = [m for m in minutes if m.open_ms >= int(datetime(2024, 7, 27, tzinfo=UTC).timestamp() * 1000)][:1440]
    info = json.loads((shared_data / "exchange" / "binance_exchangeInfo_subset.json").read_text())
    rules = market_rules_from_exchange_info(info, SYMBOL)
    assert rules is not None

    # The backtest of the same alerts.
    signals = [Signal(day[i].open_ms, SYMBOL, action) for i, action in ALERTS]
    result = run_backtest(
        BacktestRequest(
            candles={SYMBOL: day}, timeframe="1m", signals=signals, config=CONFIG, market_rules={SYMBOL: rules}
        )
    )
    assert len(result.fills) > 10

    # The live engine, walked along the same candles.
    sim = account.simulator
    sim.set_price("BTCUSDT", str(day[0].open))
    alerts = dict(ALERTS)
    for index, candle in enumerate(day):
        resting = [o for o in account.orders() if o["status"] in ("NEW", "PARTIALLY_FILLED")] if index else []
        buys = [Decimal(o["price"]) for o in resting if o["side"] == "BUY"]
        sells = [Decimal(o["price"]) for o in resting if o["side"] == "SELL"]
        crosses = (buys and candle.low <= max(buys)) or (sells and candle.high >= min(sells))
        if crosses:
            for price in walk_points(candle.open, candle.high, candle.low, candle.close):
                sim.set_price("BTCUSDT", str(price))
                _settle()
        if index in alerts:
            sim.set_price("BTCUSDT", str(candle.close))
            _settle()
            close_time = datetime.fromtimestamp((candle.open_ms + 60_000) / 1000, tz=UTC)
            body = alert(
                user.webhook_secret,
                tv={
                    "exchange": "simulator",
                    "timeframe": "1",
                    "entry_price": str(candle.close),
                    "close_price": str(candle.close),
                    **({"action": "sell"} if alerts[index] == "exit" else {}),
                },
                strategy_info={"trade_id": f"T-{index}"},
                timestamp=close_time.isoformat().replace("+00:00", "Z"),
                **({"execution_intent": {"type": "exit", "side": "sell"}} if alerts[index] == "exit" else {}),
            )
            assert post(client, user, body).status_code in (200, 202)
            _settle()

    live = Counter(
        (o["side"].lower(), Decimal(f["price"]), Decimal(f["qty"])) for o in account.orders() for f in o["fills"]
    )
    backtest = Counter((f.side, f.price, f.quantity) for f in result.fills)
    assert live == backtest
    groups = PositionGroup.objects.filter(user=user).order_by("created_at")
    assert [g.status for g in groups] == ["closed", "closed"]
    # The group row keeps 18 decimals; the backtest's Decimal carries more.
    assert len(result.deals) == 2
    for group, deal in zip(groups, result.deals, strict=True):
        assert abs(group.realized_pnl - deal.realized_pnl) < Decimal("1e-15")
