"""Paper trading: the same interface as the ccxt adapter, with orders matched locally.

Orders never leave the process. They are matched by the simulator's engine
(``exchanges.simulator.engine.Engine``) against the last price of the market, taken from the real
exchange's public ticker when it is reachable and from the simulator (``settings.SIMULATOR_URL``)
otherwise (``settings.PAPER_PRICE_SOURCE``: ``auto`` (default), ``exchange`` or ``simulator``).

State: each config's account (balances, orders with their fills, id sequences, the market rules of
the symbols it traded) is one JSON document in ``PaperAccount.state``. Every operation fetches the
prices it needs first (network, no transaction), then locks the row, rebuilds an engine from the
document, moves the prices (resting orders the move crosses fill, as on the simulator), applies the
operation and stores the document back. So state survives worker restarts, concurrent workers are
serialised by the row lock, and no transaction is held across a network call.

Fills happen at the prices we observe: a move that goes and comes back between two observations is
not seen, which is the usual limitation of polling-based paper trading.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from accounts.logs import log_warning
from exchanges.exceptions import (
    AuthenticationFailedError,
    CircuitOpenError,
    DuplicateClientOrderIdError,
    ExchangeError,
    InsufficientFundsError,
    InvalidOrderError,
    MarketRulesMissingError,
    OrderNotFoundError,
    PermanentExchangeError,
    SymbolNotFoundError,
    TemporaryExchangeError,
)
from exchanges.models import PaperAccount
from exchanges.precision import MarketRules, market_rules_from_json, market_rules_to_json
from exchanges.simulator.engine import Engine, Fill, Order, SimulatorError, Trade

from .base import ExchangeAdapter
from .orders import prepare_order
from .types import Balance, OrderFill, OrderRequest, OrderState, Ticker

T = TypeVar("T")

PAPER_API_KEY = "paper"
STATE_VERSION = 1
CLOSED_ORDERS_KEPT = 1000
OFFLINE_MEMORY_S = 300
DEFAULT_INITIAL_BALANCES = {"USDT": "10000"}

_ENGINE_STATUS = {
    "NEW": "open",
    "PARTIALLY_FILLED": "partially_filled",
    "FILLED": "filled",
    "CANCELED": "canceled",
    "REJECTED": "rejected",
    "EXPIRED": "expired",
}


def initial_state(balances: dict[str, str] | None = None) -> dict[str, Any]:
    """A fresh paper account document."""
    chosen = balances or getattr(settings, "PAPER_INITIAL_BALANCES", None) or DEFAULT_INITIAL_BALANCES
    return {
        "version": STATE_VERSION,
        "next_order_id": 1,
        "next_trade_id": 1,
        "balances": {asset: {"free": str(Decimal(str(amount))), "locked": "0"} for asset, amount in chosen.items()},
        "orders": [],
        "markets": {},
    }


# ------------------------------------------------------------------------------ engine <-> document


def _binance_symbol(rules: MarketRules) -> dict[str, Any]:
    """Market rules in the shape of a Binance exchangeInfo entry, which the engine understands."""

    def text(value: Decimal | None) -> str:
        return "0" if value is None else format(value, "f")

    return {
        "symbol": rules.symbol,
        "status": rules.status,
        "baseAsset": rules.base,
        "quoteAsset": rules.quote,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": text(rules.min_price),
                "maxPrice": text(rules.max_price),
                "tickSize": text(rules.tick_size),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": text(rules.min_qty),
                "maxQty": text(rules.max_qty),
                "stepSize": text(rules.step_size),
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": text(rules.min_notional),
                "applyMinToMarket": True,
                "maxNotional": text(rules.max_notional),
                "applyMaxToMarket": False,
            },
        ],
    }


def _to_json(value: Any) -> Any:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, list):
        return [_to_json(item) for item in value]
    if isinstance(value, dict):
        return {key: _to_json(item) for key, item in value.items()}
    return value


def _from_json(cls: type, data: dict[str, Any]) -> Any:
    """Rebuild an engine dataclass, turning fields annotated as Decimal back into Decimal."""
    kwargs: dict[str, Any] = {}
    for item in dataclasses.fields(cls):
        if item.name not in data:
            continue
        value = data[item.name]
        if item.name == "fills":
            value = [_from_json(Fill, fill) for fill in value]
        elif "Decimal" in str(item.type) and value is not None:
            value = Decimal(value)
        kwargs[item.name] = value
    return cls(**kwargs)


def engine_from_state(state: dict[str, Any], markets: dict[str, MarketRules], commission_rate: Decimal) -> Engine:
    """An engine holding exactly the paper account of ``state`` and the given markets.

    The engine has no public way to load orders, so this sets its id sequences, stores orders through
    its ``_store`` and puts open ones on its book; ``test_adapter_contract`` (paper) and ``test_paper``
    catch any drift between this and the engine.
    """
    engine = Engine(
        {"symbols": [_binance_symbol(rules) for rules in markets.values()]}, commission_rate=commission_rate
    )
    next_order_id = int(state.get("next_order_id", 1))
    engine._order_ids = itertools.count(next_order_id)
    engine._trade_ids = itertools.count(int(state.get("next_trade_id", 1)))
    engine._client_ids = itertools.count(next_order_id)
    account = engine.create_account(PAPER_API_KEY, PAPER_API_KEY, {})
    for asset, amounts in state.get("balances", {}).items():
        balance = account.balance(asset)
        balance.free = Decimal(amounts.get("free", "0"))
        balance.locked = Decimal(amounts.get("locked", "0"))
    trades: list[Trade] = []
    for raw in sorted(state.get("orders", []), key=lambda item: int(item["order_id"])):
        order: Order = _from_json(Order, {**raw, "api_key": PAPER_API_KEY})
        engine._store(order)  # the engine's own bookkeeping (id and client id indexes)
        if order.is_open:
            engine._open_orders.setdefault(order.symbol, {})[order.order_id] = order
        trades.extend(Trade(order=order, fill=fill) for fill in order.fills)
    account.trades = sorted(trades, key=lambda trade: trade.fill.trade_id)
    return engine


def state_from_engine(engine: Engine, previous: dict[str, Any], markets: dict[str, MarketRules]) -> dict[str, Any]:
    """The document of the engine's paper account (open orders and the latest closed ones)."""
    orders = engine.orders(PAPER_API_KEY)
    open_orders = [order for order in orders if order.is_open]
    closed = [order for order in orders if not order.is_open][-CLOSED_ORDERS_KEPT:]
    kept = sorted(open_orders + closed, key=lambda order: order.order_id)
    max_order_id = max((order.order_id for order in orders), default=0)
    max_trade_id = max((fill.trade_id for order in orders for fill in order.fills), default=0)
    stored_markets = dict(previous.get("markets", {}))
    for symbol, rules in markets.items():
        stored_markets[symbol] = market_rules_to_json(rules)
    open_symbols = {order.symbol for order in open_orders}
    return {
        "version": STATE_VERSION,
        "next_order_id": max(int(previous.get("next_order_id", 1)), max_order_id + 1),
        "next_trade_id": max(int(previous.get("next_trade_id", 1)), max_trade_id + 1),
        "balances": {
            asset: {"free": format(balance.free, "f"), "locked": format(balance.locked, "f")}
            for asset, balance in engine.balances(PAPER_API_KEY).items()
        },
        "orders": [{k: v for k, v in _to_json(dataclasses.asdict(order)).items() if k != "api_key"} for order in kept],
        # rules of symbols with open orders are kept so that later price moves can fill them
        "markets": {
            symbol: text for symbol, text in stored_markets.items() if symbol in open_symbols or symbol in markets
        },
    }


def _open_symbols(state: dict[str, Any]) -> list[str]:
    return sorted(
        {order["symbol"] for order in state.get("orders", []) if order.get("status") in ("NEW", "PARTIALLY_FILLED")}
    )


def _ms_to_dt(milliseconds: int | None) -> datetime | None:
    return None if milliseconds is None else datetime.fromtimestamp(milliseconds / 1000, tz=UTC)


def order_state_from_engine(order: Order) -> OrderState:
    """An engine order as our ``OrderState``."""
    fills = tuple(
        OrderFill(
            trade_id=str(fill.trade_id),
            price=fill.price,
            quantity=fill.qty,
            fee=fill.commission,
            fee_asset=fill.commission_asset,
            timestamp=_ms_to_dt(fill.time),
            exchange_order_id=str(order.order_id),
        )
        for fill in order.fills
    )
    assets = {fill.fee_asset for fill in fills}
    average = order.cummulative_quote_qty / order.executed_qty if order.executed_qty > 0 else None
    return OrderState(
        exchange_order_id=str(order.order_id),
        client_order_id=order.client_order_id,
        symbol=order.symbol,
        side="buy" if order.side == "BUY" else "sell",
        type="market" if order.type == "MARKET" else "limit",
        status=_ENGINE_STATUS.get(order.status, "open"),  # type: ignore[arg-type]
        price=order.price if order.price > 0 else None,
        quantity=order.orig_qty,
        filled_quantity=order.executed_qty,
        average_price=average,
        fee=sum((fill.fee for fill in fills), Decimal(0)),
        fee_asset=next(iter(assets)) if len(assets) == 1 else None,
        fills=fills,
        timestamp=_ms_to_dt(order.time),
    )


def _translate(error: SimulatorError, exchange: str, operation: str) -> ExchangeError:
    where = {"exchange": exchange, "operation": operation}
    message = f"paper {exchange}: {error.msg}"
    if error.code == -2010 and "insufficient" in error.msg.lower():
        return InsufficientFundsError(message, **where)
    if error.code == -2010 and "duplicate" in error.msg.lower():
        return DuplicateClientOrderIdError(message, **where)
    if error.code in (-2011, -2013):
        return OrderNotFoundError(message, **where)
    if error.code == -1121:
        return SymbolNotFoundError(message, **where)
    if error.code in (-2014, -2015):
        return AuthenticationFailedError(message, **where)
    if error.code == -1013 or error.code == -2010 or -1199 <= error.code <= -1100:
        return InvalidOrderError(message, **where)
    return PermanentExchangeError(message, **where)


# -------------------------------------------------------------------------------------- the adapter


class PaperAdapter(ExchangeAdapter):
    """Paper trading for one config: market data from ``sources`` (first reachable), orders local."""

    def __init__(
        self,
        *,
        config_id: Any,
        exchange_name: str,
        sources: list[ExchangeAdapter],
        key_checker: ExchangeAdapter | None = None,
    ) -> None:
        if not sources:
            raise ValueError("paper trading needs at least one market data source")
        self.config_id = config_id
        self.exchange_name = exchange_name
        self._sources = sources
        self._key_checker = key_checker
        self._commission_rate = Decimal(str(getattr(settings, "PAPER_COMMISSION_RATE", "0.001")))

    def __repr__(self) -> str:
        return f"<PaperAdapter {self.exchange_name} config={self.config_id}>"

    # -------------------------------------------------------------------------- market data

    @property
    def _offline_key(self) -> str:
        return f"exch:paper-offline:{self.exchange_name}"

    def _with_source(self, call: Callable[[ExchangeAdapter], T]) -> T:
        sources = self._sources
        if len(sources) > 1 and cache.get(self._offline_key):
            sources = sources[1:]
        last_error: ExchangeError | None = None
        for source in sources:
            try:
                return call(source)
            except (TemporaryExchangeError, CircuitOpenError, MarketRulesMissingError) as exc:
                last_error = exc
                first_of_several = source is self._sources[0] and len(self._sources) > 1
                if first_of_several and cache.add(self._offline_key, 1, OFFLINE_MEMORY_S):
                    log_warning(
                        "SYSTEM",
                        f"paper {self.exchange_name}: exchange market data unreachable ({exc}); "
                        f"using the simulator's prices for {OFFLINE_MEMORY_S} s",
                    )
        assert last_error is not None
        raise last_error

    @property
    def rules_exchange_name(self) -> str:
        return self._with_source(lambda source: source.rules_exchange_name)

    def load_market_rules(self) -> list[MarketRules]:
        return self._with_source(lambda source: source.load_market_rules())

    def refresh_market_rules(self) -> int:
        return self._with_source(lambda source: source.refresh_market_rules())

    def market_rules(self, symbol: str) -> MarketRules:
        return self._with_source(lambda source: source.market_rules(symbol))

    def resolve_symbol(self, raw: str) -> MarketRules:
        return self._with_source(lambda source: source.resolve_symbol(raw))

    def ping(self) -> None:
        self._with_source(lambda source: source.ping())

    def fetch_ticker(self, symbol: str) -> Ticker:
        return self._with_source(lambda source: source.fetch_ticker(symbol))

    def fetch_tickers(self, symbols: Sequence[str]) -> dict[str, Ticker]:
        return self._with_source(lambda source: source.fetch_tickers(symbols))

    def fetch_ohlcv(
        self, symbol: str, timeframe: str, since: int | datetime | None = None, limit: int | None = None
    ) -> list[tuple]:
        return self._with_source(lambda source: source.fetch_ohlcv(symbol, timeframe, since, limit))

    def _last_price(self, symbol: str) -> Decimal | None:
        ticker = self.fetch_ticker(symbol)
        if ticker.last:
            return ticker.last
        if ticker.bid and ticker.ask:
            return (ticker.bid + ticker.ask) / 2
        return None

    def _prices(self, symbols: list[str]) -> dict[str, Decimal]:
        """Current prices of ``symbols``; a symbol whose price cannot be had keeps its orders as they are."""
        prices: dict[str, Decimal] = {}
        for symbol in symbols:
            try:
                price = self._last_price(symbol)
            except ExchangeError:
                continue
            if price:
                prices[symbol] = price
        return prices

    # ------------------------------------------------------------------------------- the book

    def _stored_state(self) -> dict[str, Any]:
        account = PaperAccount.objects.filter(config_id=self.config_id).only("state").first()
        return account.state if account is not None and account.state else initial_state()

    def _transact(
        self, operation: str, op: Callable[[Engine], T], *, prices: dict[str, Decimal], rules: list[MarketRules]
    ) -> T:
        """Lock the account, rebuild the engine, move prices, apply ``op``, store the result."""
        error: SimulatorError | None = None
        result: Any = None
        with transaction.atomic():
            account, _ = PaperAccount.objects.select_for_update().get_or_create(
                config_id=self.config_id, defaults={"state": initial_state()}
            )
            state = account.state or initial_state()
            markets: dict[str, MarketRules] = {}
            for symbol, text in state.get("markets", {}).items():
                markets[symbol] = market_rules_from_json(text)
            markets.update({item.symbol: item for item in rules})
            engine = engine_from_state(state, markets, self._commission_rate)
            for symbol, price in prices.items():
                if symbol in markets:
                    engine.set_price(symbol, price)
            try:
                result = op(engine)
            except SimulatorError as exc:
                error = exc  # fills caused by the price moves above are still stored
            account.state = state_from_engine(engine, state, {item.symbol: item for item in rules})
            account.updated_at = timezone.now()
            account.save(update_fields=["state", "updated_at"])
        if error is not None:
            raise _translate(error, self.exchange_name, operation)
        return result

    @staticmethod
    def _engine_order_id(exchange_order_id: str | None) -> int | None:
        if exchange_order_id is None:
            return None
        try:
            return int(exchange_order_id)
        except ValueError:
            return -1  # no such order

    def create_order(self, req: OrderRequest) -> OrderState:
        rules = self.resolve_symbol(req.symbol)
        price, quantity = prepare_order(req, rules, exchange=f"paper {self.exchange_name}")
        last = (
            self._last_price(rules.symbol) if req.type == "market" else self._prices([rules.symbol]).get(rules.symbol)
        )
        if req.type == "market" and last is None:
            raise TemporaryExchangeError(
                f"paper {self.exchange_name}: no price for {rules.symbol} to fill a market order",
                exchange=self.exchange_name,
                operation="create_order",
            )

        def place(engine: Engine) -> Order:
            return engine.place_order(
                PAPER_API_KEY,
                symbol=rules.symbol,
                side=req.side.upper(),
                order_type=req.type.upper(),
                quantity=quantity,
                price=price,
                time_in_force="GTC" if req.type == "limit" else None,
                client_order_id=req.client_order_id,
            )

        order = self._transact("create_order", place, prices={rules.symbol: last} if last else {}, rules=[rules])
        return order_state_from_engine(order)

    def fetch_order(
        self, symbol: str, *, exchange_order_id: str | None = None, client_order_id: str | None = None
    ) -> OrderState:
        if not exchange_order_id and not client_order_id:
            raise ValueError("give exchange_order_id or client_order_id")
        rules = self.resolve_symbol(symbol)
        order_id = self._engine_order_id(exchange_order_id)

        def find(engine: Engine) -> Order:
            return engine.get_order(PAPER_API_KEY, rules.symbol, order_id=order_id, client_order_id=client_order_id)

        order = self._transact("fetch_order", find, prices=self._prices([rules.symbol]), rules=[rules])
        return order_state_from_engine(order)

    def cancel_order(
        self, symbol: str, *, exchange_order_id: str | None = None, client_order_id: str | None = None
    ) -> OrderState:
        if not exchange_order_id and not client_order_id:
            raise ValueError("give exchange_order_id or client_order_id")
        rules = self.resolve_symbol(symbol)
        order_id = self._engine_order_id(exchange_order_id)

        def cancel(engine: Engine) -> Order:
            try:
                return engine.cancel_order(
                    PAPER_API_KEY, rules.symbol, order_id=order_id, client_order_id=client_order_id
                )
            except SimulatorError as exc:
                if exc.code != -2011:
                    raise
                # finished already: report it as it is (or -2013 when it never existed)
                return engine.get_order(PAPER_API_KEY, rules.symbol, order_id=order_id, client_order_id=client_order_id)

        order = self._transact("cancel_order", cancel, prices=self._prices([rules.symbol]), rules=[rules])
        return order_state_from_engine(order)

    def fetch_open_orders(self, symbol: str | None = None) -> list[OrderState]:
        if symbol is None:
            symbols = _open_symbols(self._stored_state())
            orders = self._transact(
                "fetch_open_orders",
                lambda engine: engine.open_orders(PAPER_API_KEY),
                prices=self._prices(symbols),
                rules=[],
            )
        else:
            rules = self.resolve_symbol(symbol)
            orders = self._transact(
                "fetch_open_orders",
                lambda engine: engine.open_orders(PAPER_API_KEY, rules.symbol),
                prices=self._prices([rules.symbol]),
                rules=[rules],
            )
        return [order_state_from_engine(order) for order in orders]

    def fetch_my_trades(self, symbol: str, since: int | datetime | None = None) -> list[OrderFill]:
        rules = self.resolve_symbol(symbol)
        since_ms = int(since.timestamp() * 1000) if isinstance(since, datetime) else since

        def trades(engine: Engine) -> list[Trade]:
            return engine.my_trades(PAPER_API_KEY, rules.symbol, start_ms=since_ms, limit=10_000)

        found = self._transact("fetch_my_trades", trades, prices=self._prices([rules.symbol]), rules=[rules])
        return [
            OrderFill(
                trade_id=str(trade.fill.trade_id),
                price=trade.fill.price,
                quantity=trade.fill.qty,
                fee=trade.fill.commission,
                fee_asset=trade.fill.commission_asset,
                timestamp=_ms_to_dt(trade.fill.time),
                exchange_order_id=str(trade.order.order_id),
            )
            for trade in found
        ]

    def fetch_balance(self) -> dict[str, Balance]:
        symbols = _open_symbols(self._stored_state())
        balances = self._transact(
            "fetch_balance", lambda engine: engine.balances(PAPER_API_KEY), prices=self._prices(symbols), rules=[]
        )
        return {
            asset: Balance(asset=asset, free=item.free, used=item.locked, total=item.free + item.locked)
            for asset, item in balances.items()
            if item.free or item.locked
        }

    def validate(self) -> tuple[bool, str]:
        try:
            source = self._with_source(lambda item: (item.ping(), item.exchange_name)[1])
        except ExchangeError as exc:
            return False, f"Paper trading needs market data and none is reachable: {exc}"
        where = f"market data from {source}"
        if self._key_checker is None:
            return True, f"Paper trading: {where}; orders fill locally."
        try:
            self._key_checker.fetch_balance()
        except AuthenticationFailedError as exc:
            return False, f"The exchange rejected the API key pair: {exc}"
        except (TemporaryExchangeError, CircuitOpenError) as exc:
            return True, f"Paper trading: {where}; orders fill locally. Keys not checked ({exc})."
        except ExchangeError as exc:
            return False, f"{self.exchange_name} refused the key check: {exc}"
        return True, f"Paper trading: {where}; orders fill locally. The API key pair was accepted."

    def close(self) -> None:
        for source in self._sources:
            source.close()
        if self._key_checker is not None:
            self._key_checker.close()
