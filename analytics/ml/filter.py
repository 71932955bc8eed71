"""The ML entry filter (docs/ml.md#filter): the deployed model's probability that the price is higher
`horizon` candles after an entry, compared with the user's threshold. One scoring rule, three callers:

- the live intake, through `positions.entry_filter` (`entry_filter_provider`, registered by
  `AnalyticsConfig.ready`): `core.sql` steps read the deployed model's id, its booster on first use (then
  cached per process: a model's booster never changes), and the newest closed candles, all inside the
  intake's transaction, on whichever driver runs it;
- the backtester: `backtest_entry_filter(model, candles, threshold)` scores every candle at once and
  answers `(time_ms, symbol) -> bool`;
- bulk analysis: `score_latest` on the newest candles of each symbol.

Features at a candle read that candle and the ones before it only (`analytics.ml.features`), and an
entry decided at `time_ms` is scored on the newest candle closed by then, so neither path sees the future.
"""

from __future__ import annotations

import functools
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from core import sql
from exchanges.candles import rules as candle_rules
from exchanges.candles.rules import TIMEFRAME_MS, CandleRow
from exchanges.models import Candle
from positions.entry_filter import EntryQuery, EntryVerdict
from strategies.library import candles_frame

from .features import FEATURES, features_frame
from .models import FilterModel, ModelStatus
from .params import SCORE_CANDLES, WARMUP
from .training import booster_load, predict

REASON = "ml_filter"
_CACHE_SIZE = 32
_CANDLE_COLUMNS = ("open_ms", "open", "high", "low", "close", "volume")


class _BoosterCache:
    """Loaded boosters by model id, per process (the newest `_CACHE_SIZE`). A model's booster is written
    once, so an entry never goes stale; which model is deployed is read for every entry."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._boosters: OrderedDict[str, xgb.Booster] = OrderedDict()

    def get(self, model_id: str) -> xgb.Booster | None:
        with self._lock:
            booster = self._boosters.get(model_id)
            if booster is not None:
                self._boosters.move_to_end(model_id)
            return booster

    def put(self, model_id: str, booster: xgb.Booster) -> None:
        with self._lock:
            self._boosters[model_id] = booster
            while len(self._boosters) > _CACHE_SIZE:
                self._boosters.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._boosters.clear()


BOOSTERS = _BoosterCache()


def model_booster(model: FilterModel) -> xgb.Booster:
    """A model's loaded booster (from the process cache when it is there)."""
    key = str(model.pk)
    booster = BOOSTERS.get(key)
    if booster is None:
        booster = booster_load(bytes(model.booster))
        BOOSTERS.put(key, booster)
    return booster


def score_latest(booster: xgb.Booster, candles: pd.DataFrame) -> float | None:
    """The probability at the newest candle of `candles`, or None when there are too few to score."""
    if len(candles) < WARMUP:
        return None
    row = features_frame(candles).iloc[-1:]
    values = row.to_numpy(dtype=np.float32)
    if not np.isfinite(values).all():
        return None
    return float(predict(booster, values)[0])


def verdict(score: float | None, threshold: float, *, model_id: str) -> EntryVerdict:
    """The filter's rule: an entry passes when the model's probability is at least the threshold; an
    entry that cannot be scored (too few candles) passes, and says why."""
    if score is None:
        return EntryVerdict(allowed=True, reason=f"{REASON}: too few candles to score (model {model_id})")
    if score >= threshold:
        return EntryVerdict(allowed=True, score=score, reason=f"{REASON}: score {score:.4f} >= {threshold:g}")
    return EntryVerdict(
        allowed=False,
        score=score,
        reason=f"{REASON}: score {score:.4f} is below the threshold {threshold:g} (model {model_id})",
    )


# --- live: the intake's provider ------------------------------------------------------------------------


@functools.cache
def _statements() -> tuple[str, str, str]:
    models = sql.table(FilterModel)
    deployed = f"""SELECT id::text AS id, exchange_name FROM {models}
                    WHERE symbol = %s AND timeframe = %s AND status = '{ModelStatus.DEPLOYED.value}'"""
    booster = f"SELECT booster FROM {models} WHERE id = %s::uuid"
    # The newest closed candles as arrays in one row (the steps are sent one row per statement).
    candles = f"""SELECT {", ".join(f"array_agg(c.{name} ORDER BY c.open_ms) AS {name}" for name in _CANDLE_COLUMNS)}
                    FROM (SELECT (extract(epoch FROM open_time) * 1000)::bigint AS open_ms, open::float8 AS open,
                                 high::float8 AS high, low::float8 AS low, close::float8 AS close,
                                 volume::float8 AS volume
                            FROM {sql.table(Candle)}
                           WHERE exchange_name = %s AND symbol = %s AND timeframe = %s AND NOT quarantined
                             AND open_time <= to_timestamp(%s::bigint / 1000.0)
                           ORDER BY open_time DESC LIMIT %s) c"""
    return deployed, booster, candles


def _frame(row: sql.Row | None) -> pd.DataFrame:
    if row is None or not row["open_ms"]:
        return candles_frame([])
    return candles_frame(list(zip(*(row[name] for name in _CANDLE_COLUMNS), strict=True)))


def entry_filter_provider(query: EntryQuery) -> sql.Steps[EntryVerdict]:
    """The intake's entry filter (`positions.entry_filter`): score the entry with the deployed model of
    its symbol and timeframe on the candles closed by the signal's time."""
    deployed_statement, booster_statement, candles_statement = _statements()
    found = yield deployed_statement, [query.symbol, query.timeframe]
    if found is None:
        return EntryVerdict(allowed=True, reason=f"{REASON}: no deployed model for {query.symbol} {query.timeframe}")
    model_id = str(found["id"])
    booster = BOOSTERS.get(model_id)
    if booster is None:
        stored = yield booster_statement, [model_id]
        assert stored is not None
        booster = booster_load(bytes(stored["booster"]))
        BOOSTERS.put(model_id, booster)
    # The newest candle closed by the signal's time: its open is at least one interval earlier.
    interval = TIMEFRAME_MS.get(query.timeframe, 0)
    exchange = found["exchange_name"]
    row = yield candles_statement, [exchange, query.symbol, query.timeframe, query.at_ms - interval, SCORE_CANDLES]
    frame = _frame(row)
    if len(frame) < WARMUP and interval:
        frame = yield from _built_from_lower(exchange, query.symbol, query.timeframe, query.at_ms)
    return verdict(score_latest(booster, frame), query.threshold, model_id=model_id)


def _built_from_lower(exchange: str, symbol: str, timeframe: str, at_ms: int) -> sql.Steps[pd.DataFrame]:
    """The newest candles of `timeframe` closed by `at_ms`, built from the nearest lower stored timeframe
    that has enough (as the candle selectors build a timeframe the store lacks, and as training read
    them): complete buckets only."""
    _, _, candles_statement = _statements()
    target = TIMEFRAME_MS[timeframe]
    for lower in candle_rules.lower_timeframes(timeframe):
        source = TIMEFRAME_MS[lower]
        row = yield (
            candles_statement,
            [exchange, symbol, lower, at_ms - source, (SCORE_CANDLES + 1) * (target // source)],
        )
        if row is None or not row["open_ms"]:
            continue
        # The store's one resampling rule works in Decimal, as the candle selectors use it.
        rows = [
            CandleRow(open_ms, *(Decimal(repr(value)) for value in values))
            for open_ms, *values in zip(*(row[name] for name in _CANDLE_COLUMNS), strict=True)
        ]
        built = [
            (
                candle.open_ms,
                float(candle.open),
                float(candle.high),
                float(candle.low),
                float(candle.close),
                float(candle.volume),
            )
            for candle in candle_rules.resample(rows, from_ms=source, to_ms=target)
            if candle.open_ms <= at_ms - target
        ]
        if len(built) >= WARMUP:
            return candles_frame(built)
    return candles_frame([])


# --- backtests and bulk analysis ------------------------------------------------------------------------


def probabilities(booster: xgb.Booster, candles: pd.DataFrame) -> pd.Series:
    """The model's probability at every candle (NaN where the features are not known yet)."""
    features = features_frame(candles)
    values = features.to_numpy(dtype=np.float32)
    known = np.isfinite(values).all(axis=1)
    out = np.full(len(values), np.nan)
    if known.any():
        out[known] = predict(booster, values[known])
    return pd.Series(out, index=candles.index, name="probability")


def backtest_entry_filter(model: FilterModel, candles: pd.DataFrame, *, threshold: float) -> Callable[[int, str], bool]:
    """An `entry_filter(time_ms, symbol) -> bool` for the backtester (`BacktestRequest.entry_filter`): the
    same rule as live, scored once for every candle of `candles` (`strategies.library.candles_frame`).

    The backtester's alert at `time_ms` belongs to the candle holding that time and arrives at its close
    (the backtester's fill model), so it is scored on that candle, which has closed by then: what the
    live filter reads for an alert sent at that close. One before the features are known passes.
    """
    scored = probabilities(model_booster(model), candles)
    opens = scored.index.to_numpy(dtype=np.int64)
    values = scored.to_numpy(dtype=float)

    def entry_filter(time_ms: int, symbol: str) -> bool:
        position = int(np.searchsorted(opens, time_ms, side="right")) - 1
        if position < 0 or not np.isfinite(values[position]):
            return True
        return bool(values[position] >= threshold)

    return entry_filter


def bulk_scores(
    models: Sequence[tuple[str, FilterModel | None, pd.DataFrame]],
    *,
    progress: Callable[[int], None] | None = None,
) -> list[dict[str, Any]]:
    """The deployed model's probability at the newest candle of each symbol: `(symbol, model, candles)`
    in, one result per symbol out (a symbol without a model or candles says so)."""
    results: list[dict[str, Any]] = []
    for index, (symbol, model, candles) in enumerate(models):
        entry: dict[str, Any] = {"symbol": symbol}
        if model is None:
            entry.update(score=None, error="no deployed model")
        else:
            score = score_latest(model_booster(model), candles)
            entry.update(
                model_id=str(model.pk),
                horizon=model.horizon,
                score=None if score is None else round(score, 6),
                candle_ms=int(candles.index[-1]) if len(candles) else None,
            )
            if score is None:
                entry["error"] = f"too few candles to score (need {WARMUP})"
        results.append(entry)
        if progress is not None:
            progress(int(100 * (index + 1) / max(len(models), 1)))
    return results


__all__ = ["FEATURES", "backtest_entry_filter", "bulk_scores", "entry_filter_provider", "score_latest", "verdict"]
