"""The pure half of optimization (docs/optimization.md): what may be searched, the candidates, the
walk-forward windows, the objectives and the Monte Carlo of deal order. No Django, no I/O."""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from analytics import metrics

# The keys a search may vary: the grid, take-profit, stop and trailing keys of the engine config, and the
# 3Commas generator's parameters as `generator.<name>` (docs/engine.md#config).
SEARCHABLE = frozenset(
    {
        "tp_mode",
        "tp_aggregate_percent",
        "max_pyramids",
        "capital_usd",
        "entry_order_type",
        "cancel_dca_beyond_percent",
        "stop_loss_percent",
        "trailing_enabled",
        "trailing_activation_percent",
        "trailing_stop_percent",
        "max_open_groups",
        "loss_threshold_percent",
    }
)
GENERATOR_KEYS = frozenset(
    {
        "base_order_usd",
        "safety_order_usd",
        "max_safety_orders",
        "price_deviation_percent",
        "step_scale",
        "volume_scale",
        "tp_percent",
    }
)
OBJECTIVES = ("return", "sharpe", "calmar", "return_drawdown")
METHODS = ("grid", "random")
MAX_CANDIDATES = 400  # a search's backtests at most (grid: the product of the value lists)
MAX_VALUES_PER_KEY = 50
DAY_MS = 86_400_000


class SearchError(ValueError):
    """A search that cannot run: `errors` maps the field (e.g. `space.tp_mode`) to its reasons."""

    def __init__(self, errors: Mapping[str, Sequence[str]]):
        self.errors = {key: list(reasons) for key, reasons in errors.items()}
        super().__init__("; ".join(f"{key}: {', '.join(reasons)}" for key, reasons in self.errors.items()))


def _plain(value: Any) -> Any:
    """A JSON value as the config stores it: Decimals and floats as strings (exact), the rest as given."""
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return value
    if isinstance(value, float | Decimal):
        return format(Decimal(str(value)).normalize(), "f")
    raise SearchError({"space": [f"unsupported value {value!r}"]})


def space_check(space: Any) -> dict[str, list[Any]]:
    """`{key: [values]}` checked: known searchable keys, non-empty lists without duplicates."""
    if not isinstance(space, Mapping) or not space:
        raise SearchError({"space": ["give at least one key with a list of values"]})
    errors: dict[str, list[str]] = {}
    checked: dict[str, list[Any]] = {}
    for key, values in space.items():
        field = f"space.{key}"
        name = key.split(".", 1)[1] if key.startswith("generator.") else key
        known = name in GENERATOR_KEYS if key.startswith("generator.") else key in SEARCHABLE
        if not known:
            allowed = ", ".join(sorted(SEARCHABLE)) + ", generator.<" + "|".join(sorted(GENERATOR_KEYS)) + ">"
            errors[field] = [f"not a searchable key (one of {allowed})"]
            continue
        if not isinstance(values, list) or not values:
            errors[field] = ["must be a non-empty list of values"]
            continue
        if len(values) > MAX_VALUES_PER_KEY:
            errors[field] = [f"at most {MAX_VALUES_PER_KEY} values"]
            continue
        try:
            plain = [_plain(value) for value in values]
        except SearchError as exc:
            errors[field] = exc.errors["space"]
            continue
        if len(set(map(str, plain))) != len(plain):
            errors[field] = ["values repeat"]
            continue
        checked[key] = plain
    if errors:
        raise SearchError(errors)
    return checked


def grid_size(space: Mapping[str, Sequence[Any]]) -> int:
    return math.prod(len(values) for values in space.values())


def candidates(
    space: Mapping[str, Sequence[Any]], *, method: str, samples: int | None = None, seed: int = 0
) -> list[dict[str, Any]]:
    """The value sets to try: every combination (`grid`) or `samples` distinct combinations drawn with
    `seed` (`random`), in a reproducible order. `SearchError` when there are more than MAX_CANDIDATES."""
    keys = list(space)
    size = grid_size(space)
    if method == "grid":
        if size > MAX_CANDIDATES:
            raise SearchError(
                {"space": [f"{size} combinations; at most {MAX_CANDIDATES}: drop values or use method random"]}
            )
        return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(space[k] for k in keys))]
    if method != "random":
        raise SearchError({"method": [f"one of {', '.join(METHODS)}"]})
    if samples is None or not 1 <= samples <= MAX_CANDIDATES:
        raise SearchError({"samples": [f"a whole number from 1 to {MAX_CANDIDATES}"]})
    rng = random.Random(seed)
    if samples >= size:
        return candidates(space, method="grid")
    picked = sorted(rng.sample(range(size), samples))
    result = []
    for flat in picked:
        combo: dict[str, Any] = {}
        for key in reversed(keys):
            flat, position = divmod(flat, len(space[key]))
            combo[key] = space[key][position]
        result.append({key: combo[key] for key in keys})
    return result


def apply_values(config: Mapping[str, Any], values: Mapping[str, Any]) -> dict[str, Any]:
    """`config` with a candidate's values laid over it (`generator.x` sets the generator's `x`; a
    generator replaces explicit `levels`, as a config save does)."""
    merged = dict(config)
    generator_values = {k.split(".", 1)[1]: v for k, v in values.items() if k.startswith("generator.")}
    merged.update({k: v for k, v in values.items() if not k.startswith("generator.")})
    if generator_values:
        merged["generator"] = {**(merged.get("generator") or {}), **generator_values}
        merged.pop("levels", None)
    return merged


# ------------------------------------------------------------------------------------- walk-forward


@dataclass(frozen=True)
class TimeWindow:
    """A walk-forward step: train on [train_start, train_end), test on [test_start, test_end) (ms)."""

    train_start: int
    train_end: int
    test_start: int
    test_end: int

    def as_json(self) -> dict[str, int]:
        return {
            "train_start": self.train_start,
            "train_end": self.train_end,
            "test_start": self.test_start,
            "test_end": self.test_end,
        }


def walk_forward(start_ms: int, end_ms: int, *, train_days: int, test_days: int) -> list[TimeWindow]:
    """Rolling windows over [start_ms, end_ms): each trains on `train_days`, tests on the `test_days`
    right after; the next starts one test period later. Train and test never overlap, and the test
    periods tile the time after the first training period without overlapping each other."""
    if train_days < 1:
        raise SearchError({"walk_forward.train_days": ["a whole number of days, at least 1"]})
    if test_days < 1:
        raise SearchError({"walk_forward.test_days": ["a whole number of days, at least 1"]})
    train, test = train_days * DAY_MS, test_days * DAY_MS
    windows = []
    cursor = start_ms
    while cursor + train + test <= end_ms:
        windows.append(TimeWindow(cursor, cursor + train, cursor + train, cursor + train + test))
        cursor += test
    if not windows:
        days = (end_ms - start_ms) / DAY_MS
        raise SearchError(
            {"walk_forward": [f"the period has {days:.1f} days: too short for {train_days} + {test_days} days"]}
        )
    return windows


# ---------------------------------------------------------------------------------------- objectives


def objective_value(name: str, result_metrics: Mapping[str, Any]) -> float:
    """The number a search maximizes; an undefined value (no trade, no drawdown) ranks last."""
    total = result_metrics.get("total_return_pct")
    drawdown = result_metrics.get("max_drawdown_pct")
    value: Any
    if name == "return":
        value = total
    elif name == "sharpe":
        value = result_metrics.get("sharpe")
    elif name == "calmar":
        value = result_metrics.get("calmar")
    elif name == "return_drawdown":
        value = None if total is None or not drawdown else total / drawdown
    else:
        raise SearchError({"objective": [f"one of {', '.join(OBJECTIVES)}"]})
    if value is None or not math.isfinite(float(value)):
        return -math.inf
    return float(value)


# ---------------------------------------------------------------------------------------- Monte Carlo


def monte_carlo_drawdown(
    pnls: Sequence[float], initial: float, *, runs: int = 1000, seed: int = 0
) -> dict[str, float | int] | None:
    """Max drawdown (%) of the realized equity when the deals come in random order: percentiles 5, 50, 95
    and the worst of `runs` shuffles (seeded, so a result reproduces). None with fewer than 2 deals."""
    if len(pnls) < 2 or initial <= 0 or runs < 1:
        return None
    rng = np.random.default_rng(seed)
    values = np.asarray(pnls, dtype=float)
    drawdowns = np.empty(runs)
    for run in range(runs):
        path = initial + np.cumsum(rng.permutation(values))
        drawdowns[run] = metrics.max_drawdown_pct(np.concatenate(([initial], path)))
    return {
        "runs": runs,
        "p5": float(np.percentile(drawdowns, 5)),
        "p50": float(np.percentile(drawdowns, 50)),
        "p95": float(np.percentile(drawdowns, 95)),
        "worst": float(drawdowns.max()),
    }
