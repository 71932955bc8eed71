"""Candles for the ML tests: a market whose next moves follow from its last ones, so a model learns it."""

from __future__ import annotations

import numpy as np
import pandas as pd

from strategies.library import candles_frame

HOUR = 3_600_000
START_MS = 1_767_225_600_000  # 2026-01-01 00:00 UTC


def cyclic_rows(
    count: int = 1500, *, period: int = 40, seed: int = 3, step_ms: int = HOUR
) -> list[tuple[int, float, float, float, float, float]]:
    """Candles (hourly unless `step_ms` says otherwise) whose close swings on a cycle of `period` candles
    with a little noise: where the price sits in its swing (RSI, returns, %B) tells where it goes next."""
    rng = np.random.default_rng(seed)
    t = np.arange(count + 1)
    close = 100.0 * np.exp(0.03 * np.sin(2 * np.pi * t / period) + 0.002 * rng.standard_normal(count + 1))
    rows = []
    for i in range(1, count + 1):
        open_, end = close[i - 1], close[i]
        high = max(open_, end) * (1 + 0.001 * rng.random())
        low = min(open_, end) * (1 - 0.001 * rng.random())
        rows.append(
            (
                START_MS + (i - 1) * step_ms,
                round(open_, 4),
                round(high, 4),
                round(low, 4),
                round(end, 4),
                round(10 + 5 * rng.random(), 3),
            )
        )
    return rows


def cyclic_frame(count: int = 1500) -> pd.DataFrame:
    return candles_frame(cyclic_rows(count))


def csv_lines(rows: list[tuple[int, float, float, float, float, float]]) -> list[str]:
    return ["timestamp_ms,open,high,low,close,volume", *(",".join(str(v) for v in row) for row in rows)]
