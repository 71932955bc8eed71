"""The backtester's results pinned to digests: speed work on the driver or the rules it calls must leave
every fill, deal and alert outcome exactly as it was (docs/backtests.md#speed).

The digests were taken from the implementation before the speed work (commit 13c8574) and cover the
paths that work touched: a full year of BTC/USDT 5m with the default config and the RSI strategy (the
`backtest` bench's run: per-leg TPs, pyramids, the pool), the same year's first two months under each
other take-profit mode with a stop and trailing, and three symbols on 1h with one slot (the queue) and
with the risk engine. Each digest is the sha256 of one line per fill (time, side, price, quantity, fee,
asset, kind, symbol, deal), then one per deal (its legs and realized PnL), then the alert outcomes and the metrics
(all but the run's seconds).
"""

from __future__ import annotations

import hashlib
import json

import pytest

from analytics.backtest import BacktestRequest, CandleSeries, run_backtest
from analytics.backtest.files import load_market_rules, read_candles
from analytics.backtest.signals import strategy_signals

SYMBOL = "BTC/USDT"
TWO_MONTHS = 2 * 30 * 288
DIGESTS = {
    "year_default": "3f92a0b4ff1af032f621e4e6b1b0eff927ccd970aa5257a7288167e592203f1a",
    "two_months_aggregate": "eca2bbfbe8da9ad387def884adb1d1112b5067bcf16add41b49b0a316b5826b3",
    "two_months_pyramid_aggregate": "c0f22cf4d86adf79e63107e0ee07d78afc66b0d60bd43ab88610384cc2f8c9b4",
    "two_months_hybrid_trailing": "c912a0c9bb9bf255f6e79b7159b2379070a9d9821e5d56cf0f3f8dd2fa427fc6",
    "three_symbols_queue": "ed0b554b1a8c98a0416711fa7731ac5095a7781e19a1c2b35f13c50607464287",
    "three_symbols_risk": "1035256ec6f936775ff1fb7466cbff278694bdc313a080e7cdc1811ca83facc9",
}
MODES = {
    "two_months_aggregate": {"tp_mode": "aggregate", "stop_loss_percent": "4"},
    "two_months_pyramid_aggregate": {"tp_mode": "pyramid_aggregate", "cancel_dca_beyond_percent": "3"},
    "two_months_hybrid_trailing": {
        "tp_mode": "hybrid",
        "trailing_enabled": True,
        "trailing_activation_percent": "1",
        "trailing_stop_percent": "0.5",
    },
}


def digest(result) -> str:
    lines = [
        f"{f.time_ms},{f.side},{f.price},{f.quantity},{f.fee},{f.fee_asset},{f.kind},{f.symbol},{f.deal}"
        for f in result.fills
    ]
    for deal in result.deals:
        legs = ";".join(
            f"{leg.pyramid}/{leg.level}/{leg.price}/{leg.quantity}/{leg.filled_at_ms}/{leg.fill_price}/{leg.fee}"
            for leg in deal.legs
        )
        head = f"{deal.id},{deal.symbol},{deal.opened_ms},{deal.closed_ms},{deal.close_reason}"
        amounts = f"{deal.realized_pnl},{deal.invested},{deal.fees},{deal.max_floating_drawdown_pct!r}"
        lines.append(f"{head},{amounts},{legs}")
    lines.append(json.dumps(result.signal_outcomes, sort_keys=True))
    metrics = {key: value for key, value in result.metrics.items() if key != "seconds"}
    lines.append(json.dumps(metrics, sort_keys=True, default=str))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


@pytest.fixture(scope="module")
def year(shared_data):
    rows = read_candles(shared_data / "candles" / "binance_BTC_USDT_5m.csv.gz", timeframe="5m")
    series = CandleSeries.from_rows(rows)
    return rows, series, strategy_signals("rsi", None, series, symbol=SYMBOL), load_market_rules(None, SYMBOL)


def test_a_year_of_5m_with_the_default_config(year):
    _, series, signals, rules = year
    request = BacktestRequest(
        candles={SYMBOL: series}, timeframe="5m", signals=signals, config={}, market_rules={SYMBOL: rules}
    )
    result = run_backtest(request)
    assert result.metrics["trades"] == 4789
    assert digest(result) == DIGESTS["year_default"]


@pytest.mark.parametrize("name", sorted(MODES))
def test_two_months_under_each_exit_mode(year, name):
    rows, _, signals, rules = year
    part = rows[:TWO_MONTHS]
    end = part[-1].open_ms
    request = BacktestRequest(
        candles={SYMBOL: part},
        timeframe="5m",
        signals=[s for s in signals if s.time_ms <= end],
        config=MODES[name],
        market_rules={SYMBOL: rules},
    )
    assert digest(run_backtest(request)) == DIGESTS[name]


@pytest.fixture(scope="module")
def three_symbols(shared_data):
    series, rules, signals = {}, {}, []
    for symbol in ("BTC/USDT", "ETH/USDT", "SOL/USDT"):
        path = shared_data / "candles" / f"binance_{symbol.replace('/', '_')}_1h.csv.gz"
        rows = read_candles(path, timeframe="1h")[:3000]
        series[symbol], rules[symbol] = rows, load_market_rules(None, symbol)
        signals += strategy_signals("rsi", None, rows, symbol=symbol)
    return series, rules, sorted(signals, key=lambda s: s.time_ms)


@pytest.mark.parametrize(
    ("name", "config"),
    [
        ("three_symbols_queue", {"max_open_groups": 1}),
        ("three_symbols_risk", {"max_open_groups": 3, "post_full_wait_minutes": 0, "loss_threshold_percent": "-1"}),
    ],
)
def test_three_symbols(three_symbols, name, config):
    series, rules, signals = three_symbols
    request = BacktestRequest(candles=series, timeframe="1h", signals=signals, config=config, market_rules=rules)
    assert digest(run_backtest(request)) == DIGESTS[name]


def test_the_callers_decimal_context_changes_nothing(year):
    """ccxt's synchronous client leaves its thread on half-up rounding with underflow trapped; a backtest run
    from such a thread gives the same amounts to the last digit."""
    import decimal

    rows, _, signals, rules = year
    part = rows[:TWO_MONTHS]
    end = part[-1].open_ms
    request = BacktestRequest(
        candles={SYMBOL: part},
        timeframe="5m",
        signals=[s for s in signals if s.time_ms <= end],
        config=MODES["two_months_hybrid_trailing"],
        market_rules={SYMBOL: rules},
    )
    with decimal.localcontext() as context:
        context.rounding = decimal.ROUND_HALF_UP
        context.traps[decimal.Underflow] = True
        assert digest(run_backtest(request)) == DIGESTS["two_months_hybrid_trailing"]
