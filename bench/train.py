"""train: one ML filter model on a year of BTC/USDT 5m (bench/README.md).

Timed: the features of every candle (pandas-ta), the labels, the walk-forward folds and the final model
with its holdout score (`analytics.ml.training.train_on_candles`, the training task's work without the
database), with the default parameters and a 12-candle (one hour) horizon, on the GPU when one is
present (`device`), else the CPU's hist method. Warmed up once on a small slice (imports, numba's JIT of
pandas-ta), then timed once.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from analytics.backtest.files import read_candles
from analytics.ml.training import train_on_candles, training_device
from strategies.library import candles_frame

from .harness import Harness, load_average, say

SHARED = Path(os.environ.get("SHARED_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"))
CANDLES = SHARED / "candles" / "binance_BTC_USDT_5m.csv.gz"
HORIZON = 12


def run(harness: Harness) -> dict[str, Any]:
    rows = read_candles(CANDLES, timeframe="5m")
    frame = candles_frame([(row.open_ms, *(float(value) for value in row[1:])) for row in rows])
    train_on_candles(frame.iloc[:3000], horizon=HORIZON, params={"num_boost_round": 5})
    loadavg = load_average()
    started = time.perf_counter()
    result = train_on_candles(frame, horizon=HORIZON)
    seconds = time.perf_counter() - started
    say(f"train: {seconds:.2f} s for {len(frame)} candles on {result.device}")
    return {
        "bench": "train",
        "candles": len(frame),
        "rows": result.rows,
        "horizon": HORIZON,
        "seconds": round(seconds, 3),
        "fit_seconds": result.seconds,
        "folds": len(result.folds),
        "holdout_auc": result.holdout["auc"],
        "fold_auc_mean": result.extra["fold_auc_mean"],
        "device": training_device(),
        "loadavg_1m": loadavg,
    }
