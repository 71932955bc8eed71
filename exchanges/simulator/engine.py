"""Pure matching engine of the Binance-spot-compatible exchange simulator.

Nothing here knows about HTTP or Django: ``server.py`` translates requests into calls on
:class:`Engine` and :class:`SimulatorError` into Binance error bodies.

Model
-----
* Markets come from a Binance ``GET /api/v3/exchangeInfo`` response (``PRICE_FILTER``,
  ``LOT_SIZE``, ``MARKET_LOT_SIZE``, ``MIN_NOTIONAL``/``NOTIONAL``, ``MAX_NUM_ORDERS``, ``status``).
  Other filters (``PERCENT_PRICE_BY_SIDE``, ``MAX_POSITION``, ...) are served but not enforced.
* Each symbol has one last price. There is no order book: a price move fills every resting limit
  order the move crosses (buy limits when ``price <= limit``, sell limits when ``price >= limit``)
  at the order's limit price. With a ``partial_fill_ratio`` (e.g. ``0.5``) each crossing move fills
  that share of the remaining quantity (rounded down to the step size; a remainder smaller than one
  step fills completely, so orders always finish).
* Order types: ``LIMIT`` (``GTC``; ``IOC``/``FOK`` expire what cannot fill at once), ``LIMIT_MAKER``
  (rejected with -2010 when it would take) and ``MARKET``.
* A limit order that is marketable when placed fills at once, completely, at the last price (it is
  the taker and gets the better price, as on Binance). Market orders fill completely at the last
  price moved against the taker by ``market_slippage_bps`` and rounded to the tick. ``quoteOrderQty``
  market orders buy (or sell) the quantity that the quote amount pays for, rounded down to the step.
* Commission is ``commission_rate`` (0.1 %) of what the account receives, charged in that asset:
  the base asset on buys, the quote asset on sells (Binance's behaviour without BNB discounts). It is
  rounded half-up to the symbol's ``baseCommissionPrecision``/``quoteCommissionPrecision`` (8).
* Limit buys lock ``price * quantity`` of the quote asset, limit sells lock the quantity of the base
  asset; fills and cancels release the lock. Market orders lock nothing, they need the free balance.
* ``newClientOrderId`` must be unique among the account's open orders on any symbol (Binance only
  checks per symbol; being stricter catches client id reuse on our side early).

Faults
------
:class:`FaultInjector` holds ordered :class:`FaultRule` objects; each request of the Binance API
consults the rules in order and the first one that *fires* applies to it. A rule fires:

* by count (the default): on each of the next ``count`` matching requests (``count`` defaults to 1),
  then it is removed;
* by rate, with ``"probability": p`` (``0 < p <= 1``): on each matching request with probability
  ``p``, drawn from the rule's own RNG (``"seed"`` makes the sequence repeatable);
* by rate, with ``"every": n``: on the n-th, 2n-th, ... matching request.

A rate rule that does not fire lets the request go on to the next rule, so rates of later rules
apply to what earlier rules let through. Rate rules stay until cleared unless they also have a
``count``, which then caps how often they fire. ``fired`` counts the uses of every rule and
:meth:`FaultInjector.injected` the uses per action since the last clear.

Everything is :class:`~decimal.Decimal`, built from strings, and one re-entrant lock guards all
state, so the engine may be driven from several threads (HTTP loop, candle replay, tests).
"""

from __future__ import annotations

import collections
import dataclasses
import fnmatch
import gzip
import itertools
import random
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from exchanges import fillmodel

ZERO = Decimal("0")
DEFAULT_COMMISSION_RATE = Decimal("0.001")
DEFAULT_WEIGHT_LIMIT = 6000
PRICE_HISTORY_LIMIT = 200_000

BUY = "BUY"
SELL = "SELL"
LIMIT = "LIMIT"
LIMIT_MAKER = "LIMIT_MAKER"
MARKET = "MARKET"
RESTING_TYPES = frozenset({LIMIT, LIMIT_MAKER})

STATUS_NEW = "NEW"
STATUS_PARTIALLY_FILLED = "PARTIALLY_FILLED"
STATUS_FILLED = "FILLED"
STATUS_CANCELED = "CANCELED"
STATUS_REJECTED = "REJECTED"
STATUS_EXPIRED = "EXPIRED"
OPEN_STATUSES = frozenset({STATUS_NEW, STATUS_PARTIALLY_FILLED})

FAULT_ACTIONS = frozenset({"timeout_after_accept", "error_500", "error_429", "delay_ms"})


class SimulatorError(Exception):
    """A Binance-style rejection: ``{"code": code, "msg": msg}`` sent with ``http_status``."""

    def __init__(self, code: int, msg: str, http_status: int = 400) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.http_status = http_status


def mandatory_parameter_error(name: str) -> SimulatorError:
    """Binance's -1102 for a missing or empty parameter."""
    return SimulatorError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def to_decimal(value: Any, name: str) -> Decimal:
    """Parse a request value into a finite Decimal, or raise Binance's -1100."""
    try:
        result = Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise SimulatorError(-1100, f"Illegal characters found in parameter '{name}'.") from None
    if not result.is_finite():
        raise SimulatorError(-1100, f"Illegal characters found in parameter '{name}'.")
    return result


def format_decimal(value: Decimal, places: int = 8) -> str:
    """Binance style: fixed ``places`` decimals, more only when the value needs them."""
    quantum = Decimal(1).scaleb(-places)
    quantized = value.quantize(quantum)
    if quantized == value:
        return f"{quantized:f}"
    return f"{value.normalize():f}"


def now_ms() -> int:
    """Wall-clock time in epoch milliseconds (UTC by definition)."""
    return int(time.time() * 1000)


def _floor_to_step(value: Decimal, step: Decimal) -> Decimal:
    if step <= ZERO:
        return value
    return (value // step) * step


def _is_multiple(value: Decimal, base: Decimal, step: Decimal) -> bool:
    return step <= ZERO or (value - base) % step == ZERO


@dataclass(frozen=True)
class MarketRules:
    """The trading rules of one symbol, parsed from its exchangeInfo entry."""

    symbol: str
    base_asset: str
    quote_asset: str
    status: str
    order_types: frozenset[str]
    tick_size: Decimal
    min_price: Decimal
    max_price: Decimal
    step_size: Decimal
    min_qty: Decimal
    max_qty: Decimal
    market_step_size: Decimal
    market_min_qty: Decimal
    market_max_qty: Decimal
    notional_filter: str | None
    min_notional: Decimal
    min_notional_applies_to_market: bool
    max_notional: Decimal
    max_notional_applies_to_market: bool
    max_num_orders: int | None
    quote_order_qty_market_allowed: bool
    base_commission_precision: int
    quote_commission_precision: int

    @classmethod
    def from_binance(cls, raw: dict[str, Any]) -> MarketRules:
        """Build the rules from one ``symbols[]`` entry of an exchangeInfo response."""
        filters = {f["filterType"]: f for f in raw.get("filters", [])}

        def dec(filter_type: str, key: str, default: str = "0") -> Decimal:
            return Decimal(str(filters.get(filter_type, {}).get(key, default)))

        notional_filter = "NOTIONAL" if "NOTIONAL" in filters else None
        if notional_filter is None and "MIN_NOTIONAL" in filters:
            notional_filter = "MIN_NOTIONAL"
        notional = filters.get(notional_filter or "", {})
        applies_min = notional.get("applyMinToMarket", notional.get("applyToMarket", True))
        max_num_orders = filters.get("MAX_NUM_ORDERS", {}).get("maxNumOrders")
        return cls(
            symbol=raw["symbol"],
            base_asset=raw["baseAsset"],
            quote_asset=raw["quoteAsset"],
            status=raw.get("status", "TRADING"),
            order_types=frozenset(raw.get("orderTypes", [LIMIT, MARKET])),
            tick_size=dec("PRICE_FILTER", "tickSize"),
            min_price=dec("PRICE_FILTER", "minPrice"),
            max_price=dec("PRICE_FILTER", "maxPrice"),
            step_size=dec("LOT_SIZE", "stepSize"),
            min_qty=dec("LOT_SIZE", "minQty"),
            max_qty=dec("LOT_SIZE", "maxQty"),
            market_step_size=dec("MARKET_LOT_SIZE", "stepSize"),
            market_min_qty=dec("MARKET_LOT_SIZE", "minQty"),
            market_max_qty=dec("MARKET_LOT_SIZE", "maxQty"),
            notional_filter=notional_filter,
            min_notional=Decimal(str(notional.get("minNotional", "0"))),
            min_notional_applies_to_market=bool(applies_min),
            max_notional=Decimal(str(notional.get("maxNotional", "0"))),
            max_notional_applies_to_market=bool(notional.get("applyMaxToMarket", False)),
            max_num_orders=int(max_num_orders) if max_num_orders is not None else None,
            quote_order_qty_market_allowed=bool(raw.get("quoteOrderQtyMarketAllowed", True)),
            base_commission_precision=int(raw.get("baseCommissionPrecision", 8)),
            quote_commission_precision=int(raw.get("quoteCommissionPrecision", 8)),
        )

    def round_price(self, price: Decimal, rounding: str) -> Decimal:
        """Round a price onto the tick grid (used for slipped market fill prices)."""
        if self.tick_size <= ZERO:
            return price
        ticks = (price / self.tick_size).quantize(Decimal(1), rounding=rounding)
        return ticks * self.tick_size


@dataclass
class Balance:
    """Free and locked amount of one asset."""

    free: Decimal = ZERO
    locked: Decimal = ZERO


@dataclass
class Fill:
    """One execution of an order (Binance calls the account-side record a trade)."""

    trade_id: int
    price: Decimal
    qty: Decimal
    quote_qty: Decimal
    commission: Decimal
    commission_asset: str
    time: int
    is_maker: bool


@dataclass
class Order:
    """An order as the simulator stores it; ``server.py`` renders it in Binance's shapes."""

    api_key: str
    symbol: str
    order_id: int
    client_order_id: str
    side: str
    type: str
    time_in_force: str | None
    price: Decimal
    orig_qty: Decimal
    time: int
    orig_quote_order_qty: Decimal = ZERO
    executed_qty: Decimal = ZERO
    cummulative_quote_qty: Decimal = ZERO
    status: str = STATUS_NEW
    update_time: int = 0
    fills: list[Fill] = field(default_factory=list)

    @property
    def remaining(self) -> Decimal:
        """Quantity still to fill."""
        return self.orig_qty - self.executed_qty

    @property
    def is_open(self) -> bool:
        """Whether the order is still working on the book."""
        return self.status in OPEN_STATUSES


@dataclass(frozen=True)
class Trade:
    """An account's view of one fill, as ``GET /api/v3/myTrades`` lists it."""

    order: Order
    fill: Fill

    @property
    def is_buyer(self) -> bool:
        """Whether the account bought in this trade."""
        return self.order.side == BUY


@dataclass
class Account:
    """API credentials, balances and trade history of one simulated user."""

    api_key: str
    api_secret: str
    balances: dict[str, Balance] = field(default_factory=dict)
    trades: list[Trade] = field(default_factory=list)
    update_time: int = 0

    def balance(self, asset: str) -> Balance:
        """The asset's balance, created empty on first use."""
        if asset not in self.balances:
            self.balances[asset] = Balance()
        return self.balances[asset]


@dataclass(frozen=True)
class Candle:
    """One OHLCV candle; ``open_time`` in epoch milliseconds."""

    open_time: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal


@dataclass(frozen=True)
class Kline:
    """A candle served by ``/api/v3/klines`` (interval known, so close time is too)."""

    open_time: int
    close_time: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal
    trades: int


@dataclass
class FaultRule:
    """One injected fault: what it matches, what it does, and when it fires (see the module docstring).

    ``count`` is how many more times it may fire (``None``: no limit, rate rules only);
    ``probability`` / ``every`` make it fire on a share of the matching requests instead of each one.
    """

    match: str
    action: str
    count: int | None = 1
    delay_ms: int | None = None
    probability: float | None = None
    every: int | None = None
    seed: int | None = None
    fired: int = 0
    seen: int = 0
    _rng: random.Random | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.probability is not None and self._rng is None:
            self._rng = random.Random(self.seed)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> FaultRule:
        """Validate a rule posted to ``/_sim/faults``."""
        action = raw.get("action")
        if action not in FAULT_ACTIONS:
            raise ValueError(f"action must be one of {sorted(FAULT_ACTIONS)}")
        match = str(raw.get("match", "*")).strip()
        if " " not in match:
            match = f"* {match}"  # a bare path matches every method
        probability = raw.get("probability")
        every = raw.get("every")
        if probability is not None and every is not None:
            raise ValueError("give probability or every, not both")
        if probability is not None:
            if isinstance(probability, bool):
                raise ValueError("probability must be a number in (0, 1]")
            probability = float(probability)
            if not 0 < probability <= 1:
                raise ValueError("probability must be a number in (0, 1]")
        if every is not None:
            if isinstance(every, bool) or int(every) != every or int(every) < 1:
                raise ValueError("every must be a whole number of at least 1")
            every = int(every)
        rate_based = probability is not None or every is not None
        raw_count = raw.get("count")
        if raw_count is None:
            count = None if rate_based else 1
        else:
            count = int(raw_count)
            if count < 1:
                raise ValueError("count must be at least 1")
        delay = raw.get("delay_ms")
        if action == "delay_ms" and delay is None:
            raise ValueError("delay_ms action needs a delay_ms value")
        seed = raw.get("seed")
        return cls(
            match=match,
            action=str(action),
            count=count,
            delay_ms=int(delay) if delay is not None else None,
            probability=probability,
            every=every,
            seed=int(seed) if seed is not None else None,
        )

    def matches(self, method: str, path: str) -> bool:
        """Glob match on ``"METHOD /path"``; ``*`` works for both parts."""
        return fnmatch.fnmatchcase(f"{method.upper()} {path}", self.match)

    def fires(self) -> bool:
        """Whether this matching request gets the fault (advances the rule's rate state)."""
        self.seen += 1
        if self.every is not None:
            return self.seen % self.every == 0
        if self.probability is not None:
            assert self._rng is not None
            return self._rng.random() < self.probability
        return True

    def use(self) -> FaultRule:
        """A one-shot copy of this rule for the request that it fired on."""
        return FaultRule(self.match, self.action, 1, self.delay_ms)

    def to_json(self) -> dict[str, Any]:
        """The rule as ``GET /_sim/faults`` shows it."""
        return {
            "match": self.match,
            "action": self.action,
            "count": self.count,
            "delay_ms": self.delay_ms,
            "probability": self.probability,
            "every": self.every,
            "seed": self.seed,
            "fired": self.fired,
        }


class FaultInjector:
    """Ordered fault rules; each request gets the first rule that fires for it (module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        self._injected: collections.Counter[str] = collections.Counter()

    def add(self, rules: Iterable[FaultRule]) -> None:
        """Append rules after the existing ones."""
        with self._lock:
            self._rules.extend(rules)

    def clear(self) -> None:
        """Drop every rule and the per-action counts."""
        with self._lock:
            self._rules.clear()
            self._injected.clear()

    def rules(self) -> list[FaultRule]:
        """A snapshot of the pending rules."""
        with self._lock:
            return [dataclasses.replace(rule, _rng=None) for rule in self._rules]

    def injected(self) -> dict[str, int]:
        """How many faults of each action were injected since the last clear."""
        with self._lock:
            return dict(self._injected)

    def take(self, method: str, path: str) -> FaultRule | None:
        """The fault for this request, if a rule fires; uses one of that rule's count."""
        with self._lock:
            for index, rule in enumerate(self._rules):
                if not rule.matches(method, path) or not rule.fires():
                    continue
                rule.fired += 1
                self._injected[rule.action] += 1
                if rule.count is not None:
                    rule.count -= 1
                    if rule.count <= 0:
                        del self._rules[index]
                return rule.use()
        return None


class WeightTracker:
    """Request weight per client over a rolling minute, like Binance's REQUEST_WEIGHT limit."""

    WINDOW_S = 60.0

    def __init__(self, limit: int = DEFAULT_WEIGHT_LIMIT) -> None:
        self._lock = threading.Lock()
        self.limit = limit
        self._entries: dict[str, deque[tuple[float, int]]] = {}
        self._used: dict[str, int] = {}
        self.total_weight = 0

    def _expire(self, key: str, now: float) -> None:
        entries = self._entries.get(key)
        if not entries:
            return
        while entries and entries[0][0] <= now - self.WINDOW_S:
            _, weight = entries.popleft()
            self._used[key] -= weight

    def add(self, key: str, weight: int, now: float | None = None) -> int:
        """Count a request's weight and return the weight used in the last minute."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._expire(key, now)
            self._entries.setdefault(key, deque()).append((now, weight))
            self._used[key] = self._used.get(key, 0) + weight
            self.total_weight += weight
            return self._used[key]

    def used(self, key: str, now: float | None = None) -> int:
        """Weight used by ``key`` in the last minute."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._expire(key, now)
            return self._used.get(key, 0)

    def retry_after_s(self, key: str, now: float | None = None) -> int:
        """Seconds until enough weight has left the window to be under the limit again."""
        now = time.monotonic() if now is None else now
        with self._lock:
            self._expire(key, now)
            used = self._used.get(key, 0)
            for stamp, weight in self._entries.get(key, ()):
                if used <= self.limit:
                    break
                used -= weight
                wait = stamp + self.WINDOW_S - now
                if used <= self.limit:
                    return max(1, int(wait) + 1)
            return 1

    def snapshot(self) -> dict[str, int]:
        """Current one-minute weight per client."""
        now = time.monotonic()
        with self._lock:
            for key in list(self._entries):
                self._expire(key, now)
            return {key: used for key, used in self._used.items() if used}

    def reset(self) -> None:
        """Forget every window and the running total."""
        with self._lock:
            self._entries.clear()
            self._used.clear()
            self.total_weight = 0


def load_candles(path: str | Path) -> list[Candle]:
    """Read ``timestamp_ms,open,high,low,close,volume`` rows (optionally gzip, header optional)."""
    path = Path(path)
    with path.open("rb") as probe:
        gzipped = probe.read(2) == b"\x1f\x8b"
    opener = gzip.open if gzipped else open
    candles: list[Candle] = []
    with opener(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            parts = [part.strip() for part in line.split(",")]
            if len(parts) < 6 or not parts[0] or not (parts[0][0].isdigit()):
                continue  # header or blank line
            candles.append(
                Candle(
                    open_time=int(Decimal(parts[0])),
                    open=Decimal(parts[1]),
                    high=Decimal(parts[2]),
                    low=Decimal(parts[3]),
                    close=Decimal(parts[4]),
                    volume=Decimal(parts[5]),
                )
            )
    candles.sort(key=lambda candle: candle.open_time)
    return candles


def candle_interval_ms(candles: list[Candle]) -> int:
    """The smallest gap between consecutive candles: their interval (gaps are larger)."""
    gaps = (b.open_time - a.open_time for a, b in itertools.pairwise(candles))
    return min((gap for gap in gaps if gap > 0), default=60_000)


class Engine:
    """The simulated exchange: markets, prices, accounts, orders and fills.

    Every public method takes the engine lock, so callers never see half-applied fills.
    """

    def __init__(
        self,
        exchange_info: dict[str, Any],
        *,
        commission_rate: Decimal = DEFAULT_COMMISSION_RATE,
        market_slippage_bps: Decimal = ZERO,
        partial_fill_ratio: Decimal | None = None,
        weight_limit: int = DEFAULT_WEIGHT_LIMIT,
    ) -> None:
        self._lock = threading.RLock()
        self.exchange_info = exchange_info
        self.markets: dict[str, MarketRules] = {
            raw["symbol"]: MarketRules.from_binance(raw) for raw in exchange_info.get("symbols", [])
        }
        self.commission_rate = commission_rate
        self._defaults = (market_slippage_bps, partial_fill_ratio, weight_limit)
        self.market_slippage_bps = market_slippage_bps
        self.partial_fill_ratio = partial_fill_ratio
        self.faults = FaultInjector()
        self.weights = WeightTracker(weight_limit)
        self._prices: dict[str, Decimal] = {}
        self._price_history: dict[str, deque[tuple[int, Decimal]]] = {}
        self._candles: dict[str, list[Candle]] = {}
        self._candle_interval_ms: dict[str, int] = {}
        self._order_ids = itertools.count(1)
        self._trade_ids = itertools.count(1)
        self._client_ids = itertools.count(1)
        self._accounts: dict[str, Account] = {}
        self._orders: list[Order] = []
        self._orders_by_id: dict[int, Order] = {}
        self._open_orders: dict[str, dict[int, Order]] = {}
        self._latest_by_client_id: dict[tuple[str, str, str], Order] = {}

    # ----------------------------------------------------------------- configuration

    def configure(
        self,
        *,
        market_slippage_bps: Decimal | None = None,
        partial_fill_ratio: Decimal | None = None,
        clear_partial_fill_ratio: bool = False,
        weight_limit: int | None = None,
    ) -> dict[str, Any]:
        """Change the knobs that ``/_sim/config`` exposes; returns the current values."""
        with self._lock:
            if market_slippage_bps is not None:
                if market_slippage_bps < ZERO:
                    raise ValueError("market_slippage_bps must not be negative")
                self.market_slippage_bps = market_slippage_bps
            if clear_partial_fill_ratio:
                self.partial_fill_ratio = None
            elif partial_fill_ratio is not None:
                self.partial_fill_ratio = _check_ratio(partial_fill_ratio)
            if weight_limit is not None:
                self.weights.limit = weight_limit
            return self.config()

    def config(self) -> dict[str, Any]:
        """Current knobs as JSON-ready values."""
        with self._lock:
            return {
                "market_slippage_bps": str(self.market_slippage_bps),
                "partial_fill_ratio": (str(self.partial_fill_ratio) if self.partial_fill_ratio is not None else None),
                "commission_rate": str(self.commission_rate),
                "weight_limit": self.weights.limit,
            }

    def reset(self) -> None:
        """Drop accounts, orders, faults, weights and knob changes; keep markets and prices."""
        with self._lock:
            self._accounts.clear()
            self._orders.clear()
            self._orders_by_id.clear()
            self._open_orders.clear()
            self._latest_by_client_id.clear()
            self.faults.clear()
            self.weights.reset()
            slippage, ratio, weight_limit = self._defaults
            self.market_slippage_bps = slippage
            self.partial_fill_ratio = ratio
            self.weights.limit = weight_limit

    # ----------------------------------------------------------------------- markets

    def list_market(self, raw: dict[str, Any]) -> MarketRules:
        """List a market now, or replace its rules: ``raw`` is one ``symbols[]`` entry of exchangeInfo.

        A client sees it in the next exchangeInfo it loads, as it would a new listing on Binance.
        """
        rules = MarketRules.from_binance(raw)
        with self._lock:
            others = [item for item in self.exchange_info.get("symbols", []) if item.get("symbol") != rules.symbol]
            self.exchange_info = {**self.exchange_info, "symbols": [*others, dict(raw)]}
            self.markets[rules.symbol] = rules
            return rules

    def delist_market(self, symbol: str) -> list[Order]:
        """Take a market off the exchange: its open orders are cancelled (their funds released) and its
        price forgotten, as Binance does on a delisting; returns the cancelled orders (-1121 when unknown)."""
        with self._lock:
            rules = self.market(symbol)
            cancelled = sorted(self._open_orders.pop(symbol, {}).values(), key=lambda order: order.order_id)
            for order in cancelled:
                account = self._accounts.get(order.api_key)
                if account is not None:
                    self._release_funds(account, rules, order)
                order.status = STATUS_CANCELED
                order.update_time = now_ms()
            del self.markets[symbol]
            symbols = [item for item in self.exchange_info.get("symbols", []) if item.get("symbol") != symbol]
            self.exchange_info = {**self.exchange_info, "symbols": symbols}
            self._prices.pop(symbol, None)
            self._price_history.pop(symbol, None)
            return cancelled

    def market(self, symbol: str) -> MarketRules:
        """The rules for ``symbol`` or Binance's -1121."""
        rules = self.markets.get(symbol)
        if rules is None:
            raise SimulatorError(-1121, "Invalid symbol.")
        return rules

    def price(self, symbol: str) -> Decimal | None:
        """Last price of ``symbol`` (None before the first price is set)."""
        with self._lock:
            self.market(symbol)
            return self._prices.get(symbol)

    def prices(self) -> dict[str, Decimal]:
        """Every symbol that has a price."""
        with self._lock:
            return dict(self._prices)

    def price_history(self, symbol: str, since_ms: int | None = None) -> list[tuple[int, Decimal]]:
        """The (time, price) points of ``symbol``, oldest first."""
        with self._lock:
            points = list(self._price_history.get(symbol, ()))
        if since_ms is not None:
            points = [point for point in points if point[0] >= since_ms]
        return points

    def set_price(
        self,
        symbol: str,
        price: Decimal,
        *,
        partial_fill_ratio: Decimal | None = None,
        at_ms: int | None = None,
    ) -> list[Order]:
        """Move the market and fill what the move crosses; returns the orders that traded.

        ``partial_fill_ratio`` applies to this move only; without it the configured ratio does.
        """
        if price <= ZERO:
            raise ValueError("price must be positive")
        stamp = now_ms() if at_ms is None else at_ms
        with self._lock:
            self.market(symbol)
            ratio = self.partial_fill_ratio if partial_fill_ratio is None else partial_fill_ratio
            if ratio is not None:
                ratio = _check_ratio(ratio)
            self._prices[symbol] = price
            history = self._price_history.setdefault(symbol, deque(maxlen=PRICE_HISTORY_LIMIT))
            history.append((stamp, price))
            traded: list[Order] = []
            for order in self._crossed_orders(symbol, price):
                quantity = order.remaining
                if ratio is not None:
                    step = self.markets[symbol].step_size
                    quantity = _floor_to_step(order.remaining * ratio, step)
                    if quantity <= ZERO or order.remaining - quantity < step:
                        quantity = order.remaining
                self._fill(order, quantity, order.price, is_maker=True, at_ms=stamp)
                traded.append(order)
            return traded

    def _crossed_orders(self, symbol: str, price: Decimal) -> list[Order]:
        book = self._open_orders.get(symbol, {})
        crossed = [o for o in book.values() if fillmodel.resting_fills(_fill_side(o.side), o.price, price)]
        buys = [o for o in crossed if o.side == BUY]
        sells = [o for o in crossed if o.side == SELL]
        # best price first, then time priority, like a real book would match them
        buys.sort(key=lambda o: (-o.price, o.order_id))
        sells.sort(key=lambda o: (o.price, o.order_id))
        return buys + sells

    def record_candle(self, symbol: str, candle: Candle, interval_ms: int) -> None:
        """Publish a closed candle of the replayed file to ``/api/v3/klines``."""
        with self._lock:
            self.market(symbol)
            self._candles.setdefault(symbol, []).append(candle)
            self._candle_interval_ms[symbol] = interval_ms

    def klines(
        self,
        symbol: str,
        interval_ms: int,
        *,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 500,
    ) -> list[Kline]:
        """Candles of ``interval_ms``: from the replayed file if there is one, else from prices."""
        with self._lock:
            self.market(symbol)
            base = list(self._candles.get(symbol, ()))
            base_interval = self._candle_interval_ms.get(symbol)
            history = list(self._price_history.get(symbol, ()))
        if base and base_interval:
            if interval_ms % base_interval:
                raise SimulatorError(-1120, "Invalid interval.")
            klines = _aggregate_candles(base, interval_ms)
        else:
            klines = _klines_from_prices(
                history, interval_ms, _kline_window(history, interval_ms, start_ms, end_ms, limit)
            )
        if start_ms is not None:
            klines = [k for k in klines if k.open_time >= start_ms]
        if end_ms is not None:
            klines = [k for k in klines if k.open_time <= end_ms]
        if start_ms is not None and end_ms is None:
            return klines[:limit]
        return klines[-limit:]

    # ---------------------------------------------------------------------- accounts

    def create_account(self, api_key: str, api_secret: str, balances: dict[str, Decimal]) -> Account:
        """Create or replace an account (its old orders stay in history but stop working)."""
        if not api_key or not api_secret:
            raise ValueError("api_key and api_secret are required")
        with self._lock:
            if api_key in self._accounts:
                for book in self._open_orders.values():
                    for order_id, order in list(book.items()):
                        if order.api_key == api_key:
                            order.status = STATUS_CANCELED
                            del book[order_id]
            account = Account(api_key=api_key, api_secret=api_secret, update_time=now_ms())
            for asset, amount in balances.items():
                if amount < ZERO:
                    raise ValueError(f"balance of {asset} must not be negative")
                account.balance(asset).free = amount
            self._accounts[api_key] = account
            return account

    def account(self, api_key: str) -> Account | None:
        """The account for ``api_key``, if any."""
        with self._lock:
            return self._accounts.get(api_key)

    def account_count(self) -> int:
        """How many accounts exist."""
        with self._lock:
            return len(self._accounts)

    def _require_account(self, api_key: str) -> Account:
        account = self._accounts.get(api_key)
        if account is None:
            raise SimulatorError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        return account

    def balances(self, api_key: str) -> dict[str, Balance]:
        """A copy of the account's balances."""
        with self._lock:
            account = self._require_account(api_key)
            return {asset: Balance(balance.free, balance.locked) for asset, balance in sorted(account.balances.items())}

    # ------------------------------------------------------------------------ orders

    def place_order(
        self,
        api_key: str,
        *,
        symbol: str,
        side: str,
        order_type: str,
        quantity: Decimal | None = None,
        price: Decimal | None = None,
        quote_order_qty: Decimal | None = None,
        time_in_force: str | None = None,
        client_order_id: str | None = None,
        at_ms: int | None = None,
    ) -> Order:
        """Validate like Binance, then accept, fill or reject the order."""
        stamp = now_ms() if at_ms is None else at_ms
        with self._lock:
            account = self._require_account(api_key)
            rules = self.market(symbol)
            side, order_type = side.upper(), order_type.upper()
            if side not in (BUY, SELL):
                raise SimulatorError(-1117, "Invalid side.")
            if order_type not in (LIMIT, LIMIT_MAKER, MARKET) or order_type not in rules.order_types:
                raise SimulatorError(-1116, "Invalid orderType.")
            if rules.status != "TRADING":
                raise SimulatorError(-1013, "Market is closed.")
            if client_order_id is not None and self._open_client_id_taken(api_key, client_order_id):
                raise SimulatorError(-2010, "Duplicate order sent.")

            last_price = self._prices.get(symbol)
            if order_type in RESTING_TYPES:
                time_in_force = (time_in_force or "").upper() or None
                if order_type == LIMIT_MAKER and time_in_force is not None:
                    raise SimulatorError(-1106, "Parameter 'timeInForce' sent when not required.")
                if order_type == LIMIT and time_in_force is None:
                    raise mandatory_parameter_error("timeInForce")
                if order_type == LIMIT and time_in_force not in ("GTC", "IOC", "FOK"):
                    raise SimulatorError(-1115, "Invalid timeInForce.")
                if price is None:
                    raise mandatory_parameter_error("price")
                if quantity is None:
                    raise mandatory_parameter_error("quantity")
                if quote_order_qty is not None:
                    raise SimulatorError(-1106, "Parameter 'quoteOrderQty' sent when not required.")
                self._check_price_filter(rules, price)
                self._check_lot_size(rules, quantity, market_order=False)
                self._check_notional(rules, price * quantity, market_order=False)
                fill_price = last_price
            else:
                if time_in_force:
                    raise SimulatorError(-1106, "Parameter 'timeInForce' sent when not required.")
                if price is not None:
                    raise SimulatorError(-1106, "Parameter 'price' sent when not required.")
                if quantity is None and quote_order_qty is None:
                    raise SimulatorError(
                        -1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!"
                    )
                if quantity is not None and quote_order_qty is not None:
                    raise SimulatorError(-1106, "Parameter 'quoteOrderQty' sent when not required.")
                if last_price is None:
                    # a real exchange always has a last price; here nobody has set one yet
                    raise SimulatorError(-1013, f"No price for {symbol} yet; set one via /_sim/price.")
                fill_price = self._slipped_price(rules, last_price, side)
                if quote_order_qty is not None:
                    if quote_order_qty <= ZERO:
                        raise mandatory_parameter_error("quoteOrderQty")
                    if not rules.quote_order_qty_market_allowed:
                        raise SimulatorError(-1013, "Quote order qty market orders are not support for this symbol.")
                    step = rules.market_step_size if rules.market_step_size > ZERO else rules.step_size
                    quantity = _floor_to_step(quote_order_qty / fill_price, step)
                    self._check_notional(rules, quote_order_qty, market_order=True)
                assert quantity is not None  # sent, or computed from quoteOrderQty just above
                self._check_lot_size(rules, quantity, market_order=True)
                if quote_order_qty is None:
                    self._check_notional(rules, quantity * last_price, market_order=True)
            assert quantity is not None  # both branches above guarantee it
            if rules.max_num_orders is not None and order_type in RESTING_TYPES:
                open_count = sum(1 for o in self._open_orders.get(symbol, {}).values() if o.api_key == api_key)
                if open_count >= rules.max_num_orders:
                    raise SimulatorError(-1013, "Filter failure: MAX_NUM_ORDERS")

            order = Order(
                api_key=api_key,
                symbol=symbol,
                order_id=next(self._order_ids),
                client_order_id=client_order_id or self._generate_client_order_id(),
                side=side,
                type=order_type,
                time_in_force=time_in_force if order_type == LIMIT else None,
                price=price if order_type in RESTING_TYPES and price is not None else ZERO,
                orig_qty=quantity,
                orig_quote_order_qty=quote_order_qty or ZERO,
                time=stamp,
                update_time=stamp,
            )
            if order_type in RESTING_TYPES:
                self._accept_limit(account, rules, order, last_price, stamp)
            else:
                assert fill_price is not None  # a market order is priced from the last price above
                self._execute_market(account, rules, order, fill_price, stamp)
            return order

    def _accept_limit(
        self, account: Account, rules: MarketRules, order: Order, last: Decimal | None, stamp: int
    ) -> None:
        marketable = fillmodel.marketable(_fill_side(order.side), order.price, last)
        if order.type == LIMIT_MAKER and marketable:
            raise SimulatorError(-2010, "Order would immediately match and take.")
        self._lock_funds(account, rules, order)
        self._store(order)
        if order.time_in_force in ("IOC", "FOK") and not marketable:
            # nothing to take now and these never rest: expire and give the funds back
            self._release_funds(account, rules, order)
            order.status = STATUS_EXPIRED
            return
        self._open_orders.setdefault(order.symbol, {})[order.order_id] = order
        if marketable:
            assert last is not None
            self._fill(order, order.remaining, last, is_maker=False, at_ms=stamp)

    def _execute_market(
        self, account: Account, rules: MarketRules, order: Order, fill_price: Decimal, stamp: int
    ) -> None:
        if order.side == BUY:
            needed, asset = order.orig_qty * fill_price, rules.quote_asset
        else:
            needed, asset = order.orig_qty, rules.base_asset
        if account.balance(asset).free < needed:
            raise SimulatorError(-2010, "Account has insufficient balance for requested action.")
        self._store(order)
        self._fill(order, order.orig_qty, fill_price, is_maker=False, at_ms=stamp)

    def _lock_funds(self, account: Account, rules: MarketRules, order: Order) -> None:
        if order.side == BUY:
            asset, amount = rules.quote_asset, order.price * order.orig_qty
        else:
            asset, amount = rules.base_asset, order.orig_qty
        balance = account.balance(asset)
        if balance.free < amount:
            raise SimulatorError(-2010, "Account has insufficient balance for requested action.")
        balance.free -= amount
        balance.locked += amount

    @staticmethod
    def _release_funds(account: Account, rules: MarketRules, order: Order) -> None:
        if order.side == BUY:
            balance, amount = account.balance(rules.quote_asset), order.price * order.remaining
        else:
            balance, amount = account.balance(rules.base_asset), order.remaining
        balance.locked -= amount
        balance.free += amount

    def _store(self, order: Order) -> None:
        self._orders.append(order)
        self._orders_by_id[order.order_id] = order
        self._latest_by_client_id[(order.api_key, order.symbol, order.client_order_id)] = order

    def _fill(self, order: Order, qty: Decimal, price: Decimal, *, is_maker: bool, at_ms: int) -> None:
        """Execute ``qty`` of ``order`` at ``price``: move balances, charge commission, record."""
        rules = self.markets[order.symbol]
        account = self._accounts.get(order.api_key)
        if account is None:  # the account was replaced; its orders no longer trade
            return
        quote_qty = price * qty
        base, quote = account.balance(rules.base_asset), account.balance(rules.quote_asset)
        resting = order.type in RESTING_TYPES
        if order.side == BUY:
            if resting:
                reserved = order.price * qty
                quote.locked -= reserved
                quote.free += reserved - quote_qty  # price improvement goes back to free
            else:
                quote.free -= quote_qty
            commission_asset = rules.base_asset
            commission = fillmodel.commission(qty * self.commission_rate, rules.base_commission_precision)
            base.free += qty - commission
        else:
            if resting:
                base.locked -= qty
            else:
                base.free -= qty
            commission_asset = rules.quote_asset
            commission = fillmodel.commission(quote_qty * self.commission_rate, rules.quote_commission_precision)
            quote.free += quote_qty - commission
        fill = Fill(
            trade_id=next(self._trade_ids),
            price=price,
            qty=qty,
            quote_qty=quote_qty,
            commission=commission,
            commission_asset=commission_asset,
            time=at_ms,
            is_maker=is_maker,
        )
        order.fills.append(fill)
        order.executed_qty += qty
        order.cummulative_quote_qty += quote_qty
        order.update_time = at_ms
        account.update_time = at_ms
        account.trades.append(Trade(order=order, fill=fill))
        if order.remaining <= ZERO:
            order.status = STATUS_FILLED
            self._open_orders.get(order.symbol, {}).pop(order.order_id, None)
        else:
            order.status = STATUS_PARTIALLY_FILLED

    def _slipped_price(self, rules: MarketRules, last: Decimal, side: str) -> Decimal:
        if self.market_slippage_bps <= ZERO:
            return last
        factor = self.market_slippage_bps / Decimal(10_000)
        if side == BUY:
            return rules.round_price(last * (1 + factor), ROUND_UP)
        return rules.round_price(last * (1 - factor), ROUND_DOWN)

    def _open_client_id_taken(self, api_key: str, client_order_id: str) -> bool:
        return any(
            order.api_key == api_key and order.client_order_id == client_order_id
            for book in self._open_orders.values()
            for order in book.values()
        )

    def _generate_client_order_id(self) -> str:
        return f"sim{next(self._client_ids):019d}"

    @staticmethod
    def _check_price_filter(rules: MarketRules, price: Decimal) -> None:
        if price <= ZERO:
            raise SimulatorError(-1013, "Invalid price.")
        too_low = rules.min_price > ZERO and price < rules.min_price
        too_high = rules.max_price > ZERO and price > rules.max_price
        if too_low or too_high or not _is_multiple(price, rules.min_price, rules.tick_size):
            raise SimulatorError(-1013, "Filter failure: PRICE_FILTER")

    @staticmethod
    def _check_lot_size(rules: MarketRules, qty: Decimal, *, market_order: bool) -> None:
        if qty <= ZERO:
            raise SimulatorError(-1013, "Invalid quantity.")
        # MARKET_LOT_SIZE with a zero step means "no extra rule", as in real responses
        market_rule = market_order and rules.market_step_size > ZERO
        if market_rule and (qty < rules.market_min_qty or (rules.market_max_qty > ZERO and qty > rules.market_max_qty)):
            raise SimulatorError(-1013, "Filter failure: MARKET_LOT_SIZE")
        too_low = qty < rules.min_qty
        too_high = rules.max_qty > ZERO and qty > rules.max_qty
        if too_low or too_high or not _is_multiple(qty, rules.min_qty, rules.step_size):
            raise SimulatorError(-1013, "Filter failure: LOT_SIZE")

    @staticmethod
    def _check_notional(rules: MarketRules, notional: Decimal, *, market_order: bool) -> None:
        if rules.notional_filter is None:
            return
        check_min = not market_order or rules.min_notional_applies_to_market
        check_max = rules.max_notional > ZERO and (not market_order or rules.max_notional_applies_to_market)
        if (check_min and notional < rules.min_notional) or (check_max and notional > rules.max_notional):
            raise SimulatorError(-1013, f"Filter failure: {rules.notional_filter}")

    def get_order(
        self, api_key: str, symbol: str, *, order_id: int | None = None, client_order_id: str | None = None
    ) -> Order:
        """One of the account's orders by id or client id, or Binance's -2013."""
        with self._lock:
            self._require_account(api_key)
            self.market(symbol)
            order = self._find_order(api_key, symbol, order_id, client_order_id)
            if order is None:
                raise SimulatorError(-2013, "Order does not exist.")
            return order

    def _find_order(self, api_key: str, symbol: str, order_id: int | None, client_order_id: str | None) -> Order | None:
        if order_id is None and client_order_id is None:
            raise SimulatorError(
                -1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!"
            )
        if order_id is not None:
            order = self._orders_by_id.get(order_id)
            if order is None or order.api_key != api_key or order.symbol != symbol:
                return None
            if client_order_id is not None and order.client_order_id != client_order_id:
                return None
            return order
        # client ids may be reused once an order closed: the newest order wins, as on Binance
        assert client_order_id is not None
        return self._latest_by_client_id.get((api_key, symbol, client_order_id))

    def cancel_order(
        self, api_key: str, symbol: str, *, order_id: int | None = None, client_order_id: str | None = None
    ) -> Order:
        """Cancel an open order and release its locked funds, or Binance's -2011."""
        with self._lock:
            account = self._require_account(api_key)
            rules = self.market(symbol)
            order = self._find_order(api_key, symbol, order_id, client_order_id)
            if order is None or not order.is_open:
                raise SimulatorError(-2011, "Unknown order sent.")
            self._release_funds(account, rules, order)
            order.status = STATUS_CANCELED
            order.update_time = now_ms()
            self._open_orders.get(symbol, {}).pop(order.order_id, None)
            return order

    def open_orders(self, api_key: str, symbol: str | None = None) -> list[Order]:
        """The account's working orders, oldest first."""
        with self._lock:
            self._require_account(api_key)
            if symbol is not None:
                self.market(symbol)
                books: Iterable[dict[int, Order]] = [self._open_orders.get(symbol, {})]
            else:
                books = self._open_orders.values()
            found = [order for book in books for order in book.values() if order.api_key == api_key]
            return sorted(found, key=lambda order: order.order_id)

    def all_orders(
        self,
        api_key: str,
        symbol: str,
        *,
        from_order_id: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 500,
    ) -> list[Order]:
        """The account's orders on ``symbol`` (any status), oldest first, like allOrders."""
        with self._lock:
            self._require_account(api_key)
            self.market(symbol)
            found = [o for o in self._orders if o.api_key == api_key and o.symbol == symbol]
        if from_order_id is not None:
            return [o for o in found if o.order_id >= from_order_id][:limit]
        if start_ms is not None:
            found = [o for o in found if o.time >= start_ms]
        if end_ms is not None:
            found = [o for o in found if o.time <= end_ms]
        return found[:limit] if start_ms is not None else found[-limit:]

    def my_trades(
        self,
        api_key: str,
        symbol: str,
        *,
        order_id: int | None = None,
        from_id: int | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
        limit: int = 500,
    ) -> list[Trade]:
        """The account's trades on ``symbol``, oldest first, like myTrades."""
        with self._lock:
            account = self._require_account(api_key)
            self.market(symbol)
            trades = [t for t in account.trades if t.order.symbol == symbol]
        if order_id is not None:
            trades = [t for t in trades if t.order.order_id == order_id]
        if from_id is not None:
            return [t for t in trades if t.fill.trade_id >= from_id][:limit]
        if start_ms is not None:
            trades = [t for t in trades if t.fill.time >= start_ms]
        if end_ms is not None:
            trades = [t for t in trades if t.fill.time <= end_ms]
        return trades[:limit] if start_ms is not None else trades[-limit:]

    def orders(self, api_key: str | None = None) -> list[Order]:
        """Every order ever placed (for the control API), oldest first."""
        with self._lock:
            return [o for o in self._orders if api_key is None or o.api_key == api_key]

    def open_order_count(self) -> int:
        """Working orders across every account."""
        with self._lock:
            return sum(len(book) for book in self._open_orders.values())


def _check_ratio(ratio: Decimal) -> Decimal:
    if not ZERO < ratio <= 1:
        raise ValueError("partial_fill_ratio must be in (0, 1]")
    return ratio


def _fill_side(side: str) -> str:
    """The fill model's side name ("buy"/"sell") of a Binance side ("BUY"/"SELL")."""
    return fillmodel.BUY if side == BUY else fillmodel.SELL


def _aggregate_candles(candles: list[Candle], interval_ms: int) -> list[Kline]:
    klines: list[Kline] = []
    for bucket_start, group in itertools.groupby(candles, key=lambda c: c.open_time - c.open_time % interval_ms):
        rows = list(group)
        volume = sum((c.volume for c in rows), ZERO)
        close = rows[-1].close
        klines.append(
            Kline(
                open_time=bucket_start,
                close_time=bucket_start + interval_ms - 1,
                open=rows[0].open,
                high=max(c.high for c in rows),
                low=min(c.low for c in rows),
                close=close,
                volume=volume,
                quote_volume=volume * close,
                trades=len(rows),
            )
        )
    return klines


def _kline_window(
    points: list[tuple[int, Decimal]], interval_ms: int, start_ms: int | None, end_ms: int | None, limit: int
) -> tuple[int, int]:
    """The open times of the first and last candle worth building (at most ``limit`` of them)."""
    if not points:
        return (0, -1)
    now = now_ms()
    first = points[0][0] - points[0][0] % interval_ms
    last = max(points[-1][0], now if end_ms is None else min(end_ms, now))
    last -= last % interval_ms
    if start_ms is not None:
        first = max(first, start_ms - start_ms % interval_ms)
        return first, min(last, first + (limit - 1) * interval_ms)
    return max(first, last - (limit - 1) * interval_ms), last


def _klines_from_prices(points: list[tuple[int, Decimal]], interval_ms: int, window: tuple[int, int]) -> list[Kline]:
    """Bucket price points into candles; empty buckets repeat the last close, as an idle market."""
    first, last = window
    if not points or last < first:
        return []
    buckets: dict[int, list[Decimal]] = {}
    previous_close = points[0][1]
    for stamp, price in points:
        bucket = stamp - stamp % interval_ms
        if bucket < first:
            previous_close = price  # the close carried into the first candle we build
        elif bucket <= last:
            buckets.setdefault(bucket, []).append(price)
    klines: list[Kline] = []
    for start in _range_ms(first, last, interval_ms):
        prices = buckets.get(start) or [previous_close]
        klines.append(
            Kline(
                open_time=start,
                close_time=start + interval_ms - 1,
                open=prices[0],
                high=max(prices),
                low=min(prices),
                close=prices[-1],
                volume=ZERO,
                quote_volume=ZERO,
                trades=len(buckets.get(start, ())),
            )
        )
        previous_close = prices[-1]
    return klines


def _range_ms(first: int, last: int, step: int) -> Iterator[int]:
    current = first
    while current <= last:
        yield current
        current += step
