"""The interface every exchange adapter offers, and the parts all of them share.

Positions code calls only these synchronous methods and catches only ``exchanges.exceptions``; the
ccxt adapter, the paper adapter and test fakes are interchangeable behind it.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import datetime

from django.core.cache import cache

from exchanges.exceptions import (
    CircuitOpenError,
    DuplicateClientOrderIdError,
    MarketRulesMissingError,
    OrderNotFoundError,
    SymbolNotFoundError,
    TemporaryExchangeError,
    UnknownOutcomeError,
)
from exchanges.precision import MarketRules

from .types import Balance, OrderFill, OrderRequest, OrderState, Ticker

# How long after one on-demand market rules refresh another may run for the same exchange.
ON_DEMAND_REFRESH_INTERVAL_S = 60
# Waits before each lookup of an order whose placement outcome is unknown.
RESOLVER_DELAYS_S: tuple[float, ...] = (0.2, 0.5, 1.0, 2.0)


# Rules looked up in this process in the last RULES_MEMO_TTL_S seconds: market rules change hourly at
# most, and every order (and cancel) resolves its symbol, so this saves Redis round trips per call.
RULES_MEMO_TTL_S = 30.0
_rules_memo: dict[tuple[str, str], tuple[float, MarketRules]] = {}


def rules_memo_clear(exchange_name: str | None = None) -> None:
    """Forget memoised rules (of one exchange, or all); called when rules are stored."""
    if exchange_name is None:
        _rules_memo.clear()
        return
    for key in [key for key in _rules_memo if key[0] == exchange_name]:
        _rules_memo.pop(key, None)


def _memo_get(exchange_name: str, raw: str) -> MarketRules | None:
    entry = _rules_memo.get((exchange_name, raw))
    if entry is None or entry[0] < time.monotonic():
        return None
    return entry[1]


def _memo_put(exchange_name: str, raw: str, rules: MarketRules) -> MarketRules:
    _rules_memo[(exchange_name, raw)] = (time.monotonic() + RULES_MEMO_TTL_S, rules)
    return rules


class ExchangeAdapter(ABC):
    """Synchronous access to one exchange account (or its public data when built without keys)."""

    exchange_name: str
    resolver_delays_s: tuple[float, ...] = RESOLVER_DELAYS_S
    sleep: Callable[[float], None] = staticmethod(time.sleep)

    # ----------------------------------------------------------------------------- market rules

    @property
    @abstractmethod
    def rules_exchange_name(self) -> str:
        """Under which exchange name this adapter's market rules are stored."""

    @abstractmethod
    def refresh_market_rules(self) -> int:
        """Load every market from the exchange into the rules store; returns how many were stored."""

    def market_rules(self, symbol: str) -> MarketRules:
        """Rules of a unified symbol (``BTC/USDT``): cached, refreshed on demand, else a configured fallback.

        Raises ``SymbolNotFoundError`` when the exchange lists no such market and
        ``MarketRulesMissingError`` when no rules could be had at all.
        """
        from exchanges import selectors

        name = self.rules_exchange_name
        found = _memo_get(name, "=" + symbol) or selectors.market_rule_get(exchange_name=name, symbol=symbol)
        if found is None:
            found = self._rules_after_refresh(symbol, exact=True)
        return _memo_put(name, "=" + symbol, found)

    def resolve_symbol(self, raw: str) -> MarketRules:
        """Rules for ``BTC/USDT``, ``BTCUSDT`` or ``btcusdt`` alike (raises ``SymbolNotFoundError``)."""
        from exchanges import selectors

        if not raw or not raw.strip():
            raise SymbolNotFoundError("an empty symbol names no market", exchange=self.exchange_name)
        name = self.rules_exchange_name
        found = _memo_get(name, raw) or selectors.market_rule_resolve(exchange_name=name, raw=raw)
        if found is None:
            found = self._rules_after_refresh(raw, exact=False)
        return _memo_put(name, raw, found)

    def _rules_after_refresh(self, raw: str, *, exact: bool) -> MarketRules:
        from exchanges import selectors

        name = self.rules_exchange_name
        refresh_error: Exception | None = None
        if cache.add(f"exch:mr-refresh:{name}", 1, ON_DEMAND_REFRESH_INTERVAL_S):
            try:
                self.refresh_market_rules()
            except (TemporaryExchangeError, CircuitOpenError) as exc:
                refresh_error = exc
            if refresh_error is None:
                if exact:
                    found = selectors.market_rule_get(exchange_name=name, symbol=raw)
                else:
                    found = selectors.market_rule_resolve(exchange_name=name, raw=raw)
                if found is not None:
                    return found
        fallback = selectors.market_rules_fallback(exchange_name=name, raw=raw)
        if fallback is not None:
            return fallback
        if refresh_error is not None or selectors.market_rules_count(exchange_name=name) == 0:
            reason = f": {refresh_error}" if refresh_error is not None else ""
            raise MarketRulesMissingError(
                f"No market rules for {raw} on {name} (could not load them{reason}); orders are blocked "
                "until they load or a fallback is configured in MARKET_RULES_FALLBACKS.",
                exchange=self.exchange_name,
                operation="market_rules",
            )
        raise SymbolNotFoundError(f"{name} has no market {raw}", exchange=self.exchange_name)

    # ------------------------------------------------------------------------------ market data

    @abstractmethod
    def ping(self) -> None:
        """A cheap public call (raises our exceptions when the exchange cannot be reached)."""

    @abstractmethod
    def fetch_ticker(self, symbol: str) -> Ticker: ...

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
        from accounts.logs import log_info, log_warning

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
