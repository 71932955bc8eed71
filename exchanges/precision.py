"""Market rules and order precision: exact Decimal rounding to an exchange's tick and step sizes.

This module is pure Python (no Django) so that the grid calculator, the backtester, the simulator and
the exchange adapter all share one implementation of "what may be sent to the exchange".

Conventions:

* Prices and quantities for orders are rounded **down** to the tick / step (``round_price_down``,
  ``round_qty_down``), as docs/engine.md#precision says; nothing is ever rounded up behind the caller's back.
* The general helpers (``round_to_tick``, ``round_to_decimals``, ``round_to_significant``) take a
  ``RoundingMode``: ``truncate`` (toward zero), ``round`` (nearest, halves away from zero, as ccxt
  does), ``round-up`` (toward +infinity) and ``round-down`` (toward -infinity). ``round-up`` and
  ``round-down`` follow freqtrade's ``price_to_precision`` (ceil / floor); for positive numbers they
  are the same as "away from zero" / "toward zero".
* No float is ever used for arithmetic. ``to_decimal`` converts a JSON float through ``str`` so that
  ``0.1`` becomes ``Decimal("0.1")`` and not its binary approximation.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import (
    ROUND_CEILING,
    ROUND_DOWN,
    ROUND_FLOOR,
    ROUND_HALF_UP,
    Context,
    Decimal,
    localcontext,
)
from enum import StrEnum
from typing import Any

__all__ = [
    "CountingMode",
    "MarketRules",
    "MarketRulesError",
    "OrderProblem",
    "PrecisionError",
    "RoundingMode",
    "amount_to_contract_precision",
    "amount_to_precision",
    "apply_precision",
    "check_order",
    "compact_symbol",
    "decimal_to_str",
    "market_rules_from_binance_symbol",
    "market_rules_from_ccxt_market",
    "market_rules_from_json",
    "market_rules_to_json",
    "normalize_order",
    "price_to_precision",
    "round_price_down",
    "round_qty_down",
    "round_to_decimals",
    "round_to_significant",
    "round_to_tick",
    "to_decimal",
    "truncate_to_tick",
    "validate_order",
]

# Enough digits for any price × quantity an exchange accepts (Binance: 8 decimals, quantities up to
# ~1e11) so that remainders and products below are exact rather than rounded by the default 28 digits.
_EXACT_PRECISION = 80

_NUMERIC_STRING = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$")


class RoundingMode(StrEnum):
    """How a value is brought onto a precision grid."""

    TRUNCATE = "truncate"
    ROUND = "round"
    ROUND_UP = "round-up"
    ROUND_DOWN = "round-down"

    @classmethod
    def from_ccxt(cls, value: int) -> RoundingMode:
        """Map ccxt's numeric constants (TRUNCATE=0, ROUND=1, ROUND_UP=2, ROUND_DOWN=3)."""
        return _CCXT_ROUNDING[value]


class CountingMode(StrEnum):
    """What a precision number means (ccxt's ``precisionMode``)."""

    TICK_SIZE = "tick-size"
    DECIMAL_PLACES = "decimal-places"
    SIGNIFICANT_DIGITS = "significant-digits"

    @classmethod
    def from_ccxt(cls, value: int) -> CountingMode:
        """Map ccxt's numeric constants (DECIMAL_PLACES=2, SIGNIFICANT_DIGITS=3, TICK_SIZE=4)."""
        return _CCXT_COUNTING[value]


_CCXT_ROUNDING = {
    0: RoundingMode.TRUNCATE,
    1: RoundingMode.ROUND,
    2: RoundingMode.ROUND_UP,
    3: RoundingMode.ROUND_DOWN,
}
_CCXT_COUNTING = {
    2: CountingMode.DECIMAL_PLACES,
    3: CountingMode.SIGNIFICANT_DIGITS,
    4: CountingMode.TICK_SIZE,
}
_DECIMAL_ROUNDING = {
    RoundingMode.TRUNCATE: ROUND_DOWN,
    RoundingMode.ROUND: ROUND_HALF_UP,
    RoundingMode.ROUND_UP: ROUND_CEILING,
    RoundingMode.ROUND_DOWN: ROUND_FLOOR,
}


class MarketRulesError(ValueError):
    """Market rules could not be built from an exchange's market description."""


class PrecisionError(ValueError):
    """An order does not satisfy the market's rules.

    ``field`` names the offending input (``price``, ``quantity``, ``notional`` or ``symbol``) and
    ``reason`` is a sentence for humans; ``problems`` lists every problem found, not only the first.
    """

    def __init__(self, field: str, reason: str, *, problems: tuple[OrderProblem, ...] = ()) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.problems = problems


@dataclass(frozen=True)
class OrderProblem:
    """One reason an order would be rejected by the exchange.

    ``code`` is stable and machine-readable (``symbol_not_trading``, ``not_positive``,
    ``price_not_multiple``, ``qty_not_multiple``, ``below_min_price``, ``above_max_price``,
    ``below_min_qty``, ``above_max_qty``, ``below_min_notional``, ``above_max_notional``).
    """

    field: str
    code: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


@dataclass(frozen=True, kw_only=True)
class MarketRules:
    """The trading rules of one spot market, all amounts as Decimal.

    ``max_qty``, ``max_notional``, ``min_price`` and ``max_price`` are ``None`` when the exchange
    does not limit them (Binance sends ``0`` for "no limit").
    """

    symbol: str
    exchange_symbol: str
    base: str
    quote: str
    tick_size: Decimal
    step_size: Decimal
    min_qty: Decimal
    min_notional: Decimal
    status: str = "TRADING"
    max_qty: Decimal | None = None
    max_notional: Decimal | None = None
    min_price: Decimal | None = None
    max_price: Decimal | None = None

    def __post_init__(self) -> None:
        # A zero or negative tick/step would make every rounding helper divide by zero; refuse early
        # with a message that names the market instead.
        if self.tick_size <= 0:
            raise MarketRulesError(f"{self.symbol}: tick size must be > 0, got {self.tick_size}")
        if self.step_size <= 0:
            raise MarketRulesError(f"{self.symbol}: step size must be > 0, got {self.step_size}")

    @property
    def is_trading(self) -> bool:
        """True when the exchange accepts new orders for this market."""
        return self.status == "TRADING"


_NON_ALNUM = re.compile(r"[^A-Z0-9]")
_DECIMAL_FIELDS = (
    "tick_size",
    "step_size",
    "min_qty",
    "max_qty",
    "min_notional",
    "max_notional",
    "min_price",
    "max_price",
)


def compact_symbol(raw: str) -> str:
    """``btc/usdt``, ``BTC-USDT``, ``BINANCE:BTCUSDT`` → ``BTCUSDT`` (for lookups only)."""
    text = raw.strip().upper()
    if ":" in text and "/" not in text:
        text = text.rsplit(":", 1)[-1]  # TradingView's EXCHANGE:TICKER
    return _NON_ALNUM.sub("", text)


# Quote assets told apart at the end of a ticker written without a separator (``BTCUSDT``), longest
# first where one ends another (FDUSD before USD).
KNOWN_QUOTES = ("USDT", "USDC", "FDUSD", "BUSD", "TUSD", "DAI", "BTC", "ETH", "BNB", "EUR", "USD", "TRY")


def unified_symbol(raw: str) -> str | None:
    """A symbol as traders type it → the unified ``BASE/QUOTE``, without market rules: ``BTCUSDT``,
    ``btcusdt``, ``BTC-USDT``, ``BINANCE:BTCUSDT``, ``BTCUSDT.P`` and ``BTC/USDT`` all give ``BTC/USDT``.
    None when base and quote cannot be told apart (no known quote at the end). The webhook uses this
    rule when it holds no market rules for the exchange (docs/webhook.md), the position filters always."""
    ticker = raw.split(":")[-1].strip().upper().removesuffix(".P")
    if "/" in ticker:
        return ticker
    compact = ticker.replace("-", "").replace("_", "")
    for quote in KNOWN_QUOTES:
        if compact.endswith(quote) and len(compact) > len(quote):
            return f"{compact[: -len(quote)]}/{quote}"
    return None


def market_rules_to_json(rules: MarketRules) -> str:
    """One market's rules as JSON text, amounts as strings (for Redis and the paper account document)."""
    data: dict[str, str | None] = {
        "symbol": rules.symbol,
        "exchange_symbol": rules.exchange_symbol,
        "base": rules.base,
        "quote": rules.quote,
        "status": rules.status,
    }
    for name in _DECIMAL_FIELDS:
        value = getattr(rules, name)
        data[name] = None if value is None else str(value)
    return json.dumps(data)


def market_rules_from_json(text: str) -> MarketRules:
    """The rules ``market_rules_to_json`` wrote."""
    data = json.loads(text)
    for name in _DECIMAL_FIELDS:
        if data.get(name) is not None:
            data[name] = to_decimal(data[name], field=name)
    return MarketRules(**data)


# --------------------------------------------------------------------------------------------------
# Conversion and formatting


def to_decimal(value: object, *, field: str = "value") -> Decimal:
    """Convert a JSON-ish number (int, float, numeric string or Decimal) to a finite Decimal.

    Floats go through ``str`` so that ``0.1`` means ``Decimal("0.1")``. Booleans, NaN, infinities,
    empty strings and strings such as ``"1_000"`` or ``"0x10"`` are rejected with ``ValueError``.
    """
    if isinstance(value, bool):
        # bool is an int subclass; ``True`` as a price is always a mistake.
        raise ValueError(f"{field}: expected a number, got a boolean")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        result = Decimal(str(value))
    elif isinstance(value, str):
        text = value.strip()
        if not _NUMERIC_STRING.match(text):
            raise ValueError(f"{field}: {value!r} is not a decimal number")
        result = Decimal(text)
    else:
        raise ValueError(f"{field}: expected a number, got {type(value).__name__}")
    if not result.is_finite():
        raise ValueError(f"{field}: {value!r} is not a finite number")
    return result


def _exponent(value: Decimal) -> int:
    """The exponent of a finite Decimal (``as_tuple`` types it loosely because of NaN/Infinity)."""
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)
    return exponent


def _clean(value: Decimal) -> Decimal:
    """Strip trailing zeros (``0.01000000`` → ``0.01``) without switching to exponent form."""
    normalized = value.normalize()
    if _exponent(normalized) > 0:
        # normalize() turns 10 into 1E+1; keep integers as integers.
        return normalized.quantize(Decimal(1))
    return normalized


def _decimal_places(value: Decimal) -> int:
    """Number of digits after the point once trailing zeros are gone (``0.0100`` → 2, ``10`` → 0)."""
    return max(0, -_exponent(value.normalize()))


def decimal_to_str(value: Decimal, tick: Decimal | None = None) -> str:
    """Format a Decimal as a plain string, never in exponent notation.

    Without ``tick`` trailing zeros are removed (``Decimal("0.00001234")`` → ``"0.00001234"``,
    ``Decimal("29900.00")`` → ``"29900"``), which is what ccxt's ``*_to_precision`` returns. With
    ``tick`` the string shows exactly the tick's decimals (tick ``0.01``: ``65000`` → ``"65000.00"``),
    padding with zeros but never dropping a significant digit of ``value``.
    """
    if not value.is_finite():
        raise ValueError(f"cannot format {value}")
    places = _decimal_places(value)
    if tick is not None:
        places = max(places, _decimal_places(tick))
    text = format(value, f".{places}f")
    if text.startswith("-") and Decimal(text) == 0:
        # Never show "-0" for a value that rounded to zero.
        text = text[1:]
    return text


# --------------------------------------------------------------------------------------------------
# Rounding


def _mode(mode: RoundingMode | str) -> RoundingMode:
    return mode if isinstance(mode, RoundingMode) else RoundingMode(mode)


def round_to_tick(value: Decimal, tick: Decimal, mode: RoundingMode | str) -> Decimal:
    """Round ``value`` to a multiple of ``tick`` (exactly, whatever the tick, e.g. ``0.005``).

    The result carries the tick's decimals (tick ``0.01`` → ``Decimal("65000.00")``).
    """
    power = _power_of_ten_tick(tick)
    if power is not None and value.is_finite():
        # A power-of-ten tick (0.01, 1): rounding to it is quantizing, which Decimal does directly.
        rounding = _ROUNDING_BY_MODE.get(mode) or _DECIMAL_ROUNDING[_mode(mode)]
        result = value.quantize(power, rounding=rounding, context=_EXACT_CONTEXT)
        # A negative value that rounds to zero is 0, not −0 (as the general branch's subtraction gives).
        return result.copy_abs() if result.is_zero() and not value.is_zero() else result
    if tick <= 0:
        raise ValueError(f"tick must be > 0, got {tick}")
    rounding = _mode(mode)
    with localcontext() as ctx:
        ctx.prec = _EXACT_PRECISION
        # Decimal's % keeps the dividend's sign, so ``value - remainder`` is the multiple toward zero.
        remainder = value % tick
        toward_zero = value - remainder
        if remainder == 0:
            result = value
        else:
            away = toward_zero + (tick if value > 0 else -tick)
            if rounding is RoundingMode.TRUNCATE:
                result = toward_zero
            elif rounding is RoundingMode.ROUND:
                result = away if abs(remainder) * 2 >= tick else toward_zero
            elif rounding is RoundingMode.ROUND_UP:
                result = away if value > 0 else toward_zero
            else:  # ROUND_DOWN: toward -infinity
                result = toward_zero if value > 0 else away
        return result.quantize(_tick_quantum(tick))


# RoundingMode as Decimal's rounding, for a power-of-ten tick (see `round_to_tick`'s general branch):
# ROUND is half away from zero, ROUND_UP toward +infinity, ROUND_DOWN toward −infinity.
_DECIMAL_ROUNDING = {
    RoundingMode.TRUNCATE: ROUND_DOWN,
    RoundingMode.ROUND: ROUND_HALF_UP,
    RoundingMode.ROUND_UP: ROUND_CEILING,
    RoundingMode.ROUND_DOWN: ROUND_FLOOR,
}
_EXACT_CONTEXT = Context(prec=_EXACT_PRECISION)
# The same found by a member or its string value alike (a StrEnum member hashes as its value).
_ROUNDING_BY_MODE: dict[str, str] = {str(mode): rounding for mode, rounding in _DECIMAL_ROUNDING.items()}


@functools.lru_cache(maxsize=1024)
def _power_of_ten_tick(tick: Decimal) -> Decimal | None:
    """`tick`'s quantum when `tick` is a positive power of ten (0.01, 1), else None (memoized per tick)."""
    if not tick.is_finite() or tick <= 0:
        return None
    quantum = _tick_quantum(tick)
    return quantum if quantum == tick else None


@functools.lru_cache(maxsize=1024)
def _tick_quantum(tick: Decimal) -> Decimal:
    """The quantum a multiple of `tick` is written with: the tick's own decimals (1 for a whole tick)."""
    return Decimal(1).scaleb(min(0, _exponent(tick.normalize())))


def truncate_to_tick(value: Decimal, tick: Decimal) -> Decimal:
    """Cut ``value`` down (toward zero) to a multiple of ``tick``."""
    return round_to_tick(value, tick, RoundingMode.TRUNCATE)


def round_to_decimals(value: Decimal, places: int, mode: RoundingMode | str) -> Decimal:
    """Round ``value`` to ``places`` decimal places; negative ``places`` round to tens, hundreds..."""
    with localcontext() as ctx:
        ctx.prec = _EXACT_PRECISION
        result = value.quantize(Decimal(1).scaleb(-places), rounding=_DECIMAL_ROUNDING[_mode(mode)])
        if places < 0:
            # quantize(1E+2) gives 2.99E+4; bring it back to a plain integer.
            result = result.quantize(Decimal(1))
        return result


def round_to_significant(value: Decimal, digits: int, mode: RoundingMode | str) -> Decimal:
    """Round ``value`` to ``digits`` significant digits (``722.2``, 1 digit, round-up → ``800``)."""
    if digits < 1:
        raise ValueError(f"significant digits must be >= 1, got {digits}")
    if value == 0:
        return Decimal(0)
    places = digits - value.adjusted() - 1
    return round_to_decimals(value, places, mode)


def apply_precision(
    value: Decimal,
    precision: Decimal | int,
    *,
    counting: CountingMode | str,
    mode: RoundingMode | str,
) -> Decimal:
    """Round ``value`` under a ccxt-style ``precision`` whose meaning is given by ``counting``."""
    counting_mode = counting if isinstance(counting, CountingMode) else CountingMode(counting)
    if counting_mode is CountingMode.TICK_SIZE:
        return round_to_tick(value, Decimal(precision), mode)
    places = int(precision)
    if places != precision:
        raise ValueError(f"{counting_mode} precision must be an integer, got {precision}")
    if counting_mode is CountingMode.DECIMAL_PLACES:
        return round_to_decimals(value, places, mode)
    return round_to_significant(value, places, mode)


def amount_to_contract_precision(
    amount: Decimal,
    precision: Decimal | int,
    *,
    counting: CountingMode | str,
    contract_size: Decimal,
) -> Decimal:
    """Truncate a base amount so that it is a whole number of ``precision``-rounded contracts.

    For derivatives quoted in contracts: the amount is converted to contracts, truncated with the
    market's amount precision, and converted back.
    """
    if contract_size <= 0:
        raise ValueError(f"contract size must be > 0, got {contract_size}")
    with localcontext() as ctx:
        ctx.prec = _EXACT_PRECISION
        contracts = apply_precision(amount / contract_size, precision, counting=counting, mode=RoundingMode.TRUNCATE)
        return contracts * contract_size


def round_price_down(price: Decimal, rules: MarketRules) -> Decimal:
    """Round a price down to the market's tick size."""
    return round_to_tick(price, rules.tick_size, RoundingMode.ROUND_DOWN)


def round_qty_down(qty: Decimal, rules: MarketRules) -> Decimal:
    """Round a quantity down to the market's step size."""
    return round_to_tick(qty, rules.step_size, RoundingMode.ROUND_DOWN)


def amount_to_precision(amount: Decimal, rules: MarketRules) -> str:
    """What ccxt's ``amount_to_precision`` returns: the amount truncated to the step, as a string.

    Like ccxt, an amount that truncates to zero raises (``PrecisionError`` on ``quantity``).
    """
    result = truncate_to_tick(amount, rules.step_size)
    if result == 0:
        raise PrecisionError(
            "quantity",
            f"{decimal_to_str(amount)} is below the step size {decimal_to_str(rules.step_size)} of {rules.symbol}",
        )
    return decimal_to_str(result)


def price_to_precision(price: Decimal, rules: MarketRules) -> str:
    """What ccxt's ``price_to_precision`` returns: the price rounded (half up) to the tick.

    This rounds to the *nearest* tick, as ccxt does; orders use ``round_price_down`` instead.
    """
    result = round_to_tick(price, rules.tick_size, RoundingMode.ROUND)
    if result == 0:
        raise PrecisionError(
            "price",
            f"{decimal_to_str(price)} is below the tick size {decimal_to_str(rules.tick_size)} of {rules.symbol}",
        )
    return decimal_to_str(result)


# --------------------------------------------------------------------------------------------------
# Order checks


def validate_order(price: Decimal, qty: Decimal, rules: MarketRules) -> list[OrderProblem]:
    """List every reason the exchange would refuse a limit order at ``price`` for ``qty``.

    An empty list means the order is acceptable as is. Nothing is rounded here: a price or quantity
    off the tick / step grid is itself a problem (use ``normalize_order`` to round first).
    """
    problems: list[OrderProblem] = []
    if not rules.is_trading:
        problems.append(
            OrderProblem(
                "symbol",
                "symbol_not_trading",
                f"{rules.symbol} is not trading (status {rules.status})",
            )
        )
    if price <= 0:
        problems.append(OrderProblem("price", "not_positive", f"price {price} must be > 0"))
    if qty <= 0:
        problems.append(OrderProblem("quantity", "not_positive", f"quantity {qty} must be > 0"))
    if problems and any(problem.code == "not_positive" for problem in problems):
        # Multiples and minimums are meaningless for a zero or negative number.
        return problems

    # At the exact precision, through the context's own methods (no context switch: called per order).
    exact = _EXACT_CONTEXT
    if exact.remainder(price, rules.tick_size) != 0:
        problems.append(
            OrderProblem(
                "price",
                "price_not_multiple",
                f"price {decimal_to_str(price)} is not a multiple of the tick size {decimal_to_str(rules.tick_size)}",
            )
        )
    if exact.remainder(qty, rules.step_size) != 0:
        problems.append(
            OrderProblem(
                "quantity",
                "qty_not_multiple",
                f"quantity {decimal_to_str(qty)} is not a multiple of the step size {decimal_to_str(rules.step_size)}",
            )
        )
    notional = exact.multiply(price, qty)

    if rules.min_price is not None and price < rules.min_price:
        problems.append(
            OrderProblem(
                "price",
                "below_min_price",
                f"price {decimal_to_str(price)} is below the minimum price {decimal_to_str(rules.min_price)}",
            )
        )
    if rules.max_price is not None and price > rules.max_price:
        problems.append(
            OrderProblem(
                "price",
                "above_max_price",
                f"price {decimal_to_str(price)} is above the maximum price {decimal_to_str(rules.max_price)}",
            )
        )
    if qty < rules.min_qty:
        problems.append(
            OrderProblem(
                "quantity",
                "below_min_qty",
                f"quantity {decimal_to_str(qty)} is below the minimum quantity {decimal_to_str(rules.min_qty)}",
            )
        )
    if rules.max_qty is not None and qty > rules.max_qty:
        problems.append(
            OrderProblem(
                "quantity",
                "above_max_qty",
                f"quantity {decimal_to_str(qty)} is above the maximum quantity {decimal_to_str(rules.max_qty)}",
            )
        )
    if notional < rules.min_notional:
        problems.append(
            OrderProblem(
                "notional",
                "below_min_notional",
                f"notional {decimal_to_str(notional)} {rules.quote} is below the minimum notional "
                f"{decimal_to_str(rules.min_notional)} {rules.quote}",
            )
        )
    if rules.max_notional is not None and notional > rules.max_notional:
        problems.append(
            OrderProblem(
                "notional",
                "above_max_notional",
                f"notional {decimal_to_str(notional)} {rules.quote} is above the maximum notional "
                f"{decimal_to_str(rules.max_notional)} {rules.quote}",
            )
        )
    return problems


def check_order(price: Decimal, qty: Decimal, rules: MarketRules) -> None:
    """Raise ``PrecisionError`` (first problem's field and reason, all problems attached) if invalid."""
    problems = validate_order(price, qty, rules)
    if problems:
        first = problems[0]
        reason = "; ".join(problem.reason for problem in problems)
        raise PrecisionError(first.field, reason, problems=tuple(problems))


def normalize_order(price: Decimal, qty: Decimal, rules: MarketRules) -> tuple[Decimal, Decimal]:
    """Round price and quantity down to tick and step, then check them; raise ``PrecisionError``.

    Returns the rounded ``(price, qty)`` that can be sent to the exchange as is.
    """
    rounded_price = round_price_down(price, rules)
    rounded_qty = round_qty_down(qty, rules)
    check_order(rounded_price, rounded_qty, rules)
    return rounded_price, rounded_qty


# --------------------------------------------------------------------------------------------------
# Parsing exchange market descriptions


def _optional_limit(value: object, *, field: str) -> Decimal | None:
    """A limit where missing, null or zero means "no limit" (Binance and ccxt conventions)."""
    if value is None:
        return None
    result = to_decimal(value, field=field)
    return None if result == 0 else _clean(result)


def _required(value: object, *, symbol: str, field: str) -> Decimal:
    if value is None:
        raise MarketRulesError(f"{symbol}: {field} is missing")
    try:
        return _clean(to_decimal(value, field=field))
    except ValueError as exc:
        raise MarketRulesError(f"{symbol}: {exc}") from exc


def market_rules_from_binance_symbol(symbol_dict: Mapping[str, Any]) -> MarketRules:
    """Build ``MarketRules`` from one entry of Binance's ``GET /api/v3/exchangeInfo`` ``symbols``.

    Reads PRICE_FILTER (tick, min/max price), LOT_SIZE (step, min/max quantity) and MIN_NOTIONAL or
    NOTIONAL (min/max notional); other filters such as MAX_POSITION are ignored.
    """
    exchange_symbol = str(symbol_dict.get("symbol", "?"))
    filters = {f.get("filterType"): f for f in symbol_dict.get("filters", [])}
    price_filter = filters.get("PRICE_FILTER")
    lot_size = filters.get("LOT_SIZE")
    if price_filter is None or lot_size is None:
        raise MarketRulesError(f"{exchange_symbol}: PRICE_FILTER and LOT_SIZE filters are required")
    # Binance replaced MIN_NOTIONAL by NOTIONAL in 2023; either may be present.
    notional_filter = filters.get("NOTIONAL") or filters.get("MIN_NOTIONAL") or {}
    base = str(symbol_dict.get("baseAsset", ""))
    quote = str(symbol_dict.get("quoteAsset", ""))
    if not base or not quote:
        raise MarketRulesError(f"{exchange_symbol}: baseAsset and quoteAsset are required")
    try:
        return MarketRules(
            symbol=f"{base}/{quote}",
            exchange_symbol=exchange_symbol,
            base=base,
            quote=quote,
            tick_size=_required(price_filter.get("tickSize"), symbol=exchange_symbol, field="tickSize"),
            step_size=_required(lot_size.get("stepSize"), symbol=exchange_symbol, field="stepSize"),
            min_qty=_required(lot_size.get("minQty", "0"), symbol=exchange_symbol, field="minQty"),
            max_qty=_optional_limit(lot_size.get("maxQty"), field="maxQty"),
            min_notional=_required(
                notional_filter.get("minNotional", "0"), symbol=exchange_symbol, field="minNotional"
            ),
            max_notional=_optional_limit(notional_filter.get("maxNotional"), field="maxNotional"),
            min_price=_optional_limit(price_filter.get("minPrice"), field="minPrice"),
            max_price=_optional_limit(price_filter.get("maxPrice"), field="maxPrice"),
            status=str(symbol_dict.get("status", "TRADING")),
        )
    except ValueError as exc:
        if isinstance(exc, MarketRulesError):
            raise
        raise MarketRulesError(f"{exchange_symbol}: {exc}") from exc


def market_rules_from_exchange_info(exchange_info: Mapping[str, Any], symbol: str) -> MarketRules | None:
    """The rules of `symbol` ("BTC/USDT", "BTCUSDT" or "BTC-USDT") in a Binance ``exchangeInfo`` response,
    or None when it lists no such symbol."""
    wanted = compact_symbol(symbol)
    for item in exchange_info.get("symbols", []):
        if isinstance(item, Mapping) and item.get("symbol") == wanted:
            return market_rules_from_binance_symbol(item)
    return None


def _path(mapping: Mapping[str, Any], *keys: str) -> object:
    current: object = mapping
    for key in keys:
        if not isinstance(current, Mapping):
            return None
        current = current.get(key)
    return current


def market_rules_from_ccxt_market(
    market: Mapping[str, Any],
    *,
    precision_mode: CountingMode = CountingMode.TICK_SIZE,
) -> MarketRules:
    """Build ``MarketRules`` from a ccxt unified market (``exchange.markets[symbol]``).

    ccxt's binance uses tick-size precision mode: ``precision.price`` and ``precision.amount`` are the
    tick and step themselves. For exchanges in decimal-places mode pass ``precision_mode`` and the
    number of places is turned into a tick (2 → 0.01). Significant-digit markets cannot be described
    by a fixed tick and are refused. Status comes from ``info.status`` when the exchange sends one,
    otherwise from ``active``.
    """
    symbol = str(market.get("symbol", "?"))
    if precision_mode is CountingMode.SIGNIFICANT_DIGITS:
        raise MarketRulesError(f"{symbol}: significant-digit precision has no fixed tick size")

    def precision_step(key: str) -> Decimal:
        raw = _required(_path(market, "precision", key), symbol=symbol, field=f"precision.{key}")
        if precision_mode is CountingMode.DECIMAL_PLACES:
            return Decimal(1).scaleb(-int(raw))
        return raw

    info_status = _path(market, "info", "status")
    if isinstance(info_status, str) and info_status:
        status = info_status
    else:
        status = "TRADING" if market.get("active", True) is not False else "INACTIVE"
    min_qty = _path(market, "limits", "amount", "min")
    min_cost = _path(market, "limits", "cost", "min")
    try:
        return MarketRules(
            symbol=symbol,
            exchange_symbol=str(market.get("id", "")),
            base=str(market.get("base", "")),
            quote=str(market.get("quote", "")),
            tick_size=precision_step("price"),
            step_size=precision_step("amount"),
            min_qty=_clean(to_decimal(min_qty, field="limits.amount.min")) if min_qty is not None else Decimal(0),
            max_qty=_optional_limit(_path(market, "limits", "amount", "max"), field="limits.amount.max"),
            min_notional=_clean(to_decimal(min_cost, field="limits.cost.min")) if min_cost is not None else Decimal(0),
            max_notional=_optional_limit(_path(market, "limits", "cost", "max"), field="limits.cost.max"),
            min_price=_optional_limit(_path(market, "limits", "price", "min"), field="limits.price.min"),
            max_price=_optional_limit(_path(market, "limits", "price", "max"), field="limits.price.max"),
            status=status,
        )
    except ValueError as exc:
        if isinstance(exc, MarketRulesError):
            raise
        raise MarketRulesError(f"{symbol}: {exc}") from exc
