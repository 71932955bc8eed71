"""The engine config: grid (positions.grid) plus TP, stops, trailing, slippage, pool and risk settings.

One flat JSON object per user (`EngineConfig.data`) holding the values the user set, with optional
`overrides` per symbol or symbol+timeframe (`"BTC/USDT"`, `"BTC/USDT:1h"`) holding partial objects.
Defaults are defined once: the engine keys below, the grid keys in `positions.grid`. They are applied
when a config is read (`resolve_engine_config`, `effective_config`, `engine_setting`), never stored,
and a default never contradicts a value the user gave (docs/engine.md#config). `parse_engine_config`
validates strictly and names every bad field.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from core.validation import InvalidValueError, decimal_bounded, json_problems

from .grid import GRID_CONFIG_KEYS, GridConfig, GridConfigError, grid_defaults_for, parse_grid_config
from .rules.pool import QUEUE_RULES

# Non-grid keys with their defaults. Numbers are kept as strings so Decimal is exact.
ENGINE_DEFAULTS: dict[str, Any] = {
    "stop_loss_percent": None,  # stop at avg_entry × (1 − x/100); None = off
    "trailing_enabled": False,
    "trailing_activation_percent": "5",
    "trailing_stop_percent": "3",
    "max_slippage_percent": "1",
    "slippage_action": "warn",  # warn | reject
    "use_signal_size": False,
    "max_open_groups": 10,
    "queue_max_size": None,
    # The loss-offset risk engine's keys (riskengine.rules: eligibility and the offset plan;
    # docs/engine.md#risk-engine).
    "risk_enabled": True,
    "loss_threshold_percent": "-5",
    "post_full_wait_minutes": 60,
    "age_threshold_minutes": None,
    "max_winners_to_combine": 3,
    "min_close_notional": "20",
    "risk_eligibility": "all_filled",  # all_pyramids | all_submitted | all_filled
    "risk_timer_reset_on_pyramid": True,  # a new pyramid restarts the eligibility timer
    "risk_evaluate_on_fill": False,  # also run a risk cycle after an entry fill, not only every 30 s
    # The queue's promotion order (docs/engine.md#pool-and-queue): any subset of QUEUE_RULES, in order.
    "queue_priority_rules": list(QUEUE_RULES),
    "queue_max_age_minutes": 1440,  # a queued signal older than this is dropped; 0 = never
    # Guards (docs/engine.md#guards).
    "pause_blocks_pyramids": False,
    "max_total_exposure_usd": None,  # filled cost + resting entry notional; None = no cap
    "exposure_action": "queue",  # queue | reject: a new group that would pass the cap
    "daily_loss_limit_usd": None,  # realized loss since 00:00 UTC that stops new groups; None = off
    "cooldown_minutes_after_loss": 0,  # no new group on a symbol this long after a loss there
    "max_alert_lag_seconds": 300,  # an alert whose own timestamp is older is ignored; 0 = off
    # The ML entry filter (docs/ml.md#filter): entries whose deployed model scores below the threshold
    # (its probability that the price is higher after the model's horizon) are refused.
    "ml_filter_enabled": False,
    "ml_filter_threshold": "0.5",
}
ENGINE_KEYS = set(ENGINE_DEFAULTS) | set(GRID_CONFIG_KEYS) | {"overrides"}
CHOICES = {
    "slippage_action": ("warn", "reject"),
    "risk_eligibility": ("all_pyramids", "all_submitted", "all_filled"),
    "exposure_action": ("queue", "reject"),
}
BOOLEANS = (
    "trailing_enabled",
    "use_signal_size",
    "risk_enabled",
    "risk_timer_reset_on_pyramid",
    "risk_evaluate_on_fill",
    "pause_blocks_pyramids",
    "ml_filter_enabled",
)
POSITIVE_PERCENTS = ("trailing_activation_percent", "trailing_stop_percent", "max_slippage_percent")
WHOLE = {"max_open_groups": (1, 1000), "post_full_wait_minutes": (0, 100000), "max_winners_to_combine": (1, 20)}
# Upper bounds of the optional whole numbers: durations of at most ten years and a queue of at most
# 100,000 entries. Without one, a huge value is stored and later overflows the date arithmetic of the
# background task that reads it.
TEN_YEARS_MINUTES = 10 * 366 * 24 * 60
OPTIONAL_WHOLE_MAX = {
    "cooldown_minutes_after_loss": TEN_YEARS_MINUTES,
    "max_alert_lag_seconds": TEN_YEARS_MINUTES * 60,
    "queue_max_size": 100_000,
    "age_threshold_minutes": TEN_YEARS_MINUTES,
    "queue_max_age_minutes": TEN_YEARS_MINUTES,
}


class ConfigError(ValueError):
    """Invalid engine config; `errors` maps dotted field names to reasons."""

    def __init__(self, errors: dict[str, list[str]]):
        self.errors = errors
        super().__init__("; ".join(f"{k}: {', '.join(v)}" for k, v in errors.items()))


def default_engine_config() -> dict[str, Any]:
    """Every key with its default, as JSON-ready data: the config of a user who set nothing."""
    return resolve_engine_config({})


def resolve_engine_config(given: Mapping[str, Any]) -> dict[str, Any]:
    """The values a user gave laid over the defaults that apply under them (no validation).

    A JSON null means "not given" (the default applies; every key where null is meaningful, such as
    `stop_loss_percent`, defaults to null). The grid defaults yield to the given values
    (`grid_defaults_for`): e.g. a `generator` keeps its own sizes unless `capital_usd` is given, and a
    `max_pyramids` of 1 drops the default entries for pyramid 1. Resolving twice changes nothing, so a
    group's snapshot (a resolved config) resolves to itself.
    """
    explicit = {key: copy.deepcopy(value) for key, value in given.items() if value is not None}
    return {**grid_defaults_for(explicit), **copy.deepcopy(ENGINE_DEFAULTS), "overrides": {}, **explicit}


def layer_engine_config(base: Mapping[str, Any], partial: Mapping[str, Any]) -> dict[str, Any]:
    """`partial` laid over `base` (both as given by the user): levels and generator replace each other."""
    merged = {**base, **partial}
    if partial.get("generator") is not None and partial.get("levels") is None:
        merged.pop("levels", None)
    if partial.get("levels") is not None and partial.get("generator") is None:
        merged.pop("generator", None)
    return merged


def engine_setting(config: Mapping[str, Any] | None, key: str) -> Any:
    """One setting of a stored or snapshotted config, or its default: the only place a default is read.

    A group's `config` is the effective config at the time it opened; a group opened before a key
    existed simply lacks it, and gets the default here, never a literal retyped at the call site. A
    grid key's default is the one that applies under the config's own values (`grid_defaults_for`:
    a generator's config has no default `capital_usd`).
    """
    if key not in ENGINE_KEYS:
        raise KeyError(f"not an engine config key: {key}")
    if config is not None and config.get(key) is not None:
        return config[key]
    if key in _YIELDING_KEYS:
        return grid_defaults_for(config or {}).get(key)
    # Every other default is the same whatever else the config says (and cheap to copy: the monitor
    # reads settings per group and cycle).
    return copy.deepcopy(_plain_defaults().get(key))


# The grid keys whose default depends on the user's other values (see `grid_defaults_for`).
_YIELDING_KEYS = frozenset({"levels", "generator", "capital_usd", "pyramid_specific_levels", "pyramid_capitals"})


@functools.cache
def _plain_defaults() -> dict[str, Any]:
    return default_engine_config()


def _decimal(value: Any) -> Decimal | None:
    if value is None:
        return None
    try:
        return decimal_bounded(value)  # finite, ASCII digits, within a money column (core/validation.py)
    except InvalidValueError:
        return None


def _check_engine_keys(data: Mapping[str, Any], errors: dict[str, list[str]], prefix: str = "") -> None:
    def add(key: str, reason: str) -> None:
        errors.setdefault(prefix + key, []).append(reason)

    for key in BOOLEANS:
        if key in data and not isinstance(data[key], bool):
            add(key, "must be true or false")
    for key, allowed in CHOICES.items():
        if key in data and data[key] not in allowed:
            add(key, f"must be one of {', '.join(allowed)}")
    for key in POSITIVE_PERCENTS:
        if key in data:
            number = _decimal(data[key])
            if number is None or number <= 0 or number >= 100:
                add(key, "must be a number between 0 and 100 (exclusive)")
    if data.get("stop_loss_percent") is not None:
        number = _decimal(data["stop_loss_percent"])
        if number is None or number <= 0 or number >= 100:
            add("stop_loss_percent", "must be a number between 0 and 100 (exclusive), or null for no stop")
    if "loss_threshold_percent" in data:
        number = _decimal(data["loss_threshold_percent"])
        if number is None or number >= 0 or number <= -100:
            add("loss_threshold_percent", "must be a negative percentage above -100")
    if "ml_filter_threshold" in data:
        number = _decimal(data["ml_filter_threshold"])
        if number is None or number <= 0 or number >= 1:
            add("ml_filter_threshold", "must be a probability between 0 and 1 (exclusive)")
    if "min_close_notional" in data:
        number = _decimal(data["min_close_notional"])
        if number is None or number <= 0:
            add("min_close_notional", "must be a positive number")
    for key, (low, high) in WHOLE.items():
        if key in data and (
            isinstance(data[key], bool) or not isinstance(data[key], int) or not low <= data[key] <= high
        ):
            add(key, f"must be a whole number from {low} to {high}")
    if "queue_priority_rules" in data:
        rules = data["queue_priority_rules"]
        if not isinstance(rules, list) or not all(isinstance(r, str) and r in QUEUE_RULES for r in rules):
            add("queue_priority_rules", f"must be a list of rule names from {', '.join(QUEUE_RULES)}")
        elif len(set(rules)) != len(rules):
            add("queue_priority_rules", "must not name a rule twice")
    for key in ("max_total_exposure_usd", "daily_loss_limit_usd"):
        if data.get(key) is not None:
            number = _decimal(data[key])
            if number is None or number <= 0:
                add(key, "must be a positive amount, or null for no limit")
    for key in ("cooldown_minutes_after_loss", "max_alert_lag_seconds"):
        value = data.get(key)
        if value is not None and not _whole_within(value, OPTIONAL_WHOLE_MAX[key]):
            add(key, f"must be a whole number from 0 to {OPTIONAL_WHOLE_MAX[key]} (0 = off)")
    for key in ("queue_max_size", "age_threshold_minutes", "queue_max_age_minutes"):
        value = data.get(key)
        if value is not None and not _whole_within(value, OPTIONAL_WHOLE_MAX[key]):
            add(key, f"must be a whole number from 0 to {OPTIONAL_WHOLE_MAX[key]}, or null")


def _whole_within(value: Any, high: int) -> bool:
    return not isinstance(value, bool) and isinstance(value, int) and 0 <= value <= high


def parse_engine_config(data: Any) -> tuple[dict[str, Any], GridConfig]:
    """Validate the values a user gave (a whole config; what is missing takes its default).

    Returns the resolved config (`resolve_engine_config`: defaults included, what the engine uses) and
    its grid. Only the given values can be in conflict with each other; a default never makes a config
    invalid. Raises `ConfigError` naming every bad field, overrides' fields as `overrides.SCOPE.key`.
    """
    if not isinstance(data, Mapping):
        raise ConfigError({"config": ["must be a JSON object"]})
    # Keys and strings a JSON column cannot hold (NUL, lone surrogates), or nesting too deep.
    junk = json_problems(dict(data))
    if junk:
        raise ConfigError(junk)
    errors: dict[str, list[str]] = {}
    for key in data:
        if key not in ENGINE_KEYS:
            errors.setdefault(str(key), []).append("unknown field")
    given = {k: v for k, v in data.items() if k in ENGINE_KEYS}
    merged = resolve_engine_config(given)
    _check_engine_keys(merged, errors)
    grid: GridConfig | None = None
    try:
        grid = _parse_grid(merged)
    except GridConfigError as exc:
        for key, reasons in exc.errors.items():
            errors.setdefault(key, []).extend(reasons)
    overrides = merged.get("overrides") or {}
    if not isinstance(overrides, Mapping):
        errors.setdefault("overrides", []).append("must be an object keyed by SYMBOL or SYMBOL:TIMEFRAME")
    else:
        top = {k: v for k, v in given.items() if k != "overrides"}
        for scope, partial in overrides.items():
            if not isinstance(partial, Mapping):
                errors.setdefault(f"overrides.{scope}", []).append("must be an object")
                continue
            for key in partial:
                if key not in ENGINE_KEYS or key == "overrides":
                    errors.setdefault(f"overrides.{scope}.{key}", []).append("unknown field")
            try:
                _resolve_and_parse(layer_engine_config(top, partial))
            except ConfigError as exc:
                for key, reasons in exc.errors.items():
                    errors.setdefault(f"overrides.{scope}.{key}", []).extend(reasons)
    if errors:
        raise ConfigError(errors)
    assert grid is not None
    return merged, grid


def _parse_grid(config: Mapping[str, Any]) -> GridConfig:
    return parse_grid_config({k: v for k, v in config.items() if k in GRID_CONFIG_KEYS and v is not None})


def _resolve_and_parse(given: Mapping[str, Any]) -> tuple[dict[str, Any], GridConfig]:
    merged = resolve_engine_config({k: v for k, v in given.items() if k in ENGINE_KEYS and k != "overrides"})
    merged.pop("overrides", None)
    errors: dict[str, list[str]] = {}
    _check_engine_keys(merged, errors)
    try:
        grid = _parse_grid(merged)
    except GridConfigError as exc:
        errors.update(exc.errors)
        raise ConfigError(errors) from exc
    if errors:
        raise ConfigError(errors)
    return merged, grid


def effective_config(
    stored: Mapping[str, Any] | None, *, symbol: str, timeframe: str
) -> tuple[dict[str, Any], GridConfig]:
    """The config for a new group: stored values, then the symbol and symbol:timeframe overrides.

    The user's values and the matching overrides are layered first, then resolved over the defaults
    (so a symbol's `generator` keeps its own sizes unless some layer gives `capital_usd`). The result
    has no `overrides`. Parsed configs are memoized by content (the webhook path parses the same config
    for every alert).
    """
    key = (json.dumps(stored, sort_keys=True, default=str) if stored else "", symbol, timeframe)
    merged, grid = _effective_cached(*key)
    return copy.deepcopy(merged), grid


def effective_config_shared(
    stored_json: str | None, *, symbol: str, timeframe: str
) -> tuple[dict[str, Any], GridConfig]:
    """`effective_config` from the stored JSON text as the database returns it, memoized and not copied.

    For the webhook's hot path: the caller reads the merged dict and must never change it.
    """
    return _effective_cached(stored_json or "", symbol, timeframe)


@functools.lru_cache(maxsize=512)
def _effective_cached(stored_json: str, symbol: str, timeframe: str) -> tuple[dict[str, Any], GridConfig]:
    stored = json.loads(stored_json) if stored_json else {}
    overrides = stored.get("overrides") or {}
    given = {k: v for k, v in stored.items() if k != "overrides"}
    for scope in (symbol, f"{symbol}:{timeframe}"):
        given = layer_engine_config(given, overrides.get(scope) or {})
    return _resolve_and_parse(given)
