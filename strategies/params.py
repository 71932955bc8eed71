"""The five strategies' names, rules and parameters, without pandas (docs/strategies.md#the-five): what
the API, the admin and validation need. The computations are in `strategies.library`, which the worker
imports; web processes never load pandas, pandas-ta or numba for a form."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from math import isfinite
from typing import Any

from .choices import StrategyKind


class StrategyParamError(ValueError):
    """Parameters we refuse: field name → reasons."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{name}: {reasons[0]}" for name, reasons in fields.items()))
        self.fields = fields


@dataclass(frozen=True)
class Param:
    """One parameter: its type, default (docs/strategies.md#the-five) and allowed range (inclusive)."""

    name: str
    kind: type  # int or float
    default: int | float
    minimum: int | float
    maximum: int | float


type Values = dict[str, int | float]


def _below(low: str, high: str) -> Callable[[Mapping[str, int | float]], dict[str, list[str]]]:
    def check(values: Mapping[str, int | float]) -> dict[str, list[str]]:
        return {low: [f"must be below {high}"]} if values[low] >= values[high] else {}

    return check


def _nothing(values: Mapping[str, int | float]) -> dict[str, list[str]]:
    return {}


@dataclass(frozen=True)
class StrategySpec:
    kind: str
    title: str
    entry_rule: str
    exit_rule: str
    params: tuple[Param, ...]
    check: Callable[[Mapping[str, int | float]], dict[str, list[str]]] = _nothing  # between parameters

    def defaults(self) -> Values:
        return {param.name: param.default for param in self.params}


SPECS: dict[str, StrategySpec] = {
    spec.kind: spec
    for spec in (
        StrategySpec(
            StrategyKind.RSI,
            "RSI",
            "RSI(length) crosses up through oversold",
            "RSI(length) crosses down through overbought",
            (
                Param("length", int, 14, 2, 200),
                Param("oversold", float, 30.0, 1.0, 99.0),
                Param("overbought", float, 70.0, 1.0, 99.0),
            ),
            _below("oversold", "overbought"),
        ),
        StrategySpec(
            StrategyKind.MACD,
            "MACD",
            "the MACD line crosses above its signal line",
            "the MACD line crosses below its signal line",
            (Param("fast", int, 12, 2, 200), Param("slow", int, 26, 3, 400), Param("signal", int, 9, 2, 200)),
            _below("fast", "slow"),
        ),
        StrategySpec(
            StrategyKind.BOLLINGER,
            "Bollinger Bands",
            "the close crosses back up through the lower band (from below it)",
            "the close crosses back down through the upper band (from above it)",
            (Param("length", int, 20, 2, 400), Param("std", float, 2.0, 0.1, 10.0)),
        ),
        StrategySpec(
            StrategyKind.VOLUME,
            "Volume spike",
            "volume above multiplier × its mean over the previous length candles, on a candle that closes up",
            "the same spike on a candle that closes down",
            (Param("length", int, 20, 2, 400), Param("multiplier", float, 2.0, 1.0, 100.0)),
        ),
        StrategySpec(
            StrategyKind.STOCHASTIC,
            "Stochastic",
            "%K crosses above %D while %K is below oversold",
            "%K crosses below %D while %K is above overbought",
            (
                Param("k", int, 14, 2, 200),
                Param("d", int, 3, 1, 50),
                Param("smooth_k", int, 3, 1, 50),
                Param("oversold", float, 20.0, 1.0, 99.0),
                Param("overbought", float, 80.0, 1.0, 99.0),
            ),
            _below("oversold", "overbought"),
        ),
    )
}


def spec_for(kind: str) -> StrategySpec:
    try:
        return SPECS[kind]
    except KeyError:
        raise StrategyParamError({"kind": [f"unknown strategy {kind!r}; expected one of {', '.join(SPECS)}"]}) from None


def params_validate(kind: str, params: Any) -> Values:
    """`params` of a `kind` with defaults filled in; `StrategyParamError` naming each bad field."""
    spec = spec_for(kind)
    if not isinstance(params, Mapping):
        raise StrategyParamError({"params": ["must be an object"]})
    errors: dict[str, list[str]] = {}
    known = {param.name: param for param in spec.params}
    for name in params:
        if name not in known:
            errors[str(name)] = [f"unknown parameter for {kind}; expected one of {', '.join(known)}"]
    values: Values = {}
    for param in spec.params:
        raw = params.get(param.name, param.default)
        value: int | float
        try:
            if isinstance(raw, bool):
                raise ValueError
            if param.kind is int:
                number = float(str(raw))
                if number != int(number):
                    raise ValueError
                value = int(number)
            else:
                value = float(str(raw))
                if not isfinite(value):
                    raise ValueError
        except (TypeError, ValueError, OverflowError):
            errors[param.name] = [f"must be {'a whole number' if param.kind is int else 'a number'}"]
            continue
        if not param.minimum <= value <= param.maximum:
            errors[param.name] = [f"must be between {param.minimum} and {param.maximum}, got {raw}"]
            continue
        values[param.name] = value
    if not errors:
        errors.update(spec.check(values))
    if errors:
        raise StrategyParamError(errors)
    return values
