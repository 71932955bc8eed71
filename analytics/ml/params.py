"""The ML filter's request parameters and sizes (docs/ml.md#training), validated without loading xgboost or
pandas: a web process checks a training request with these alone."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from core.validation import text_problem

# The features' warm-up: candles the newest row needs to be what it is on the whole history (the longest
# window, 48 returns and SMA 50, and for the recursive filters, RSI's and ATR's averages and MACD's EMAs,
# enough candles for their start to have decayed to nothing: 20 × the longest length).
WARMUP = 20 * 26 + 9 + 2
# Fewer labelled rows than this and training refuses: too few for walk-forward folds and a holdout.
MIN_ROWS = 600
# Candles read to score the newest one: the warm-up and a margin for a gap or two.
SCORE_CANDLES = WARMUP + 70


class MLInputError(ValueError):
    """A training or scoring request we refuse (too few candles, a bad parameter): `field_name` names it."""

    def __init__(self, message: str, *, field_name: str) -> None:
        super().__init__(message)
        self.field_name = field_name


# Booster parameters a request may set, with their defaults and bounds (min, max).
BOOSTER_DEFAULTS: dict[str, float | int] = {
    "max_depth": 4,
    "learning_rate": 0.05,
    "num_boost_round": 200,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "min_child_weight": 5.0,
    "reg_lambda": 1.0,
    "seed": 7,
}
BOOSTER_BOUNDS: dict[str, tuple[float, float]] = {
    "max_depth": (1, 12),
    "learning_rate": (0.001, 1.0),
    "num_boost_round": (1, 2000),
    "subsample": (0.1, 1.0),
    "colsample_bytree": (0.1, 1.0),
    "min_child_weight": (0.0, 1000.0),
    "reg_lambda": (0.0, 1000.0),
    "seed": (0, 2**31 - 1),
}
WHOLE_PARAMS = ("max_depth", "num_boost_round", "seed")
# How the rows are split: walk-forward folds and the holdout's share of the rows.
SPLIT_DEFAULTS: dict[str, float | int] = {"folds": 4, "holdout_fraction": 0.15}
SPLIT_BOUNDS: dict[str, tuple[float, float]] = {"folds": (2, 20), "holdout_fraction": (0.05, 0.5)}
MAX_HORIZON = 500


def params_validate(params: Mapping[str, Any] | None) -> dict[str, float | int]:
    """The booster and split parameters of a request over their defaults; `MLInputError` naming the
    first bad one (`params.KEY`)."""
    given = dict(params or {})
    out: dict[str, float | int] = {**BOOSTER_DEFAULTS, **SPLIT_DEFAULTS}
    bounds = {**BOOSTER_BOUNDS, **SPLIT_BOUNDS}
    for key, value in given.items():
        if key not in bounds:
            raise MLInputError(
                f"unknown training parameter {key!r}; expected one of {', '.join(sorted(bounds))}",
                field_name=f"params.{key}",
            )
        low, high = bounds[key]
        whole = key in WHOLE_PARAMS or key == "folds"
        if isinstance(value, bool) or not isinstance(value, int | float) or (whole and not isinstance(value, int)):
            kind = "a whole number" if whole else "a number"
            raise MLInputError(f"{key} must be {kind} from {low:g} to {high:g}", field_name=f"params.{key}")
        if not (math.isfinite(value) and low <= value <= high):
            raise MLInputError(f"{key} must be from {low:g} to {high:g}", field_name=f"params.{key}")
        out[key] = value
    return out


def horizon_validate(horizon: Any) -> int:
    if isinstance(horizon, bool) or not isinstance(horizon, int) or not 1 <= horizon <= MAX_HORIZON:
        raise MLInputError(f"horizon must be a whole number of candles from 1 to {MAX_HORIZON}", field_name="horizon")
    return horizon


def name_checked(value: Any, *, field_name: str, max_length: int = 64) -> str:
    """A symbol, timeframe or id as given in a request: a non-empty string the database can hold (no NUL,
    no lone surrogate, not too long); `MLInputError` naming the field otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise MLInputError(f"{field_name} is required", field_name=field_name)
    problem = text_problem(value, max_length=max_length)
    if problem is not None:
        raise MLInputError(f"{field_name} {problem}", field_name=field_name)
    return value.strip()
