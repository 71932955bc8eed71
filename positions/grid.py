"""The DCA grid calculator: from a grid config, an entry price and market rules to orderable legs.

Pure functions on Decimal, no Django: the live engine, ``/api/grid/preview``, the ``grid_preview``
command and the backtester all call ``parse_grid_config`` once and ``compute_grid`` per pyramid, so
live trading and backtests cannot disagree on the grid (docs/engine.md#grid).

A grid is a list of levels ``{gap_percent, weight_percent, tp_percent}``. For a long, level ``i`` buys
``capital × weight_i / 100`` quote units worth at ``entry × (1 + gap_i / 100)``. Prices and quantities
are rounded down to tick and step; legs that end up below the market's minimums are merged into their
nearest valid neighbour so that the pyramid's capital is still fully allotted (see ``compute_grid``).
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Context, Decimal, localcontext
from types import MappingProxyType
from typing import Any

from core.validation import InvalidValueError, decimal_bounded
from exchanges.precision import (
    MarketRules,
    OrderProblem,
    decimal_to_str,
    round_price_down,
    round_qty_down,
    validate_order,
)

__all__ = [
    "DEFAULT_CAPITAL_USD",
    "DEFAULT_ENTRY_ORDER_TYPE",
    "DEFAULT_MAX_PYRAMIDS",
    "DEFAULT_TP_AGGREGATE_PERCENT",
    "DEFAULT_TP_MODE",
    "ENTRY_ORDER_TYPES",
    "GRID_CONFIG_KEYS",
    "TP_MODES",
    "GridConfig",
    "GridConfigError",
    "GridError",
    "GridGenerator",
    "GridLeg",
    "GridLevel",
    "capital_for_pyramid",
    "compute_grid",
    "default_grid_config",
    "grid_defaults_for",
    "legs_to_json",
    "levels_for_pyramid",
    "parse_grid_config",
    "trade_tp_price",
]

TP_MODES = ("per_leg", "aggregate", "hybrid", "pyramid_aggregate")
ENTRY_ORDER_TYPES = ("limit", "market")
# The grid defaults, defined here once (docs/engine.md#config): `default_grid_config` and
# `grid_defaults_for` hand them out as config data, and `parse_grid_config` / `GridConfig` fall back to
# the same names for a config that omits a key.
DEFAULT_MAX_PYRAMIDS = 5
DEFAULT_TP_AGGREGATE_PERCENT = Decimal("1.5")
DEFAULT_CAPITAL_USD = Decimal("200")
DEFAULT_ENTRY_ORDER_TYPE = "limit"
DEFAULT_TP_MODE = "per_leg"
MAX_PYRAMIDS_LIMIT = 50
# A bound on levels keeps a typo (or a hostile config) from asking for thousands of resting orders;
# Binance allows 200 open orders per symbol, shared by all pyramids and their take-profits.
MAX_LEVELS = 100
MAX_SAFETY_ORDERS = MAX_LEVELS - 1
WEIGHT_SUM_TOLERANCE = Decimal("0.01")

GRID_CONFIG_KEYS = frozenset(
    {
        "levels",
        "generator",
        "pyramid_specific_levels",
        "capital_usd",
        "pyramid_capitals",
        "max_pyramids",
        "entry_order_type",
        "tp_mode",
        "tp_aggregate_percent",
        "cancel_dca_beyond_percent",
    }
)
_LEVEL_KEYS = ("gap_percent", "weight_percent", "tp_percent")
_GENERATOR_REQUIRED = (
    "base_order_usd",
    "safety_order_usd",
    "max_safety_orders",
    "price_deviation_percent",
    "tp_percent",
)
_GENERATOR_KEYS = frozenset({*_GENERATOR_REQUIRED, "step_scale", "volume_scale"})

# Arithmetic on prices × quantities must not be rounded by the default 28-digit context.
_EXACT_PRECISION = 80
# USD shares and averages are kept to the storage precision of money fields (18 decimals). Rounding
# there (rather than carrying 28-digit quotients) also removes the last-digit artefacts of dividing
# by a weight sum such as 33.333...% × 3, which would otherwise lose a whole step when flooring.
_SHARE_QUANTUM = Decimal("1e-18")
_HUNDRED = Decimal(100)
# The computing helpers below run at that precision through these contexts' own methods rather than by
# entering a `localcontext` per operation (the same arithmetic, without a context switch per call: a
# grid is computed for every pyramid, and a backtest computes thousands).
_EXACT = Context(prec=_EXACT_PRECISION)
_EXACT_FLOOR = Context(prec=_EXACT_PRECISION, rounding=ROUND_FLOOR)

_DEFAULT_GRID_CONFIG: dict[str, Any] = {
    "levels": [
        {"gap_percent": "0", "weight_percent": "20", "tp_percent": "1"},
        {"gap_percent": "-0.5", "weight_percent": "20", "tp_percent": "0.5"},
        {"gap_percent": "-1", "weight_percent": "20", "tp_percent": "2"},
        {"gap_percent": "-1.5", "weight_percent": "20", "tp_percent": "1.5"},
        {"gap_percent": "-2", "weight_percent": "20", "tp_percent": "1"},
    ],
    "pyramid_specific_levels": {"1": []},
    "capital_usd": str(DEFAULT_CAPITAL_USD),
    "max_pyramids": DEFAULT_MAX_PYRAMIDS,
    "entry_order_type": DEFAULT_ENTRY_ORDER_TYPE,
    "tp_mode": DEFAULT_TP_MODE,
    "tp_aggregate_percent": str(DEFAULT_TP_AGGREGATE_PERCENT),
}
# Keys whose entries are per pyramid index: a default entry for an index the user's max_pyramids does
# not reach is dropped (docs/engine.md#config).
_PER_PYRAMID_KEYS = ("pyramid_specific_levels", "pyramid_capitals")


def _plain(value: Decimal) -> Decimal:
    """Drop trailing zeros without exponent form (``2.50`` → ``2.5``, ``5E+1`` → ``50``)."""
    normalized = value.normalize(context=_EXACT)
    exponent = normalized.as_tuple().exponent
    if isinstance(exponent, int) and exponent > 0:
        return normalized.quantize(Decimal(1), context=_EXACT)
    return normalized


def default_grid_config() -> dict[str, Any]:
    """A fresh copy of the default grid config, as JSON-ready data (docs/engine.md#config)."""
    return copy.deepcopy(_DEFAULT_GRID_CONFIG)


def grid_defaults_for(given: Mapping[str, Any]) -> dict[str, Any]:
    """The grid defaults that apply under the values a user gave: a default never contradicts them.

    ``given`` is what the user set (any other keys are ignored; null means "not given"). A default
    that would conflict with a given value yields to it (docs/engine.md#config):

    - a ``generator`` replaces the default ``levels``, and, unless ``capital_usd`` is given too, the
      default ``capital_usd``: the generator's own order sizes stand, as in 3Commas, where the capital
      is the base order plus every safety order (docs/engine.md#generator);
    - given ``levels`` replace a default ``generator`` (there is none today; the rule is symmetric);
    - default per-pyramid entries (``pyramid_specific_levels``, ``pyramid_capitals``) for an index at or
      beyond the given ``max_pyramids`` are dropped.

    Returns a fresh copy; values the user gave are not in it (the caller lays them over it).
    """
    defaults = default_grid_config()
    present = {key for key, value in given.items() if key in GRID_CONFIG_KEYS and value is not None}
    for key in present:
        defaults.pop(key, None)
    if "generator" in present and "levels" not in present:
        defaults.pop("levels", None)
        defaults.pop("capital_usd", None)
    if "levels" in present and "generator" not in present:
        defaults.pop("generator", None)
    max_pyramids = _number_quiet(given["max_pyramids"]) if "max_pyramids" in present else None
    if max_pyramids is not None and not isinstance(given["max_pyramids"], bool):
        for key in _PER_PYRAMID_KEYS:
            entries = defaults.get(key)
            if isinstance(entries, dict):
                defaults[key] = {
                    index: value
                    for index, value in entries.items()
                    if not str(index).isdigit() or int(str(index)) < max_pyramids
                }
    return defaults


# --------------------------------------------------------------------------------------------------
# Errors


class GridConfigError(ValueError):
    """A grid config is invalid; ``errors`` maps each bad field (dotted path) to its reasons."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        summary = "; ".join(f"{name}: {', '.join(reasons)}" for name, reasons in errors.items())
        super().__init__(f"invalid grid config: {summary}")


class GridError(ValueError):
    """No orderable grid exists for these inputs (e.g. the pyramid's capital is below the minimum).

    ``code`` is stable for callers (``symbol_not_trading``, ``invalid_entry_price``,
    ``pyramid_out_of_range``, ``unsupported_side``, ``price_out_of_range``, ``below_minimum``,
    ``above_maximum``); ``reason`` is the sentence to show or store with the rejected signal.
    """

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


# --------------------------------------------------------------------------------------------------
# Config


@dataclass(frozen=True)
class GridLevel:
    """One level of a grid: where to buy (gap below entry), how much (weight) and its TP."""

    gap_percent: Decimal
    weight_percent: Decimal
    tp_percent: Decimal


@dataclass(frozen=True)
class GridGenerator:
    """3Commas-style parameters that generate a grid (base order + safety orders).

    Safety order ``i`` (1-based) sits ``deviation_i`` percent below the start price, where
    ``deviation_i = deviation_{i-1} × step_scale + price_deviation_percent`` and ``deviation_0 = 0``,
    and costs ``safety_order_usd × volume_scale^(i-1)``.
    """

    base_order_usd: Decimal
    safety_order_usd: Decimal
    max_safety_orders: int
    price_deviation_percent: Decimal
    step_scale: Decimal
    volume_scale: Decimal
    tp_percent: Decimal

    def deviations(self) -> list[Decimal]:
        """Cumulative deviation (percent below start) of safety orders 1..max_safety_orders."""
        result: list[Decimal] = []
        previous = Decimal(0)
        with localcontext() as ctx:
            ctx.prec = _EXACT_PRECISION
            for _ in range(self.max_safety_orders):
                previous = previous * self.step_scale + self.price_deviation_percent
                result.append(_plain(previous))
        return result

    def volumes(self) -> list[Decimal]:
        """USD size of the base order followed by each safety order."""
        with localcontext() as ctx:
            ctx.prec = _EXACT_PRECISION
            safety = [
                _plain(self.safety_order_usd * self.volume_scale**index) for index in range(self.max_safety_orders)
            ]
        return [self.base_order_usd, *safety]

    def total_usd(self) -> Decimal:
        """Base order plus every safety order: the capital the generated grid needs."""
        with localcontext() as ctx:
            ctx.prec = _EXACT_PRECISION
            return sum(self.volumes(), Decimal(0))

    def levels(self) -> tuple[GridLevel, ...]:
        """The generated grid as ordinary levels (weights are each order's share of the total)."""
        volumes = self.volumes()
        gaps = [Decimal(0), *(-deviation for deviation in self.deviations())]
        total = self.total_usd()
        with localcontext() as ctx:
            ctx.prec = _EXACT_PRECISION
            weights = [_plain(volume * _HUNDRED / total) for volume in volumes]
        return tuple(
            GridLevel(gap_percent=gap, weight_percent=weight, tp_percent=self.tp_percent)
            for gap, weight in zip(gaps, weights, strict=True)
        )


@dataclass(frozen=True)
class GridConfig:
    """A validated grid config (docs/engine.md#grid). Build it with ``parse_grid_config``.

    ``levels`` are the default levels: the configured ones, or the generator's output when a
    generator was given (``generator`` is then kept for reference). Mappings are read-only.
    """

    levels: tuple[GridLevel, ...]
    capital_usd: Decimal | None
    generator: GridGenerator | None = None
    pyramid_specific_levels: Mapping[int, tuple[GridLevel, ...]] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )
    pyramid_capitals: Mapping[int, Decimal] = field(default_factory=lambda: MappingProxyType({}), hash=False)
    max_pyramids: int = DEFAULT_MAX_PYRAMIDS
    entry_order_type: str = DEFAULT_ENTRY_ORDER_TYPE
    tp_mode: str = DEFAULT_TP_MODE
    tp_aggregate_percent: Decimal = DEFAULT_TP_AGGREGATE_PERCENT
    cancel_dca_beyond_percent: Decimal | None = None

    @property
    def aggregate_tp_percent(self) -> Decimal:
        """The TP percent applied to a weighted average: the generator's TP, else ``tp_aggregate``."""
        # A 3Commas grid's TP is, by construction, a TP on the average entry.
        if self.generator is not None:
            return self.generator.tp_percent
        return self.tp_aggregate_percent


class _Errors:
    """Collects every problem in a config so the user sees them all at once, not one per request."""

    def __init__(self) -> None:
        self.errors: dict[str, list[str]] = {}

    def add(self, name: str, reason: str) -> None:
        self.errors.setdefault(name, []).append(reason)


def _number(value: object, name: str, errors: _Errors) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        errors.add(name, "must be a number (a JSON number or a numeric string)")
        return None
    try:
        # Bounded to what a money column holds, ASCII digits only: a stored config must never
        # produce a number that a later order or signal row cannot hold (core/validation.py).
        return decimal_bounded(value)
    except InvalidValueError as exc:
        errors.add(name, f"{exc.reason} (a JSON number or a numeric string)")
        return None


def _positive(value: object, name: str, errors: _Errors) -> Decimal | None:
    number = _number(value, name, errors)
    if number is not None and number <= 0:
        errors.add(name, f"must be > 0, got {decimal_to_str(number)}")
        return None
    return number


def _whole(value: object, name: str, errors: _Errors, *, low: int, high: int) -> int | None:
    number = None if isinstance(value, bool) else _number_quiet(value)
    if number is None or number != number.to_integral_value():
        errors.add(name, "must be a whole number")
        return None
    if not low <= number <= high:
        errors.add(name, f"must be between {low} and {high}, got {decimal_to_str(number)}")
        return None
    return int(number)


def _number_quiet(value: object) -> Decimal | None:
    try:
        return decimal_bounded(value)
    except InvalidValueError:
        return None


def _index_quiet(key: object) -> int | None:
    """A pyramid index given as a JSON object key ("1") or an int, or None when it is not one."""
    text = str(key) if isinstance(key, int) and not isinstance(key, bool) else key
    if not isinstance(text, str) or not text.isdigit() or not text.isascii():
        return None
    return int(text)


def _index(key: object, name: str, errors: _Errors, *, max_pyramids: int) -> int | None:
    """A pyramid index given as a JSON object key ("1") or an int."""
    text = str(key) if isinstance(key, int) and not isinstance(key, bool) else key
    if not isinstance(text, str) or not text.isdigit() or not text.isascii():
        errors.add(name, "pyramid index must be a whole number >= 0")
        return None
    index = int(text)
    if index >= max_pyramids:
        errors.add(name, f"pyramid index must be below max_pyramids ({max_pyramids}), got {index}")
        return None
    return index


def _parse_levels(value: object, name: str, errors: _Errors) -> tuple[GridLevel, ...] | None:
    if not isinstance(value, list):
        errors.add(name, "must be a list of levels")
        return None
    if not value:
        errors.add(name, "must contain at least one level")
        return None
    if len(value) > MAX_LEVELS:
        errors.add(name, f"at most {MAX_LEVELS} levels, got {len(value)}")
        return None
    before = len(errors.errors)
    levels: list[GridLevel] = []
    for position, item in enumerate(value):
        item_name = f"{name}[{position}]"
        if not isinstance(item, dict):
            errors.add(item_name, "must be an object with gap_percent, weight_percent, tp_percent")
            continue
        for key in item:
            if key not in _LEVEL_KEYS:
                errors.add(f"{item_name}.{key}", "unknown field")
        for key in _LEVEL_KEYS:
            if key not in item:
                errors.add(f"{item_name}.{key}", "is required")
        gap = _number(item["gap_percent"], f"{item_name}.gap_percent", errors) if "gap_percent" in item else None
        weight = (
            _positive(item["weight_percent"], f"{item_name}.weight_percent", errors)
            if "weight_percent" in item
            else None
        )
        tp = _positive(item["tp_percent"], f"{item_name}.tp_percent", errors) if "tp_percent" in item else None
        if gap is not None:
            if gap > 0:
                errors.add(
                    f"{item_name}.gap_percent",
                    f"must be <= 0 for a long grid (levels sit at or below the entry), got {decimal_to_str(gap)}",
                )
            elif gap <= -_HUNDRED:
                errors.add(
                    f"{item_name}.gap_percent",
                    f"must be > -100 (the level price would be zero or negative), got {decimal_to_str(gap)}",
                )
            elif levels and gap > levels[-1].gap_percent:
                errors.add(
                    f"{item_name}.gap_percent",
                    f"must be <= the previous level's gap ({decimal_to_str(levels[-1].gap_percent)}): "
                    f"levels go deeper one after another",
                )
        if gap is not None and weight is not None and tp is not None:
            levels.append(GridLevel(gap_percent=gap, weight_percent=weight, tp_percent=tp))
    if len(errors.errors) != before:
        return None
    total = sum((level.weight_percent for level in levels), Decimal(0))
    if abs(total - _HUNDRED) > WEIGHT_SUM_TOLERANCE:
        errors.add(name, f"weight_percent must sum to 100 (±0.01), got {decimal_to_str(total)}")
        return None
    return tuple(levels)


def _parse_generator(value: object, errors: _Errors) -> GridGenerator | None:
    name = "generator"
    if not isinstance(value, dict):
        errors.add(name, "must be an object")
        return None
    before = len(errors.errors)
    for key in value:
        if key not in _GENERATOR_KEYS:
            errors.add(f"{name}.{key}", "unknown field")
    for key in _GENERATOR_REQUIRED:
        if key not in value:
            errors.add(f"{name}.{key}", "is required")
    if len(errors.errors) != before:
        return None
    base = _positive(value["base_order_usd"], f"{name}.base_order_usd", errors)
    safety = _positive(value["safety_order_usd"], f"{name}.safety_order_usd", errors)
    count = _whole(value["max_safety_orders"], f"{name}.max_safety_orders", errors, low=0, high=MAX_SAFETY_ORDERS)
    deviation = _positive(value["price_deviation_percent"], f"{name}.price_deviation_percent", errors)
    # 3Commas' own defaults for the two scales are 1 (equal steps, equal volumes).
    step_scale = _positive(value.get("step_scale", 1), f"{name}.step_scale", errors)
    volume_scale = _positive(value.get("volume_scale", 1), f"{name}.volume_scale", errors)
    tp = _positive(value["tp_percent"], f"{name}.tp_percent", errors)
    if (
        base is None
        or safety is None
        or count is None
        or deviation is None
        or step_scale is None
        or volume_scale is None
        or tp is None
    ):
        return None
    generator = GridGenerator(
        base_order_usd=base,
        safety_order_usd=safety,
        max_safety_orders=count,
        price_deviation_percent=deviation,
        step_scale=step_scale,
        volume_scale=volume_scale,
        tp_percent=tp,
    )
    deviations = generator.deviations()
    if deviations and deviations[-1] >= _HUNDRED:
        errors.add(
            name,
            f"the last safety order would be {decimal_to_str(deviations[-1].quantize(Decimal('0.01')))}% "
            f"below the start price; it must stay below 100% (lower max_safety_orders, "
            f"price_deviation_percent or step_scale)",
        )
        return None
    return generator


def parse_grid_config(data: Mapping[str, Any], *, ignore_unknown: bool = False) -> GridConfig:
    """Validate a grid config (docs/engine.md#config) and return it as a ``GridConfig``.

    Numbers may be JSON numbers or numeric strings (never booleans, NaN or Infinity). Exactly one of
    ``levels`` and ``generator`` is required; ``capital_usd`` is required with ``levels`` and
    defaults to the generator's total otherwise. Unknown keys are errors unless ``ignore_unknown``
    (for callers that pass a whole engine config, of which the grid keys are one part).

    Raises ``GridConfigError`` listing every bad field with its reasons.
    """
    errors = _Errors()
    if not isinstance(data, Mapping):
        raise GridConfigError({"config": ["must be an object"]})
    if not ignore_unknown:
        for key in data:
            if key not in GRID_CONFIG_KEYS:
                errors.add(str(key), "unknown field")

    def optional(key: str) -> object:
        # JSON null means "not given" for every optional key.
        return data.get(key)

    max_pyramids = DEFAULT_MAX_PYRAMIDS
    if optional("max_pyramids") is not None:
        parsed_max = _whole(data["max_pyramids"], "max_pyramids", errors, low=1, high=MAX_PYRAMIDS_LIMIT)
        max_pyramids = parsed_max if parsed_max is not None else MAX_PYRAMIDS_LIMIT

    levels: tuple[GridLevel, ...] | None = None
    generator: GridGenerator | None = None
    has_levels = optional("levels") is not None
    has_generator = optional("generator") is not None
    if has_levels and has_generator:
        errors.add("generator", "give either levels or generator, not both")
    elif has_generator:
        generator = _parse_generator(data["generator"], errors)
        if generator is not None:
            levels = generator.levels()
    elif has_levels:
        levels = _parse_levels(data["levels"], "levels", errors)
    else:
        errors.add("levels", "is required (or give a generator)")

    capital: Decimal | None = None
    if optional("capital_usd") is not None:
        capital = _positive(data["capital_usd"], "capital_usd", errors)
    elif has_levels:
        errors.add("capital_usd", "is required with levels")

    specific: dict[int, tuple[GridLevel, ...]] = {}
    raw_specific = optional("pyramid_specific_levels")
    if raw_specific is not None:
        if not isinstance(raw_specific, Mapping):
            errors.add("pyramid_specific_levels", "must be an object of {pyramid index: levels}")
        else:
            for key, value in raw_specific.items():
                name = f"pyramid_specific_levels.{key}"
                if isinstance(value, list) and not value and _index_quiet(key) is not None:
                    # An empty list means "use the default levels", which every pyramid does anyway,
                    # so it conflicts with no max_pyramids (docs/engine.md#capital).
                    continue
                index = _index(key, name, errors, max_pyramids=max_pyramids)
                parsed = _parse_levels(value, name, errors)
                if index is not None and parsed is not None:
                    specific[index] = parsed

    capitals: dict[int, Decimal] = {}
    raw_capitals = optional("pyramid_capitals")
    if raw_capitals is not None:
        if not isinstance(raw_capitals, Mapping):
            errors.add("pyramid_capitals", "must be an object of {pyramid index: capital}")
        else:
            for key, value in raw_capitals.items():
                name = f"pyramid_capitals.{key}"
                index = _index(key, name, errors, max_pyramids=max_pyramids)
                amount = _positive(value, name, errors)
                if index is not None and amount is not None:
                    capitals[index] = amount

    entry_order_type = optional("entry_order_type")
    if entry_order_type is None:
        entry_order_type = DEFAULT_ENTRY_ORDER_TYPE
    elif entry_order_type not in ENTRY_ORDER_TYPES:
        errors.add("entry_order_type", f"must be one of {', '.join(ENTRY_ORDER_TYPES)}")
    tp_mode = optional("tp_mode")
    if tp_mode is None:
        tp_mode = DEFAULT_TP_MODE
    elif tp_mode not in TP_MODES:
        errors.add("tp_mode", f"must be one of {', '.join(TP_MODES)}")

    tp_aggregate = DEFAULT_TP_AGGREGATE_PERCENT
    if optional("tp_aggregate_percent") is not None:
        tp_aggregate = _positive(data["tp_aggregate_percent"], "tp_aggregate_percent", errors) or tp_aggregate
    cancel_beyond: Decimal | None = None
    if optional("cancel_dca_beyond_percent") is not None:
        cancel_beyond = _positive(data["cancel_dca_beyond_percent"], "cancel_dca_beyond_percent", errors)

    if errors.errors or levels is None:
        raise GridConfigError(errors.errors or {"levels": ["could not be read"]})
    return GridConfig(
        levels=levels,
        capital_usd=capital,
        generator=generator,
        pyramid_specific_levels=MappingProxyType(specific),
        pyramid_capitals=MappingProxyType(capitals),
        max_pyramids=max_pyramids,
        entry_order_type=str(entry_order_type),
        tp_mode=str(tp_mode),
        tp_aggregate_percent=tp_aggregate,
        cancel_dca_beyond_percent=cancel_beyond,
    )


def _check_pyramid_index(config: GridConfig, index: int) -> None:
    if not 0 <= index < config.max_pyramids:
        raise GridError(
            "pyramid_out_of_range",
            f"pyramid index {index} is outside 0..{config.max_pyramids - 1} (max_pyramids {config.max_pyramids})",
        )


def levels_for_pyramid(config: GridConfig, index: int) -> tuple[GridLevel, ...]:
    """The levels pyramid ``index`` uses: its own override, else the default levels."""
    _check_pyramid_index(config, index)
    return config.pyramid_specific_levels.get(index, config.levels)


def capital_for_pyramid(config: GridConfig, index: int) -> Decimal:
    """The capital (quote currency) of pyramid ``index``.

    ``pyramid_capitals[index]``, else ``capital_usd``, else the generator's base + safety volumes.
    """
    _check_pyramid_index(config, index)
    if index in config.pyramid_capitals:
        return config.pyramid_capitals[index]
    if config.capital_usd is not None:
        return config.capital_usd
    if config.generator is not None:
        return config.generator.total_usd()
    # parse_grid_config refuses such a config; a hand-built one is a programming error.
    raise GridError("no_capital", "the grid config has no capital_usd and no generator")


# --------------------------------------------------------------------------------------------------
# Computing legs


@dataclass(frozen=True)
class GridLeg:
    """One orderable DCA leg of a pyramid, rounded by the market rules.

    ``level`` is the index of the config level the leg comes from; ``weight_percent`` is the share of
    the pyramid's capital it carries (including any sub-minimum levels merged into it, listed in
    ``merged_levels``). ``cum_avg_price`` is the quantity-weighted average price if this leg and
    every leg before it fill (kept to 18 decimals), and ``cum_tp_price`` is that average plus the
    aggregate TP percent, rounded down to the tick. The two TP prices are worked out when first read
    (the backtester places thousands of grids and reads neither: it prices a TP from the actual fill).
    """

    level: int
    gap_percent: Decimal
    weight_percent: Decimal
    tp_percent: Decimal
    price: Decimal
    quantity: Decimal
    notional: Decimal
    cum_avg_price: Decimal
    aggregate_tp_percent: Decimal
    rules: MarketRules = field(repr=False, compare=False)
    merged_levels: tuple[int, ...] = ()

    @functools.cached_property
    def tp_price(self) -> Decimal:
        """The leg's own take-profit: its price plus ``tp_percent``, rounded down to the tick."""
        return _tp_above(self.price, self.tp_percent, self.rules)

    @functools.cached_property
    def cum_tp_price(self) -> Decimal:
        return _tp_above(self.cum_avg_price, self.aggregate_tp_percent, self.rules)


def _tp_above(price: Decimal, tp_percent: Decimal, rules: MarketRules) -> Decimal:
    """``price × (1 + tp%)`` rounded down to the tick, but at least one tick above ``price``."""
    target = round_price_down(_EXACT.multiply(price, _growth(tp_percent)), rules)
    # Rounding down a small TP (or a tiny-priced coin) can land on or below the buy price, which
    # would sell at a loss after fees; the next tick up is the smallest profitable sell.
    floor_above = _EXACT.add(round_price_down(price, rules), rules.tick_size)
    return max(target, floor_above)


@functools.lru_cache(maxsize=256)
def _growth(percent: Decimal) -> Decimal:
    """``1 + percent / 100`` (a config's few percents, computed once each)."""
    return _EXACT.add(1, _EXACT.divide(percent, _HUNDRED))


def trade_tp_price(fill_price: Decimal, tp_percent: Decimal, rules: MarketRules) -> Decimal:
    """Per-leg take-profit for an actual fill: ``fill × (1 + tp/100)`` rounded down to the tick.

    Always strictly above ``fill_price`` (at least the next tick above it), even when the fill price
    is an average that is not on the tick.
    """
    if fill_price <= 0:
        raise ValueError(f"fill price must be > 0, got {fill_price}")
    if tp_percent <= 0:
        raise ValueError(f"tp_percent must be > 0, got {tp_percent}")
    return _tp_above(fill_price, tp_percent, rules)


@dataclass(eq=False)  # identity semantics: drafts are compared and removed as objects
class _Draft:
    """A leg being planned: its level, its price, and the weight it carries (merges add weight)."""

    level: int
    source: GridLevel
    price: Decimal
    weight: Decimal
    merged: list[int]
    # `_sized`'s answer for the weight it was worked out at (a merge changes the weight).
    sized: tuple[Decimal, Decimal, list[OrderProblem]] | None = None
    sized_weight: Decimal | None = None


@functools.lru_cache(maxsize=1024)
def _share(capital: Decimal, weight: Decimal, weight_sum: Decimal) -> Decimal:
    # Dividing by the weight sum (not by 100) keeps the total at the capital even when the
    # weights sum to 100 ± 0.01. (Memoized: the result is quantized, the same for equal inputs.)
    return _EXACT.divide(_EXACT.multiply(capital, weight), weight_sum).quantize(
        _SHARE_QUANTUM, rounding=ROUND_HALF_EVEN, context=_EXACT
    )


def _quantity(share: Decimal, price: Decimal, rules: MarketRules) -> Decimal:
    # Floor the quotient too, so that a quotient just under a step can never round up onto it.
    return round_qty_down(_EXACT_FLOOR.divide(share, price), rules)


_MERGEABLE = frozenset({"not_positive", "below_min_qty", "below_min_notional"})


def _sized(draft: _Draft, capital: Decimal, weight_sum: Decimal, rules: MarketRules) -> tuple[Decimal, Decimal, bool]:
    """The draft's (share, quantity, valid) at its current weight, worked out once per weight; valid:
    no problem that merging can fix (it may still break a maximum, which `_build_legs` refuses)."""
    if draft.sized is None or draft.sized_weight != draft.weight:
        share = _share(capital, draft.weight, weight_sum)
        qty = _quantity(share, draft.price, rules)
        draft.sized, draft.sized_weight = (share, qty, validate_order(draft.price, qty, rules)), draft.weight
    share, qty, problems = draft.sized
    return share, qty, not any(p.code in _MERGEABLE for p in problems)


def _nearest(draft: _Draft, candidates: Sequence[_Draft]) -> _Draft:
    # Nearest by price; on a tie the shallower level (closer to entry, more likely to fill) wins.
    return min(candidates, key=lambda other: (abs(other.price - draft.price), other.level))


def _price_in_range(price: Decimal, rules: MarketRules) -> bool:
    if price <= 0:
        return False
    if rules.min_price is not None and price < rules.min_price:
        return False
    return rules.max_price is None or price <= rules.max_price


def compute_grid(
    *,
    config: GridConfig,
    pyramid_index: int,
    entry_price: Decimal,
    rules: MarketRules,
    side: str = "long",
) -> list[GridLeg]:
    """The legs pyramid ``pyramid_index`` places for an entry at ``entry_price``, in level order.

    Each level's price is ``entry × (1 + gap/100)`` rounded down to the tick and its quantity
    ``capital × weight/100 / price`` rounded down to the step. Levels that cannot be ordered are
    merged so that no capital is lost:

    1. a level whose price falls outside the market's price band (or to zero) gives its weight to the
       nearest level inside the band;
    2. while no level is large enough on its own (min quantity / min notional), the smallest level
       (the deepest on a tie) is merged into its nearer neighbour, pooling capital;
    3. then every remaining too-small level gives its weight to the nearest valid level.

    Raises ``GridError`` when the market is not trading, when even the whole pyramid's capital
    cannot make one valid leg, or when a leg would exceed the market's maximums. Only ``side="long"``
    is supported (spot first).
    """
    if side != "long":
        raise GridError("unsupported_side", f"only long grids are supported, got side {side!r}")
    if not rules.is_trading:
        raise GridError(
            "symbol_not_trading",
            f"{rules.symbol} is not trading (status {rules.status}); no order can be placed",
        )
    if not isinstance(entry_price, Decimal) or not entry_price.is_finite() or entry_price <= 0:
        raise GridError("invalid_entry_price", f"entry price must be a Decimal > 0, got {entry_price!r}")
    levels = levels_for_pyramid(config, pyramid_index)
    capital = capital_for_pyramid(config, pyramid_index)
    weight_sum = sum((level.weight_percent for level in levels), Decimal(0))

    drafts = [
        _Draft(
            level=position,
            source=level,
            price=round_price_down(_EXACT.multiply(entry_price, _growth(level.gap_percent)), rules),
            weight=level.weight_percent,
            merged=[],
        )
        for position, level in enumerate(levels)
    ]

    def absorb(target: _Draft, donor: _Draft) -> None:
        target.weight += donor.weight
        target.merged.extend([donor.level, *donor.merged])
        drafts.remove(donor)

    # 1. Levels outside the price band can never be placed, whatever capital they carry.
    in_band = [draft for draft in drafts if _price_in_range(draft.price, rules)]
    if not in_band:
        raise GridError(
            "price_out_of_range",
            f"every level of the grid for {rules.symbol} at entry {decimal_to_str(entry_price)} "
            f"falls outside the allowed price range {_price_band(rules)}",
        )
    for draft in [draft for draft in drafts if draft not in in_band]:
        absorb(_nearest(draft, in_band), draft)

    def is_valid(draft: _Draft) -> bool:
        return _sized(draft, capital, weight_sum, rules)[2]

    # 2. Pool capital until at least one leg is orderable by itself.
    while not any(is_valid(draft) for draft in drafts):
        if len(drafts) == 1:
            raise _below_minimum(drafts[0], capital, pyramid_index, rules)
        smallest = min(drafts, key=lambda draft: (draft.weight, -draft.level))
        position = drafts.index(smallest)
        neighbours = [drafts[i] for i in (position - 1, position + 1) if 0 <= i < len(drafts)]
        absorb(_nearest(smallest, neighbours), smallest)

    # 3. Every leg still too small joins the nearest valid one; valid legs only grow, so stay valid.
    valid = [draft for draft in drafts if is_valid(draft)]
    for draft in [draft for draft in drafts if draft not in valid]:
        absorb(_nearest(draft, valid), draft)

    return _build_legs(drafts, capital, weight_sum, config.aggregate_tp_percent, rules)


def _price_band(rules: MarketRules) -> str:
    low = decimal_to_str(rules.min_price) if rules.min_price is not None else "0"
    high = decimal_to_str(rules.max_price) if rules.max_price is not None else "unlimited"
    return f"{low}..{high} {rules.quote}"


def _below_minimum(draft: _Draft, capital: Decimal, pyramid_index: int, rules: MarketRules) -> GridError:
    qty = _quantity(capital, draft.price, rules)
    with localcontext() as ctx:
        ctx.prec = _EXACT_PRECISION
        notional = draft.price * qty
    return GridError(
        "below_minimum",
        f"the capital of pyramid {pyramid_index} ({decimal_to_str(capital)} {rules.quote}) cannot make "
        f"even one valid order on {rules.symbol}: at {decimal_to_str(draft.price)} it buys "
        f"{decimal_to_str(qty)} {rules.base} worth {decimal_to_str(notional)} {rules.quote}, but the "
        f"minimum notional is {decimal_to_str(rules.min_notional)} {rules.quote} and the minimum "
        f"quantity {decimal_to_str(rules.min_qty)} {rules.base}",
    )


def _build_legs(
    drafts: Sequence[_Draft],
    capital: Decimal,
    weight_sum: Decimal,
    aggregate_tp_percent: Decimal,
    rules: MarketRules,
) -> list[GridLeg]:
    legs: list[GridLeg] = []
    cost = Decimal(0)
    quantity_total = Decimal(0)
    for draft in drafts:
        _, qty, _ = _sized(draft, capital, weight_sum, rules)
        notional = _EXACT.multiply(draft.price, qty)
        cost = _EXACT.add(cost, notional)
        quantity_total = _EXACT.add(quantity_total, qty)
        cum_avg = _EXACT.divide(cost, quantity_total).quantize(_SHARE_QUANTUM, rounding=ROUND_HALF_EVEN, context=_EXACT)
        weight_percent = _weight_percent(draft.weight, weight_sum)
        # Merging only adds capital, so only the maximums can still be broken here.
        assert draft.sized is not None
        problems = draft.sized[2]
        if problems:
            raise GridError(
                "above_maximum",
                f"level {draft.level} of the grid on {rules.symbol} cannot be ordered: "
                + "; ".join(problem.reason for problem in problems),
            )
        legs.append(
            GridLeg(
                level=draft.level,
                gap_percent=draft.source.gap_percent,
                weight_percent=weight_percent,
                tp_percent=draft.source.tp_percent,
                price=draft.price,
                quantity=qty,
                notional=notional,
                cum_avg_price=cum_avg,
                aggregate_tp_percent=aggregate_tp_percent,
                rules=rules,
                merged_levels=tuple(sorted(draft.merged)),
            )
        )
    return legs


@functools.lru_cache(maxsize=1024)
def _weight_percent(weight: Decimal, weight_sum: Decimal) -> Decimal:
    """A leg's share of the pyramid's capital in percent (memoized: `_plain` writes equal values alike)."""
    return _plain(_EXACT.divide(_EXACT.multiply(weight, _HUNDRED), weight_sum))


def legs_to_json(legs: Sequence[GridLeg], rules: MarketRules | None = None) -> list[dict[str, Any]]:
    """The grid preview (docs/engine.md#grid-levels): one object per leg, every number a plain decimal string.

    With ``rules`` prices show the tick's decimals and quantities the step's (``"65000.00"``);
    without, trailing zeros are dropped (``"65000"``). Never exponent notation.
    """
    tick = rules.tick_size if rules is not None else None
    step = rules.step_size if rules is not None else None
    return [
        {
            "level": leg.level,
            "price": decimal_to_str(leg.price, tick),
            "quantity": decimal_to_str(leg.quantity, step),
            "notional": decimal_to_str(leg.notional),
            "tp_price": decimal_to_str(leg.tp_price, tick),
            "cum_avg_price": decimal_to_str(leg.cum_avg_price, tick),
            "cum_tp_price": decimal_to_str(leg.cum_tp_price, tick),
        }
        for leg in legs
    ]
