"""The built-in strategies (docs/strategies.md): each a small class on pandas-ta with its entry and exit
rule stated, its parameters validated, and one `signals(candles) -> frame` used by the live tick and the
backtester alike.

`candles` is a DataFrame with float columns open, high, low, close, volume, in time order (index: the
open time in ms). `signals` returns a frame on the same index with boolean `entry` and `exit` and the
indicator columns it used. A signal at row t reads rows up to t only (every indicator here is a
rolling window or a recursive filter over the past), so computing on candles[: t + 1] gives the same
row t as computing on the whole history (strategies/tests/test_no_lookahead.py proves it on real
candles). Prices are floats only here, inside pandas: the signal's price goes back to the intake as
the candle's stored Decimal close.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pandas_ta as ta

from .choices import StrategyKind
from .params import SPECS, StrategyParamError, StrategySpec, Values, params_validate


def _cross_up(series: np.ndarray, level: np.ndarray | float) -> np.ndarray:
    """Where `series` goes from below `level` to at or above it (NaN never crosses)."""
    previous = np.roll(series, 1)
    previous_level = np.roll(level, 1) if isinstance(level, np.ndarray) else level
    out = (previous < previous_level) & (series >= level)
    out[:1] = False
    return out


def _cross_down(series: np.ndarray, level: np.ndarray | float) -> np.ndarray:
    """Where `series` goes from above `level` to at or below it."""
    previous = np.roll(series, 1)
    previous_level = np.roll(level, 1) if isinstance(level, np.ndarray) else level
    out = (previous > previous_level) & (series <= level)
    out[:1] = False
    return out


def _values(series: pd.Series | None, length: int) -> np.ndarray:
    """pandas-ta answers None when there are too few candles: all NaN then."""
    if series is None:
        return np.full(length, np.nan)
    return series.to_numpy(dtype=float)


class Strategy:
    """A strategy with validated parameters (`strategies.params`). Subclasses name their `spec` and
    compute `_signals`."""

    spec: ClassVar[StrategySpec]

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        self.params: Values = params_validate(self.spec.kind, params or {})

    @property
    def kind(self) -> str:
        return self.spec.kind

    @property
    def warmup(self) -> int:
        """How many candles the newest signal needs to be what it would be on the whole history (to
        well within a recursive filter's decay): the live tick reads this many."""
        raise NotImplementedError

    def signals(self, candles: pd.DataFrame) -> pd.DataFrame:
        """`entry` / `exit` per candle, and the indicators behind them (see the module's docstring)."""
        columns = self._columns(candles)
        # No signal before `warmup` candles: pandas-ta answers nothing for a series shorter than its
        # window, so an early signal would exist on a long history and not on its prefix.
        blank = max(self.warmup - 1, 0)
        for name in ("entry", "exit"):
            flags = np.array(columns[name], dtype=bool)
            flags[:blank] = False
            columns[name] = flags
        return pd.DataFrame(columns, index=candles.index)

    def last(self, candles: pd.DataFrame) -> tuple[bool, bool]:
        """(entry, exit) at the newest candle: `signals(candles).iloc[-1]` without building the frame
        (the live tick asks this of every instance and series at each close)."""
        if len(candles) < self.warmup:
            return False, False
        columns = self._columns(candles)
        return bool(columns["entry"][-1]), bool(columns["exit"][-1])

    def last_many(self, windows: Sequence[pd.DataFrame]) -> list[tuple[bool, bool]]:
        """`last` of each window, computed in one pandas-ta pass instead of one per window (the live
        tick's many series of one strategy at one close).

        The newest `warmup` candles of each window are put end to end, prices scaled so that each
        window ends at a close of 1. Every signal here is scale-free (crossings of RSI and %K, of the
        MACD line and its signal, of the close and its bands; volume against its own mean), and an
        indicator at a window's last candle depends only on that window: exactly for the windowed ones
        (Bollinger, Stochastic, volume), and for the recursive filters (RSI's and MACD's averages) the
        windows before it weigh less than the decay `warmup` is chosen for, as the start of the window
        itself does (strategies/tests/test_library.py compares both ways on real candles)."""
        size = self.warmup
        usable = [index for index, window in enumerate(windows) if len(window) >= size]
        answers = [(False, False)] * len(windows)
        if not usable:
            return answers
        blocks = []
        for index in usable:
            block = windows[index].to_numpy(dtype=float)[-size:].copy()
            block[:, :4] /= block[-1, 3]
            blocks.append(block)
        joined = pd.DataFrame(np.concatenate(blocks), columns=COLUMNS)
        columns = self._columns(joined)
        entries, exits = columns["entry"], columns["exit"]
        for position, index in enumerate(usable):
            last = (position + 1) * size - 1
            answers[index] = (bool(entries[last]), bool(exits[last]))
        return answers

    def _columns(self, candles: pd.DataFrame) -> dict[str, np.ndarray]:
        raise NotImplementedError


class RsiStrategy(Strategy):
    spec = SPECS[StrategyKind.RSI]

    @property
    def warmup(self) -> int:
        return 20 * int(self.params["length"]) + 2

    def _columns(self, candles: pd.DataFrame) -> dict[str, np.ndarray]:
        rsi = _values(ta.rsi(candles["close"], length=int(self.params["length"])), len(candles))
        return {
            "rsi": rsi,
            "entry": _cross_up(rsi, float(self.params["oversold"])),
            "exit": _cross_down(rsi, float(self.params["overbought"])),
        }


class MacdStrategy(Strategy):
    spec = SPECS[StrategyKind.MACD]

    @property
    def warmup(self) -> int:
        return 10 * int(self.params["slow"]) + int(self.params["signal"]) + 2

    def _columns(self, candles: pd.DataFrame) -> dict[str, np.ndarray]:
        fast, slow, signal = (int(self.params[name]) for name in ("fast", "slow", "signal"))
        frame = ta.macd(candles["close"], fast=fast, slow=slow, signal=signal)
        n = len(candles)
        macd = _values(None if frame is None else frame.iloc[:, 0], n)
        signal_line = _values(None if frame is None else frame.iloc[:, 2], n)
        return {
            "macd": macd,
            "signal": signal_line,
            "entry": _cross_up(macd - signal_line, 0.0) & (macd != signal_line),
            "exit": _cross_down(macd - signal_line, 0.0) & (macd != signal_line),
        }


class BollingerStrategy(Strategy):
    spec = SPECS[StrategyKind.BOLLINGER]

    @property
    def warmup(self) -> int:
        return int(self.params["length"]) + 2

    def _columns(self, candles: pd.DataFrame) -> dict[str, np.ndarray]:
        length, std = int(self.params["length"]), float(self.params["std"])
        # ddof=0: the population deviation, as TA-Lib and TradingView draw the bands (pandas-ta's
        # default is pandas' sample deviation).
        frame = ta.bbands(candles["close"], length=length, lower_std=std, upper_std=std, ddof=0)
        n = len(candles)
        lower = _values(None if frame is None else frame.iloc[:, 0], n)
        upper = _values(None if frame is None else frame.iloc[:, 2], n)
        close = candles["close"].to_numpy(dtype=float)
        return {"lower": lower, "upper": upper, "entry": _cross_up(close, lower), "exit": _cross_down(close, upper)}


class VolumeStrategy(Strategy):
    spec = SPECS[StrategyKind.VOLUME]

    @property
    def warmup(self) -> int:
        return int(self.params["length"]) + 2

    def _columns(self, candles: pd.DataFrame) -> dict[str, np.ndarray]:
        length = int(self.params["length"])
        # The mean of the candles before this one: a spike is measured against what came before it.
        mean = _values(ta.sma(candles["volume"], length=length), len(candles))
        mean = np.concatenate(([np.nan], mean[:-1]))
        volume = candles["volume"].to_numpy(dtype=float)
        spike = volume > float(self.params["multiplier"]) * mean
        close, open_ = candles["close"].to_numpy(dtype=float), candles["open"].to_numpy(dtype=float)
        return {"volume_mean": mean, "entry": spike & (close > open_), "exit": spike & (close < open_)}


class StochasticStrategy(Strategy):
    spec = SPECS[StrategyKind.STOCHASTIC]

    @property
    def warmup(self) -> int:
        return int(self.params["k"]) + int(self.params["d"]) + int(self.params["smooth_k"]) + 2

    def _columns(self, candles: pd.DataFrame) -> dict[str, np.ndarray]:
        k, d, smooth_k = (int(self.params[name]) for name in ("k", "d", "smooth_k"))
        frame = ta.stoch(candles["high"], candles["low"], candles["close"], k=k, d=d, smooth_k=smooth_k)
        n = len(candles)
        stoch_k = _values(None if frame is None else frame.iloc[:, 0], n)
        stoch_d = _values(None if frame is None else frame.iloc[:, 1], n)
        difference = stoch_k - stoch_d
        return {
            "k": stoch_k,
            "d": stoch_d,
            "entry": _cross_up(difference, 0.0) & (difference != 0) & (stoch_k < float(self.params["oversold"])),
            "exit": _cross_down(difference, 0.0) & (difference != 0) & (stoch_k > float(self.params["overbought"])),
        }


STRATEGIES: dict[str, type[Strategy]] = {
    cls.spec.kind: cls for cls in (RsiStrategy, MacdStrategy, BollingerStrategy, VolumeStrategy, StochasticStrategy)
}


def strategy_for(kind: str, params: Mapping[str, Any] | None = None) -> Strategy:
    """The strategy of `kind` with `params` validated; `StrategyParamError` for an unknown kind too."""
    try:
        cls = STRATEGIES[kind]
    except KeyError:
        raise StrategyParamError(
            {"kind": [f"unknown strategy {kind!r}; expected one of {', '.join(STRATEGIES)}"]}
        ) from None
    return cls(params)


def candles_frame(rows: Sequence[Sequence[float]]) -> pd.DataFrame:
    """The frame `signals` reads, from (open ms, open, high, low, close, volume) rows in time order."""
    array = np.asarray(rows, dtype=float).reshape(-1, 6)
    return pd.DataFrame(array[:, 1:], index=pd.Index(array[:, 0].astype(np.int64), name="open_ms"), columns=COLUMNS)


COLUMNS = ["open", "high", "low", "close", "volume"]


def confirm_allows_entry(candles: pd.DataFrame, *, length: int = 14, below: float = 50.0) -> bool:
    """The higher timeframe's confirmation of an entry (docs/strategies.md#confirm): its newest RSI(14)
    is below 50. No RSI yet (too few candles) confirms nothing."""
    rsi = ta.rsi(candles["close"], length=length)
    if rsi is None or rsi.empty or not np.isfinite(rsi.iloc[-1]):
        return False
    return bool(rsi.iloc[-1] < below)
