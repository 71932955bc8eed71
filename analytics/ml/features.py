"""The filter's features and label (docs/ml.md#features): pure functions of a candle frame.

`candles` is the frame of `strategies.library.candles_frame` (float columns open, high, low, close,
volume; index: open time in ms, in time order). Every feature at row t reads rows up to t only: each is
a rolling window or a recursive filter over the past, never a centred or backward-shifted series, so
`features_frame(candles[: t + 1])` gives the same row t as `features_frame(candles)`
(analytics/tests/test_ml.py proves it on real candles). Every feature is scale-free (ratios, oscillators,
log returns, z-scores), so one model serves a market whatever its price level.

The label looks ahead by construction: row t's label is whether the close `horizon` candles later is
above the close at t. It exists only for rows with `horizon` candles after them; training keeps a gap of
`horizon` rows between a training window and the window it is tested on (`analytics.ml.training`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pandas_ta as ta

from .params import WARMUP

RETURN_WINDOWS = (1, 3, 6, 12, 24, 48)
FEATURES: tuple[str, ...] = (
    "rsi_7",
    "rsi_14",
    "macd_pct",
    "macd_hist_pct",
    "bb_percent_b",
    "bb_width",
    "atr_pct",
    *(f"ret_{window}" for window in RETURN_WINDOWS),
    "volume_z",
    "range_pct",
    "close_location",
    "sma_20_gap",
    "sma_50_gap",
    "stoch_k",
)


def _column(frame: pd.DataFrame | None, index: int, length: int) -> np.ndarray:
    """A pandas-ta frame's column, or NaN when it answered nothing (too few candles)."""
    if frame is None:
        return np.full(length, np.nan)
    return frame.iloc[:, index].to_numpy(dtype=float)


def _series(series: pd.Series | None, length: int) -> np.ndarray:
    if series is None:
        return np.full(length, np.nan)
    return series.to_numpy(dtype=float)


def features_frame(candles: pd.DataFrame) -> pd.DataFrame:
    """One row of `FEATURES` per candle (NaN where a window is not full yet), on the candles' index."""
    n = len(candles)
    high, low, close, volume = (candles[name] for name in ("high", "low", "close", "volume"))
    close_values = close.to_numpy(dtype=float)
    columns: dict[str, np.ndarray] = {
        "rsi_7": _series(ta.rsi(close, length=7), n) / 100.0,
        "rsi_14": _series(ta.rsi(close, length=14), n) / 100.0,
    }
    macd = ta.macd(close, fast=12, slow=26, signal=9)
    columns["macd_pct"] = _column(macd, 0, n) / close_values
    columns["macd_hist_pct"] = _column(macd, 1, n) / close_values
    bands = ta.bbands(close, length=20, lower_std=2.0, upper_std=2.0, ddof=0)
    lower, middle, upper = (_column(bands, i, n) for i in range(3))
    width = upper - lower
    with np.errstate(divide="ignore", invalid="ignore"):
        columns["bb_percent_b"] = np.where(width > 0, (close_values - lower) / width, 0.5)
        columns["bb_width"] = width / middle
    columns["atr_pct"] = _series(ta.atr(high, low, close, length=14), n) / close_values
    log_close = np.log(close_values)
    for window in RETURN_WINDOWS:
        past = np.concatenate((np.full(window, np.nan), log_close[:-window])) if n > window else np.full(n, np.nan)
        columns[f"ret_{window}"] = log_close - past
    mean = volume.rolling(48, min_periods=48).mean().to_numpy(dtype=float)
    std = volume.rolling(48, min_periods=48).std(ddof=0).to_numpy(dtype=float)
    volume_values = volume.to_numpy(dtype=float)
    high_values, low_values = high.to_numpy(dtype=float), low.to_numpy(dtype=float)
    span = high_values - low_values
    with np.errstate(divide="ignore", invalid="ignore"):
        columns["volume_z"] = np.where(std > 0, (volume_values - mean) / std, 0.0)
        columns["range_pct"] = span / close_values
        columns["close_location"] = np.where(span > 0, (close_values - low_values) / span, 0.5)
    for length in (20, 50):
        sma = _series(ta.sma(close, length=length), n)
        columns[f"sma_{length}_gap"] = close_values / sma - 1.0
    stoch = ta.stoch(high, low, close, k=14, d=3, smooth_k=3)
    columns["stoch_k"] = _column(stoch, 0, n) / 100.0
    # np.where fills rows whose inputs were NaN with a number: keep them NaN (a window not full yet).
    for name in ("bb_percent_b", "volume_z", "close_location"):
        source = {"bb_percent_b": width, "volume_z": std, "close_location": span}[name]
        columns[name] = np.where(np.isnan(source), np.nan, columns[name])
    # Nothing before `WARMUP` candles: pandas-ta answers nothing for a series shorter than a window, so
    # an early row would have a value on a long history and none on its prefix.
    frame = pd.DataFrame({name: columns[name] for name in FEATURES}, index=candles.index)
    frame.iloc[: WARMUP - 1] = np.nan
    return frame


def labels(candles: pd.DataFrame, horizon: int) -> pd.Series:
    """1.0 where the close `horizon` candles later is above this close, 0.0 where not, NaN where that
    close is not known yet (the last `horizon` rows)."""
    if horizon < 1:
        raise ValueError("horizon must be at least 1")
    close = candles["close"].to_numpy(dtype=float)
    out = np.full(len(close), np.nan)
    if len(close) > horizon:
        out[:-horizon] = (close[horizon:] > close[:-horizon]).astype(float)
    return pd.Series(out, index=candles.index, name="label")
