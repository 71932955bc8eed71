"""The interface every exchange adapter offers, and the parts all of them share.

Positions code calls only these synchronous methods and catches only ``exchanges.exceptions``; the
ccxt adapter, the paper adapter and test fakes are interchangeable behind it.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

from accounts.logs import log_info, log_warning
from exchanges.exceptions import (
    CircuitOpenError,
    DuplicateClientOrderIdError,
    MarketRulesMissingError,
    OrderNotFoundError,
    SymbolNotFoundError,
    TemporaryExchangeError,
    UnknownOutcomeError,
)
from exchanges.precision import MarketRules, compact_symbol

from .types import Balance, OrderFill, OrderRequest, OrderState, Ticker

# Waits before each lookup of an order whose placement outcome is unknown.
RESOLVER_DELAYS_S: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0)

MarketRulesLoader = Callable[[], list[MarketRules]]


class MarketRulesSource(Protocol):
    """Where an adapter finds the rules of a market, and where it hands the rules it loads.

    The engine's adapters get ``exchanges.rules.STORE`` (PostgreSQL, Redis and per-process caches, shared
    by every process) from ``exchanges.services.adapter_for``; an adapter built without one keeps what it
    loads in its own memory (``LoadedMarketRules``). Either way the adapter itself stores nothing.
    """

    def find(self, *, exchange_name: str, raw: str, exact: bool, load: MarketRulesLoader) -> MarketRules:
        """Rules of ``raw`` (the unified symbol exactly when ``exact``, else any common spelling).

        ``load`` fetches every market from the exchange, for a source that needs them. Raises
        ``SymbolNotFoundError`` when the exchange lists no such market and ``MarketRulesMissingError``
        when no rules could be had at all.
        """
        ...

    def store(self, *, exchange_name: str, rules: Sequence[MarketRules]) -> int:
        """Keep an exchange's freshly loaded rules; returns how many."""
        ...


class LoadedMarketRules:
    """A ``MarketRulesSource`` in the adapter's own memory: every market loaded from the exchange on first
    use, nothing written anywhere. For adapters built outside the engine (a benchmark, a script)."""

    def __init__(self) -> None:
        self._by_exchange: dict[str, dict[str, MarketRules]] = {}

    def find(self, *, exchange_name: str, raw: str, exact: bool, load: MarketRulesLoader) -> MarketRules:
        if exchange_name not in self._by_exchange:
            self.store(exchange_name=exchange_name, rules=load())
        spellings = self._by_exchange[exchange_name]
        text = raw.strip().upper()
        found = spellings.get("=" + text) if exact else spellings.get(text) or spellings.get(compact_symbol(text))
        if found is not None:
            return found
        if not spellings:
            raise MarketRulesMissingError(
                f"{exchange_name} listed no markets; orders are blocked",
                exchange=exchange_name,
                operation="market_rules",
            )
        raise SymbolNotFoundError(f"{exchange_name} has no market {raw}", exchange=exchange_name)

    def store(self, *, exchange_name: str, rules: Sequence[MarketRules]) -> int:
        spellings: dict[str, MarketRules] = {}
        for item in sorted(rules, key=lambda each: each.symbol):
            spellings["=" + item.symbol.upper()] = item
            for alias in (item.symbol.upper(), item.exchange_symbol.upper(), compact_symbol(item.base + item.quote)):
                spellings.setdefault(alias, item)
        self._by_exchange[exchange_name] = spellings
        return len(rules)


class ExchangeAdapter(ABC):
    """Synchronous access to one exchange account (or its public data when built without keys)."""

    exchange_name: str
    resolver_delays_s: tuple[float, ...] = RESOLVER_DELAYS_S
    sleep: Callable[[float], None] = staticmethod(time.sleep)
    _rules_source: MarketRulesSource | None = None

    # ----------------------------------------------------------------------------- market rules

    @property
    @abstractmethod
    def rules_exchange_name(self) -> str:
        """Under which exchange name this adapter's market rules are kept."""

    @abstractmethod
    def load_market_rules(self) -> list[MarketRules]:
        """Every market of the exchange, fetched from it now (a network call; nothing is stored)."""

    @property
    def rules_source(self) -> MarketRulesSource:
        """Where this adapter finds market rules (given at construction; else its own memory)."""
        if self._rules_source is None:
            self._rules_source = LoadedMarketRules()
        return self._rules_source

    def refresh_market_rules(self) -> int:
        """Load every market from the exchange and hand them to the rules source; returns how many."""
        return self.rules_source.store(exchange_name=self.rules_exchange_name, rules=self.load_market_rules())

    def market_rules(self, symbol: str) -> MarketRules:
        """Rules of a unified symbol (``BTC/USDT``): known, loaded on demand, else a configured fallback.

        Raises ``SymbolNotFoundError`` when the exchange lists no such market and
        ``MarketRulesMissingError`` when no rules could be had at all.
        """
        return self.rules_source.find(
            exchange_name=self.rules_exchange_name, raw=symbol, exact=True, load=self.load_market_rules
        )

    def resolve_symbol(self, raw: str) -> MarketRules:
        """Rules for ``BTC/USDT``, ``BTCUSDT`` or ``btcusdt`` alike (raises ``SymbolNotFoundError``)."""
        if not raw or not raw.strip():
            raise SymbolNotFoundError("an empty symbol names no market", exchange=self.exchange_name)
        return self.rules_source.find(
            exchange_name=self.rules_exchange_name, raw=raw, exact=False, load=self.load_market_rules
        )

    # ------------------------------------------------------------------------------ market data

    @abstractmethod
    def ping(self) -> None:
        """A cheap public call (raises our exceptions when the exchange cannot be reached)."""

    @abstractmethod
    def fetch_ticker(self, symbol: str) -> Ticker: ...

    def fetch_tickers(self, symbols: Sequence[str]) -> dict[str, Ticker]:
        """Tickers of several unified symbols, keyed by symbol. Adapters that can ask for many markets in
        one request do (the risk engine and the queue price every open market once per cycle); this
        default asks one by one."""
        return {symbol: self.fetch_ticker(symbol) for symbol in dict.fromkeys(symbols)}

    @abstractmethod
    def fetch_ohlcv(
        self, symbol: str, timeframe: str, since: int | datetime | None = None, limit: int | None = None
    ) -> list[tuple]:
        """Candles as ``(open time ms, open, high, low, close, volume)`` with Decimal prices, oldest first."""

    # ---------------------------------------------------------------------------------- account

    @abstractmethod
    def fetch_balance(self) -> dict[str, Balance]: ...

    @abstractmethod
    def create_order(self, req: OrderRequest) -> OrderState:
        """Round to the market's rules, check them, and send once (never retried here)."""

    @abstractmethod
    def fetch_order(
        self, symbol: str, *, exchange_order_id: str | None = None, client_order_id: str | None = None
    ) -> OrderState: ...

    @abstractmethod
    def cancel_order(
        self, symbol: str, *, exchange_order_id: str | None = None, client_order_id: str | None = None
    ) -> OrderState:
        """Cancel an open order; an order that already finished is returned as it is."""

    @abstractmethod
    def fetch_open_orders(self, symbol: str | None = None) -> list[OrderState]: ...

    @abstractmethod
    def fetch_my_trades(self, symbol: str, since: int | datetime | None = None) -> list[OrderFill]: ...

    @abstractmethod
    def validate(self) -> tuple[bool, str]:
        """Make an authenticated call; ``(True, what worked)`` or ``(False, why not)``. Never raises."""

    def close(self) -> None:  # noqa: B027  (adapters without connections have nothing to close)
        """Release network resources of this adapter in the current thread."""

    # ----------------------------------------------------------------------- crash-safe placing

    def place_order_safely(self, req: OrderRequest) -> OrderState:
        """``create_order``, resolving an unknown outcome by looking the order up by its client id.

        Found → returned. Confirmed absent (the lookup says "no such order") → sent again once with the
        same client id. Still unknown → ``UnknownOutcomeError`` for the caller to resolve later.
        """
        try:
            return self.create_order(req)
        except UnknownOutcomeError as exc:
            log_warning(
                "ORDER",
                f"{self.exchange_name}: outcome of order {req.client_order_id} unknown ({exc}); looking it up",
                details={"client_order_id": req.client_order_id, "symbol": req.symbol},
            )
        absent = False
        last_problem = ""
        for delay in self.resolver_delays_s:
            self.sleep(delay)
            try:
                found = self.fetch_order(req.symbol, client_order_id=req.client_order_id)
            except OrderNotFoundError:
                absent = True
                break
            except (TemporaryExchangeError, CircuitOpenError) as exc:
                last_problem = str(exc)
                continue
            log_info(
                "ORDER",
                f"{self.exchange_name}: order {req.client_order_id} found after an unknown outcome",
                details={"client_order_id": req.client_order_id, "status": found.status},
            )
            return found
        if not absent:
            raise UnknownOutcomeError(
                f"{self.exchange_name}: order {req.client_order_id} still unknown after "
                f"{len(self.resolver_delays_s)} lookups ({last_problem}); look it up again later",
                client_order_id=req.client_order_id,
                exchange=self.exchange_name,
                operation="place_order_safely",
            )
        log_warning(
            "ORDER",
            f"{self.exchange_name}: order {req.client_order_id} confirmed absent; sending it once more",
            details={"client_order_id": req.client_order_id},
        )
        try:
            return self.create_order(req)
        except DuplicateClientOrderIdError:
            # It arrived after all, between our lookup and the resend: the exchange refused a second one.
            return self.fetch_order(req.symbol, client_order_id=req.client_order_id)
        except UnknownOutcomeError as exc:
            raise UnknownOutcomeError(
                f"{self.exchange_name}: order {req.client_order_id} was resent once and its outcome is "
                f"unknown again ({exc}); look it up later",
                client_order_id=req.client_order_id,
                exchange=self.exchange_name,
                operation="place_order_safely",
            ) from None
