"""The backtester on real candles: deals worked out by hand (docs/backtests.md).

The slice is BTC/USDT 1h from 2024-09-14 00:00 UTC (candle 0) in ../shared/data; market rules from the
simulator's built-in exchangeInfo (tick 0.01, step 0.00001, min notional 5); fee 0.1 % in the asset
received. The candles the deals below touch (o/h/l/c):

     4  60329.38 60348.24 60184.86 60213.05   entry signal here: alert at the close, 60213.05
     5  60213.06 60242.47 59900.32 59926      red: walks open → high → low → close
    10  60070.2  60070.21 59789.32 59851.09   red
    25  60025.95 60280.06 60025.95 60235.22   green: open → low → high → close
    26  60235.22 60267.86 60116    60238.01   green
    37  60104.39 60350.98 60085.62 60189.98   green

The grid: capital 1000, level 0 (gap 0, weight 50, tp 0.5 %) and level 1 (gap −0.5 %, weight 50, tp 0.5 %):
- level 0 at 60213.05 buys floor(500 / 60213.05 = 0.0083038…) = 0.00830; it is marketable at the close
  (a buy at the current price) and fills at once at 60213.05, fee 0.0000083 BTC, net 0.0082917;
- level 1 at floor(60213.05 × 0.995 = 59911.98475) = 59911.98 buys floor(500 / 59911.98) = 0.00834; it
  rests, and candle 5's low 59900.32 crosses it: it fills at its limit 59911.98, fee 0.00000834 BTC.
After both: held = 0.0082917 + 0.00833166 = 0.01662336 BTC for a cost of 60213.05 × 0.0083 + 59911.98 ×
0.00834 = 499.768315 + 499.6659132 = 999.4342282 USDT, average 60121.8… (fees are in the cost).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from analytics.backtest import BacktestError, BacktestRequest, Signal, run_backtest
from analytics.backtest.files import load_market_rules, read_candles
from analytics.backtest.signals import signals_from_csv, signals_from_tradingview, strategy_signals

D = Decimal
SYMBOL = "BTC/USDT"
LEVELS = [
    {"gap_percent": "0", "weight_percent": "50", "tp_percent": "0.5"},
    {"gap_percent": "-0.5", "weight_percent": "50", "tp_percent": "0.5"},
]
HELD = D("0.0082917") + D("0.00833166")  # 0.01662336
COST = D("60213.05") * D("0.0083") + D("59911.98") * D("0.00834")  # 999.4342282
ENTRY_FILLS = [("buy", D("60213.05"), D("0.00830"), "entry"), ("buy", D("59911.98"), D("0.00834"), "dca")]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def candles(shared_data):
    return read_candles(shared_data / "candles" / "binance_BTC_USDT_1h.csv.gz", timeframe="1h")[:40]


@pytest.fixture(scope="module")
def rules():
    return load_market_rules(None, SYMBOL)


def run(candles, rules, config, signals):
    request = BacktestRequest(
        candles={SYMBOL: candles},
        timeframe="1h",
        signals=signals,
        config={"levels": LEVELS, "capital_usd": "1000", "max_pyramids": 1, **config},
        market_rules={SYMBOL: rules},
    )
    return run_backtest(request)


def entry(candles, index):
    return Signal(candles[index].open_ms, SYMBOL, "entry")


def exit_(candles, index):
    return Signal(candles[index].open_ms, SYMBOL, "exit")


def fills(result):
    return [(f.side, f.price, f.quantity, f.kind) for f in result.fills]


def sell_fee(price, quantity):
    return (price * quantity * D("0.001")).quantize(D("1e-8"))


def test_per_leg_take_profit_then_exit_signal(candles, rules):
    result = run(candles, rules, {"tp_mode": "per_leg"}, [entry(candles, 4), exit_(candles, 30)])
    # Level 1's TP: floor(59911.98 × 1.005 = 60211.5399) = 60211.53 for its net floor(0.00833166) = 0.00833;
    # candle 25's high 60280.06 is the first to reach it (every high of candles 6-24 is below 60211.53).
    # Level 0's TP at floor(60213.05 × 1.005) = 60514.11 is never reached; the exit signal at candle 30's
    # close (60164.01) cancels it and sells what is held, floor(0.01662336 − 0.00833 = 0.00829336) = 0.00829.
    assert fills(result) == [
        *ENTRY_FILLS,
        ("sell", D("60211.53"), D("0.00833"), "tp"),
        ("sell", D("60164.01"), D("0.00829"), "exit"),
    ]
    # Average cost: each sale realizes its net proceeds less the average cost of what it sold.
    avg = COST / HELD
    realized = (D("60211.53") * D("0.00833") - sell_fee(D("60211.53"), D("0.00833")) - avg * D("0.00833")) + (
        D("60164.01") * D("0.00829") - sell_fee(D("60164.01"), D("0.00829")) - avg * D("0.00829")
    )
    (deal,) = result.deals
    assert deal.close_reason == "exit_signal"
    assert deal.realized_pnl == pytest.approx(realized, abs=D("1e-12"))
    assert deal.safety_orders_used == 1
    assert result.metrics["deals"] == 1 and result.metrics["trades"] == 4


def test_aggregate_take_profit_at_the_walk_point(candles, rules):
    result = run(candles, rules, {"tp_mode": "aggregate", "tp_aggregate_percent": "0.3"}, [entry(candles, 4)])
    # Target: average 999.4342282 / 0.01662336 = 60121.8… × 1.003 = 60302.2…; candle 37 is the first whose
    # high (60350.98) reaches it; the close sells floor(0.01662336) = 0.01662 at that point's price.
    target = COST / HELD * D("1.003")
    assert D("60280.06") < target < D("60350.98")
    assert fills(result) == [*ENTRY_FILLS, ("sell", D("60350.98"), D("0.01662"), "tp")]
    realized = D("60350.98") * D("0.01662") - sell_fee(D("60350.98"), D("0.01662")) - COST / HELD * D("0.01662")
    assert result.deals[0].realized_pnl == pytest.approx(realized, abs=D("1e-12"))
    assert result.deals[0].close_reason == "tp_aggregate"


def test_hybrid_leg_tp_first_then_aggregate(candles, rules):
    result = run(candles, rules, {"tp_mode": "hybrid", "tp_aggregate_percent": "0.3"}, [entry(candles, 4)])
    # Level 1's TP fills at candle 25 as in per_leg; the average is unchanged by a sale, so the aggregate
    # target is still 60302.2…: candle 37 sells the rest (0.00829) and cancels level 0's TP.
    assert fills(result) == [
        *ENTRY_FILLS,
        ("sell", D("60211.53"), D("0.00833"), "tp"),
        ("sell", D("60350.98"), D("0.00829"), "tp"),
    ]
    assert result.deals[0].close_reason == "tp_aggregate"


def test_pyramid_aggregate(candles, rules):
    result = run(candles, rules, {"tp_mode": "pyramid_aggregate", "tp_aggregate_percent": "0.3"}, [entry(candles, 4)])
    # One pyramid: its own average is the group's; it sells its holding floor(0.01662336) = 0.01662 at
    # candle 37's high, and the dust left (0.00000336 BTC) closes the group.
    assert fills(result) == [*ENTRY_FILLS, ("sell", D("60350.98"), D("0.01662"), "tp")]
    assert result.deals[0].close_reason == "tp_pyramid"


def test_stop_loss(candles, rules):
    config = {"tp_mode": "aggregate", "tp_aggregate_percent": "5", "stop_loss_percent": "0.5"}
    result = run(candles, rules, config, [entry(candles, 4)])
    # Stop at 60121.8… × 0.995 = 59821.2…: candles 6-9 stay above (lowest low 59858.58); candle 10's low
    # 59789.32 is below it: everything sells at that point's price.
    stop = COST / HELD * D("0.995")
    assert D("59789.32") < stop < D("59858.58")
    assert fills(result) == [*ENTRY_FILLS, ("sell", D("59789.32"), D("0.01662"), "stop")]
    realized = D("59789.32") * D("0.01662") - sell_fee(D("59789.32"), D("0.01662")) - COST / HELD * D("0.01662")
    assert result.deals[0].realized_pnl == pytest.approx(realized, abs=D("1e-12"))
    assert result.deals[0].close_reason == "stop_loss"


def test_trailing_stop(candles, rules):
    config = {
        "tp_mode": "aggregate",
        "tp_aggregate_percent": "5",
        "trailing_enabled": True,
        "trailing_activation_percent": "0.2",
        "trailing_stop_percent": "0.1",
    }
    result = run(candles, rules, config, [entry(candles, 4)])
    # Activation at 60121.8… × 1.002 = 60242.1…: candle 25's high 60280.06 activates it, the stop at
    # 60280.06 × 0.999 = 60219.78; its close 60235.22 stays above. Candle 26 walks open 60235.22 (no new
    # high) then its low 60116, below the stop: it sells there.
    assert fills(result) == [*ENTRY_FILLS, ("sell", D("60116"), D("0.01662"), "stop")]
    assert result.deals[0].close_reason == "trailing_stop"


def test_a_pyramid_gets_its_own_grid(candles, rules):
    config = {"tp_mode": "aggregate", "tp_aggregate_percent": "0.3", "max_pyramids": 2}
    result = run(candles, rules, config, [entry(candles, 4), entry(candles, 12)])
    # Pyramid 1 at candle 12's close 59794.03: level 0 buys floor(500 / 59794.03) = 0.00836 at once;
    # level 1 at floor(59794.03 × 0.995 = 59495.059…) = 59495.05 buys 0.00840 when candle 18's low 59400
    # crosses it. The group's average over the four legs then sets the aggregate TP.
    buys = [f for f in fills(result) if f[0] == "buy"]
    assert buys == [
        *ENTRY_FILLS,
        ("buy", D("59794.03"), D("0.00836"), "entry"),
        ("buy", D("59495.05"), D("0.00840"), "dca"),
    ]
    held = HELD + D("0.00836") - D("0.00000836") + D("0.00840") - D("0.0000084")
    cost = COST + D("59794.03") * D("0.00836") + D("59495.05") * D("0.00840")
    target = cost / held * D("1.003")
    (sell,) = [f for f in result.fills if f.side == "sell"]
    # The first walk point at or above the target, at that point's price.
    assert sell.price >= target and sell.quantity == D("0.03336")
    assert result.deals[0].pyramids == 2
    assert result.signal_outcomes == {"new_entry": 1, "pyramid": 1}


def test_entry_filter_drops_entries(candles, rules):
    result = run(candles, rules, {}, [entry(candles, 4)])
    assert result.metrics["trades"] > 0
    request = BacktestRequest(
        candles={SYMBOL: candles},
        timeframe="1h",
        signals=[entry(candles, 4)],
        market_rules={SYMBOL: rules},
        entry_filter=lambda time_ms, symbol: False,
    )
    filtered = run_backtest(request)
    assert filtered.fills == [] and filtered.signal_outcomes == {"filtered": 1}


def test_tradingview_list_of_trades_replayed(candles, rules):
    # TradingView lists the newest trade first, exit row above entry row.
    t4 = "2024-09-14 04:00"
    t30 = "2024-09-15 06:00"
    export = (
        "Trade #,Type,Signal,Date/Time,Price USDT,Contracts,Profit USDT,Profit %\n"
        f"1,Exit long,RSI exit,{t30},60164.01,0.0166,-1.2,-0.12\n"
        f"1,Entry long,RSI entry,{t4},60213.05,0.0166,-1.2,-0.12\n"
    )
    signals = signals_from_tradingview(export, symbol=SYMBOL)
    assert [(s.action, s.price) for s in signals] == [("entry", D("60213.05")), ("exit", D("60164.01"))]
    assert signals[0].time_ms == candles[4].open_ms
    result = run(candles, rules, {"tp_mode": "per_leg"}, signals)
    assert fills(result)[:3] == [*ENTRY_FILLS, ("sell", D("60211.53"), D("0.00833"), "tp")]
    assert result.deals[0].close_reason == "exit_signal"


def test_strategy_signals_come_from_the_library(candles, rules):
    signals = strategy_signals("rsi", {"length": 14}, candles, symbol=SYMBOL)
    assert all(s.action in ("entry", "exit") for s in signals)


def test_bad_input_names_the_field_or_row(candles, rules):
    with pytest.raises(BacktestError) as bad_columns:
        signals_from_csv("time,side\n1,entry\n", symbol=SYMBOL)
    assert "row 1" in str(bad_columns.value) and "signals" in bad_columns.value.errors
    with pytest.raises(BacktestError) as bad_action:
        signals_from_csv("timestamp,action,price\n2024-09-14T04:00:00Z,buy,\n", symbol=SYMBOL)
    assert "row 2, field 'action'" in str(bad_action.value)
    with pytest.raises(BacktestError) as bad_type:
        signals_from_tradingview("Trade #,Type,Date/Time,Price USDT\n1,Entry short,2024-09-14 04:00,1\n", symbol=SYMBOL)
    assert "row 2, field 'Type'" in str(bad_type.value)
    with pytest.raises(BacktestError) as no_candle:
        run(candles, rules, {}, [Signal(candles[-1].open_ms + 86_400_000, SYMBOL, "entry", None, "signals row 7")])
    assert "signals row 7" in no_candle.value.errors
    with pytest.raises(BacktestError) as unknown:
        run(candles, rules, {}, [Signal(candles[4].open_ms, "ETH/USDT", "entry")])
    assert "unknown symbol" in str(unknown.value)
    with pytest.raises(BacktestError) as bad_config:
        run(candles, rules, {"tp_mode": "sometimes"}, [])
    assert "config.tp_mode" in bad_config.value.errors
    with pytest.raises(BacktestError) as bad_symbol:
        load_market_rules(None, "NOPE/USDT")
    assert "symbol" in bad_symbol.value.errors


def test_command_end_to_end(shared_data, tmp_path):
    source = shared_data / "candles" / "binance_BTC_USDT_1h.csv.gz"
    candle_file = tmp_path / "btc_1h.csv"
    import gzip

    with gzip.open(source, "rt") as handle:
        candle_file.write_text("".join(line for _, line in zip(range(721), handle, strict=False)))
    fills_out, trades_out, equity_out = tmp_path / "fills.csv", tmp_path / "trades.csv", tmp_path / "equity.csv"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tradingsite.settings.test",
        "DATABASE_URL": "postgres://x@127.0.0.1:1/none",
    }
    done = subprocess.run(
        [sys.executable, "manage.py", "backtest", "--candles", str(candle_file), "--symbol", SYMBOL,
         "--timeframe", "1h", "--strategy", "rsi", "--fills-out", str(fills_out), "--trades-out", str(trades_out),
         "--equity-out", str(equity_out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    metrics = json.loads(done.stdout)
    for key in ("candles", "seconds", "deals", "trades", "total_return_pct", "cagr_pct", "win_rate", "max_drawdown_pct",
                "max_floating_drawdown_pct", "max_safety_orders_used", "sharpe", "sortino", "calmar", "profit_factor",
                "realized_pnl", "fees", "exposure_pct"):  # fmt: skip
        assert key in metrics
    assert metrics["candles"] == 720
    rows = fills_out.read_text().splitlines()
    assert rows[0] == "time_ms,side,price,quantity,fee,fee_asset,kind"
    assert len(rows) - 1 == metrics["trades"]
    assert len(equity_out.read_text().splitlines()) == 721
    bad = subprocess.run(
        [sys.executable, "manage.py", "backtest", "--candles", str(candle_file), "--symbol", "NOPE/USDT",
         "--timeframe", "1h", "--strategy", "rsi"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert bad.returncode != 0 and "symbol" in bad.stderr


@pytest.fixture(scope="module")
def three_symbols(shared_data):
    series, rules, signals = {}, {}, []
    for symbol in ("BTC/USDT", "ETH/USDT", "SOL/USDT"):
        path = shared_data / "candles" / f"binance_{symbol.replace('/', '_')}_1h.csv.gz"
        rows = read_candles(path, timeframe="1h")[:3000]
        series[symbol], rules[symbol] = rows, load_market_rules(None, symbol)
        signals += strategy_signals("rsi", None, rows, symbol=symbol)
    return series, rules, sorted(signals, key=lambda s: s.time_ms)


def test_the_pool_queues_across_symbols(three_symbols):
    series, rules, signals = three_symbols
    request = BacktestRequest(
        candles=series, timeframe="1h", signals=signals, config={"max_open_groups": 1}, market_rules=rules
    )
    result = run_backtest(request)
    # One slot: deals never overlap; entries that found it taken waited in the queue, some were promoted.
    spans = sorted((d.opened_ms, d.closed_ms or 1 << 62) for d in result.deals)
    assert all(closed <= next_open for (_, closed), (next_open, _) in zip(spans, spans[1:], strict=False))
    assert result.signal_outcomes.get("queued", 0) > 0 and result.signal_outcomes.get("promoted", 0) > 0
    assert len({d.symbol for d in result.deals}) > 1


def test_a_guard_keeps_a_queued_entry_waiting_as_live_promotion_does(three_symbols):
    """Promotion asks the guards as the intake does (`queue_promote`): when the losing close that frees the
    pool's one slot takes the day's realized loss to the limit, the entries waiting for that slot stay
    queued; no group opens on a UTC day once its losses reached the limit."""
    series, rules, signals = three_symbols
    config = {"max_open_groups": 1, "daily_loss_limit_usd": "5", "stop_loss_percent": "2"}
    result = run_backtest(
        BacktestRequest(candles=series, timeframe="1h", signals=signals, config=config, market_rules=rules)
    )
    assert result.signal_outcomes.get("queue_blocked: daily_loss", 0) > 0, result.signal_outcomes
    assert result.signal_outcomes.get("promoted", 0) > 0
    day = 86_400_000
    for deal in result.deals:
        lost = -sum(
            (
                d.realized_pnl
                for d in result.deals
                if d is not deal
                and d.closed_ms is not None
                and d.closed_ms // day == deal.opened_ms // day
                and d.closed_ms <= deal.opened_ms
            ),
            D(0),
        )
        assert lost < D(5), (deal, lost)


def test_the_risk_engine_offsets_a_loser_with_winners(three_symbols):
    series, rules, signals = three_symbols
    config = {"max_open_groups": 3, "post_full_wait_minutes": 0, "loss_threshold_percent": "-1"}
    result = run_backtest(
        BacktestRequest(candles=series, timeframe="1h", signals=signals, config=config, market_rules=rules)
    )
    risk_closes = [d for d in result.deals if d.close_reason == "risk"]
    assert risk_closes, result.signal_outcomes
    # The loser closes in full; winners sell part of what they hold, in the same moment.
    for loser in risk_closes:
        sold = [f for f in result.fills if f.kind == "risk" and f.time_ms == loser.closed_ms]
        assert any(f.deal == loser.id for f in sold)
        assert any(f.deal != loser.id for f in sold)


def test_detail_candles_replace_the_walk(shared_data, rules):
    from exchanges.candles.rules import resample

    minutes = read_candles(shared_data / "candles" / "binance_BTC_USDT_1m_2024-07-26_30d.csv.gz", timeframe="1m")
    minutes = minutes[: 3 * 24 * 60]
    hours = resample(minutes, from_ms=60_000, to_ms=3_600_000)
    signals = [entry(hours, 5), exit_(hours, 30), entry(hours, 40), exit_(hours, 65)]
    progress: list[float] = []

    def request(detail):
        return BacktestRequest(
            candles={SYMBOL: hours},
            timeframe="1h",
            signals=signals,
            config={"levels": LEVELS, "capital_usd": "1000", "max_pyramids": 1},
            market_rules={SYMBOL: rules},
            detail_candles=detail,
        )

    coarse = run_backtest(request(None))
    fine = run_backtest(request({SYMBOL: minutes}), progress.append)
    assert coarse.fills and fine.fills
    # Without detail every fill inside a candle is stamped at the hour; with it, at the minute it happened.
    assert all(f.time_ms % 3_600_000 == 0 for f in coarse.fills)
    assert any(f.time_ms % 3_600_000 for f in fine.fills)
    # A buy that rested fills at its limit, which the walk of its minute reached (or gapped through).
    for fill in fine.fills:
        if fill.kind == "dca" and fill.time_ms % 3_600_000:
            minute = next(m for m in minutes if m.open_ms == fill.time_ms)
            assert minute.low <= fill.price
    assert progress and progress[-1] == 100.0 and progress == sorted(progress)
