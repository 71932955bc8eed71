"""backtest: the backtester over a year of BTC/USDT 5m against backtesting.py on the same candles (bench/README.md).

Ours: the default engine config (grid, per-leg TPs, pool, guards, risk plan), the RSI strategy's signals
from `strategies.library`, every rule of `analytics.backtest`; the time covers computing the signals and
the whole run (`run_backtest`), not reading the file. The peer: backtesting.py running an RSI(14) 30/70
strategy (buy on the cross up through 30, close on the cross down through 70) on the same candles,
timed over `Backtest.run()`. Each is run once to warm up (imports, caches), then timed `REPEATS` times,
the two taking turns, and the fastest run of each is kept: on the shared box one run of either side can
be slowed by the load by half, and the best of a few is what each costs.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analytics.backtest import BacktestRequest, CandleSeries, run_backtest
from analytics.backtest.files import load_market_rules, read_candles
from analytics.backtest.signals import strategy_signals

from .harness import Harness, load_average, say

SHARED = Path(os.environ.get("SHARED_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
CANDLES = SHARED / "candles" / "binance_BTC_USDT_5m.csv.gz"
SYMBOL = "BTC/USDT"
REPEATS = 3


def _ours(series: CandleSeries, rules: Any) -> tuple[float, int]:
    started = time.perf_counter()
    signals = strategy_signals("rsi", None, series, symbol=SYMBOL)
    request = BacktestRequest(
        candles={SYMBOL: series}, timeframe="5m", signals=signals, config={}, market_rules={SYMBOL: rules}
    )
    result = run_backtest(request)
    return time.perf_counter() - started, int(result.metrics["trades"])


def _peer(series: CandleSeries) -> float:
    from backtesting import Backtest, Strategy  # noqa: PLC0415  (the bench's own requirement, imported when run)

    def rsi(close: np.ndarray, length: int = 14) -> np.ndarray:
        delta = pd.Series(close).diff()
        gain = delta.clip(lower=0).ewm(alpha=1 / length, adjust=False).mean()
        loss = (-delta.clip(upper=0)).ewm(alpha=1 / length, adjust=False).mean()
        return (100 - 100 / (1 + gain / loss)).to_numpy()

    class RsiCross(Strategy):
        def init(self) -> None:
            self.rsi = self.I(rsi, self.data.Close)

        def next(self) -> None:
            if len(self.rsi) < 2:
                return
            previous, current = self.rsi[-2], self.rsi[-1]
            if not self.position and previous < 30 <= current:
                self.buy()
            elif self.position and previous > 70 >= current:
                self.position.close()

    frame = pd.DataFrame(
        {"Open": series.open, "High": series.high, "Low": series.low, "Close": series.close, "Volume": series.volume},
        index=pd.to_datetime(series.open_ms, unit="ms"),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bt = Backtest(frame, RsiCross, cash=10_000_000, commission=0.001)
        started = time.perf_counter()
        bt.run()
        return time.perf_counter() - started


def run(harness: Harness) -> dict[str, Any]:
    rows = read_candles(CANDLES, timeframe="5m")
    series = CandleSeries.from_rows(rows)
    rules = load_market_rules(None, SYMBOL)
    warm = CandleSeries.from_rows(rows[:5000])
    _ours(warm, rules)
    _peer(warm)
    loadavg = load_average()
    ours_runs, peer_runs = [], []
    for _ in range(REPEATS):
        ours_runs.append(_ours(series, rules))
        peer_runs.append(_peer(series))
    seconds, trades = min(ours_runs)
    peer_seconds = min(peer_runs)
    candles = len(series)
    ours_rate = candles / seconds
    peer_rate = candles / peer_seconds
    say(f"backtest: ours {seconds:.3f} s, backtesting.py {peer_seconds:.3f} s")
    return {
        "bench": "backtest",
        "candles": candles,
        "seconds": round(seconds, 3),
        "candles_per_s": round(ours_rate),
        "trades": trades,
        "peer": "backtesting.py",
        "peer_candles_per_s": round(peer_rate),
        "ratio": round(ours_rate / peer_rate, 2),
        "runs": REPEATS,
        "loadavg_1m": loadavg,
    }
