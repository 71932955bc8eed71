"""The one module of the project that imports ccxt.

``CcxtAdapter`` offers the synchronous ``ExchangeAdapter`` interface on top of ``ccxt.async_support``:

* one asyncio event loop per process, in a thread of its own, runs every thread's calls; one ccxt
  instance per (config, credentials) for the whole process, reused across calls and threads so that
  markets are loaded once, HTTP connections are kept alive and shared, and a worker thread never
  builds a client (``BaseExchange.__init__``) that another thread already has; ``close()`` closes this
  adapter's instance, ``close_all_clients()`` every instance;
* every call passes the config's circuit breaker (``exchanges.circuit``) and books its request weight
  in the shared Redis budget (``exchanges.ratelimit``) first, and corrects the budget from the
  exchange's used-weight header afterwards;
* ccxt errors become ``exchanges.exceptions`` (see ``_translate``); reads are retried a few times on
  temporary errors with a short backoff, order placement never is (an unknown outcome is reported as
  ``UnknownOutcomeError`` and resolved by ``place_order_safely``);
* amounts are Decimal everywhere; they are rounded and checked with ``exchanges.precision`` before an
  order is sent, and converted to float only in the final call into ccxt;
* ``load_market_rules()`` returns every spot market as our ``MarketRules``; keeping them is the business
  of the adapter's ``MarketRulesSource`` (``exchanges.rules`` in the engine), never of this module.
  ``_SHARED_MARKETS`` below is ccxt's own market table, which its client needs for every call.
"""

from __future__ import annotations

import asyncio
import atexit
import dataclasses
import functools
import hashlib
import json
import math
import os
import re
import ssl
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar
from urllib.parse import urlparse

import aiohttp
import ccxt.async_support as ccxt

from accounts.logs import scrub
from exchanges.circuit import CircuitBreaker
from exchanges.exceptions import (
    AuthenticationFailedError,
    CircuitOpenError,
    DuplicateClientOrderIdError,
    ExchangeError,
    InsufficientFundsError,
    InvalidOrderError,
    OrderNotFoundError,
    PermanentExchangeError,
    RateLimitedError,
    SymbolNotFoundError,
    TemporaryExchangeError,
    UnknownOutcomeError,
)
from exchanges.precision import CountingMode, MarketRules, MarketRulesError, market_rules_from_ccxt_market
from exchanges.ratelimit import GENERIC_LIMITS, ExchangeLimits, WeightBudget, limits_for

from .base import ExchangeAdapter, MarketRulesSource
from .orders import prepare_order
from .types import Balance, OrderFill, OrderRequest, OrderState, Ticker

T = TypeVar("T")

READ_BACKOFF_S: tuple[float, ...] = (0.25, 1.0)  # waits before the 2nd and 3rd attempt of a read
MAX_RATE_LIMIT_RETRY_WAIT_S = 2.0
DEFAULT_TIMEOUT_MS = 10_000
BINANCE_FAMILY = frozenset({"binance", "binanceus"})
# Keep the Binance client on spot: no futures market downloads, no sapi currency/margin calls.
BINANCE_SPOT_OPTIONS: dict[str, Any] = {
    "defaultType": "spot",
    "fetchMarkets": {"types": ["spot"]},
    "fetchCurrencies": False,
    "fetchMargins": False,
    "warnOnFetchOpenOrdersWithoutSymbol": False,
}
_URL_QUERY = re.compile(r"(https?://[^\s?\"']+)\?[^\s\"']*")


def supported_exchange_ids() -> frozenset[str]:
    """Every exchange id ccxt knows (``binance``, ``bybit``, ``okx``, ...)."""
    return frozenset(ccxt.exchanges)


# ------------------------------------------------------------------------------ loop and client cache


class _Loop:
    """The process's event loop for ccxt calls, run by a daemon thread, and the ccxt clients bound to it.

    Made on first use and again in a forked child (a celery prefork child inherits no running thread).
    Sync callers hand it coroutines (`_run`) and wait for the result.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.pid = 0
        self.clients: dict[str, Any] = {}

    def current(self) -> asyncio.AbstractEventLoop:
        with self.lock:
            if self.loop is None or self.pid != os.getpid() or self.loop.is_closed():
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="ccxt-loop", daemon=True).start()
                self.loop, self.pid, self.clients = loop, os.getpid(), {}
            return self.loop


_shared = _Loop()
# Loaded markets per (ccxt id, host, sandbox), shared by every client of the process.
_SHARED_MARKETS: dict[tuple[str, str, bool], tuple[dict[str, Any], float]] = {}
_SHARED_MARKETS_LOCK = threading.Lock()
SHARED_MARKETS_TTL_S = 3600.0


@functools.cache
def _tls_context(cafile: str) -> ssl.SSLContext:
    """One TLS context per CA file for every client of the process: ccxt builds its own for each new
    client, loading the whole CA bundle (10–20 ms of CPU)."""
    return ssl.create_default_context(cafile=cafile)


def _run[T](awaitable: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine on the process's ccxt loop and wait for it (sync callers only)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass
    else:
        awaitable.close()
        raise RuntimeError(
            "ExchangeAdapter methods are synchronous: call them from a worker thread "
            "(e.g. asgiref.sync.sync_to_async), not from inside a running event loop"
        )
    return asyncio.run_coroutine_threadsafe(awaitable, _shared.current()).result()


def close_all_clients() -> int:
    """Close every ccxt instance of the process and stop its loop; returns how many were closed. For when
    no call is in flight (at exit, at the end of a script): a call waiting on the old loop never ends."""
    with _shared.lock:
        loop, clients = _shared.loop, list(_shared.clients.values())
        _shared.loop, _shared.clients = None, {}
        if loop is None or loop.is_closed() or _shared.pid != os.getpid():
            return 0

    async def close_every() -> None:
        for client in clients:
            try:
                await client.close()
            except Exception:  # a broken connection must not stop the others from closing
                pass
        await loop.shutdown_asyncgens()

    try:
        asyncio.run_coroutine_threadsafe(close_every(), loop).result(timeout=10)
    except Exception:  # at exit, a stuck close must not hang the process
        pass
    loop.call_soon_threadsafe(loop.stop)
    return len(clients)


# Scripts, workers and tests that never call close() still shut their sessions down cleanly.
atexit.register(close_all_clients)


# ---------------------------------------------------------------------------------- conversions


def _dec(value: Any) -> Decimal | None:
    """ccxt numbers (floats, or strings) to Decimal through their shortest repr; ``None`` stays."""
    if value is None or value == "":
        return None
    if isinstance(value, Decimal):
        return value
    if isinstance(value, bool):
        return None
    try:
        result = Decimal(str(value))
    except ArithmeticError:
        return None
    return result if result.is_finite() else None


def _ts(milliseconds: Any) -> datetime | None:
    if milliseconds is None:
        return None
    try:
        return datetime.fromtimestamp(int(milliseconds) / 1000, tz=UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _since_ms(since: int | datetime | None) -> int | None:
    if since is None:
        return None
    if isinstance(since, datetime):
        return int(since.timestamp() * 1000)
    return int(since)


_STATUS = {
    "closed": "filled",
    "canceled": "canceled",
    "cancelled": "canceled",
    "expired": "expired",
    "rejected": "rejected",
}


def _status(raw: dict[str, Any], filled: Decimal) -> str:
    status = raw.get("status")
    if status in (None, "open"):
        return "partially_filled" if filled > 0 else "open"
    return _STATUS.get(str(status), "open")


def _fee_of(item: Mapping[str, Any]) -> tuple[Decimal, str | None]:
    fee = item.get("fee") or {}
    cost = _dec(fee.get("cost")) or Decimal(0)
    return cost, fee.get("currency")


def _fill(trade: Mapping[str, Any]) -> OrderFill:
    fee, fee_asset = _fee_of(trade)
    return OrderFill(
        trade_id=str(trade.get("id") or ""),
        price=_dec(trade.get("price")) or Decimal(0),
        quantity=_dec(trade.get("amount")) or Decimal(0),
        fee=fee,
        fee_asset=fee_asset,
        timestamp=_ts(trade.get("timestamp")),
        exchange_order_id=str(trade["order"]) if trade.get("order") is not None else None,
    )


def order_state_from_ccxt(raw: Mapping[str, Any], request: OrderRequest | None = None) -> OrderState:
    """A ccxt unified order as our ``OrderState`` (missing fields taken from the request that made it)."""
    filled = _dec(raw.get("filled")) or Decimal(0)
    quantity = _dec(raw.get("amount")) or (request.quantity if request else Decimal(0))
    fills = tuple(_fill(trade) for trade in raw.get("trades") or [])
    fee, fee_asset = Decimal(0), None
    if fills:
        assets = {fill.fee_asset for fill in fills if fill.fee}
        fee_asset = next(iter(assets)) if len(assets) == 1 else None
        fee = sum((fill.fee for fill in fills), Decimal(0)) if len(assets) <= 1 else Decimal(0)
    elif raw.get("fee"):
        fee, fee_asset = _fee_of(raw)
    average = _dec(raw.get("average"))
    cost = _dec(raw.get("cost"))
    if average is None and cost and filled > 0:
        average = cost / filled
    order_type = str(raw.get("type") or (request.type if request else "limit")).lower()
    return OrderState(
        exchange_order_id=str(raw.get("id") or ""),
        client_order_id=raw.get("clientOrderId") or (request.client_order_id if request else None),
        symbol=str(raw.get("symbol") or (request.symbol if request else "")),
        side=str(raw.get("side") or (request.side if request else "buy")).lower(),  # type: ignore[arg-type]
        type="market" if order_type == "market" else "limit",
        status=_status(dict(raw), filled),  # type: ignore[arg-type]
        price=_dec(raw.get("price")) or (request.price if request else None),
        quantity=quantity,
        filled_quantity=filled,
        average_price=average,
        fee=fee,
        fee_asset=fee_asset,
        fills=fills,
        timestamp=_ts(raw.get("timestamp")),
    )


# ------------------------------------------------------------------------------------- the adapter


class CcxtAdapter(ExchangeAdapter):
    """One exchange account (or its public data, without credentials) through ccxt."""

    def __init__(
        self,
        *,
        exchange_name: str,
        ccxt_id: str,
        credentials: Any = None,
        sandbox: bool = False,
        config_overrides: Mapping[str, Any] | None = None,
        circuit_name: str | None = None,
        account_label: str = "public",
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
        rules_exchange_name: str | None = None,
        max_budget_wait_s: float = 5.0,
        limits: ExchangeLimits | None = None,
        rules: MarketRulesSource | None = None,
    ) -> None:
        if ccxt_id not in ccxt.exchanges:
            raise PermanentExchangeError(f"ccxt has no exchange {ccxt_id!r}", exchange=exchange_name)
        self.exchange_name = exchange_name
        self.ccxt_id = ccxt_id
        self.sandbox = sandbox
        self._credentials = credentials
        self._overrides = dict(config_overrides or {})
        self._timeout_ms = timeout_ms
        self._rules_exchange_name = rules_exchange_name or exchange_name
        self._rules_source = rules
        self._account_label = account_label
        self._max_budget_wait_s = max_budget_wait_s
        self._limits = limits or limits_for(ccxt_id)
        self._circuit = CircuitBreaker(
            circuit_name or f"public:{exchange_name}", label=f"{exchange_name} ({account_label})"
        )
        self._budget: WeightBudget | None = None
        self._client_key = self._make_client_key()

    def __repr__(self) -> str:
        key = getattr(self._credentials, "api_key", "") or ""
        masked = ("****" + key[-4:]) if len(key) > 8 else ("****" if key else "none")
        sandbox = " sandbox" if self.sandbox else ""
        return f"<CcxtAdapter {self.exchange_name} via {self.ccxt_id}{sandbox} key={masked}>"

    @property
    def rules_exchange_name(self) -> str:
        return self._rules_exchange_name

    @property
    def circuit(self) -> CircuitBreaker:
        return self._circuit

    # ------------------------------------------------------------------------------ plumbing

    def _make_client_key(self) -> str:
        creds = self._credentials
        material = json.dumps(
            [
                self.ccxt_id,
                self.sandbox,
                self._timeout_ms,
                self._overrides,
                getattr(creds, "api_key", None),
                getattr(creds, "api_secret", None),
                getattr(creds, "password", None),
            ],
            sort_keys=True,
            default=str,
        )
        return f"{self._circuit.name}:{hashlib.sha256(material.encode()).hexdigest()[:24]}"

    def _client(self) -> Any:
        loop = _shared.current()
        with _shared.lock:
            client = _shared.clients.get(self._client_key)
        if client is not None:
            return client
        # Where our shared budget models the exchange's limits it replaces ccxt's per-process throttle
        # (which spaces every call by rateLimit ms); elsewhere ccxt's throttle stays on as well.
        config: dict[str, Any] = {"enableRateLimit": self._limits is GENERIC_LIMITS, "timeout": self._timeout_ms}
        options: dict[str, Any] = {"warnOnFetchOpenOrdersWithoutSymbol": False}
        if self.ccxt_id in BINANCE_FAMILY:
            options.update(BINANCE_SPOT_OPTIONS)
        for key, value in self._overrides.items():
            if key == "options":
                options.update(value)
            elif key != "enableRateLimit":
                config[key] = value
        config["options"] = options
        config["asyncio_loop"] = loop
        creds = self._credentials
        if creds is not None:
            config["apiKey"] = creds.api_key
            config["secret"] = creds.api_secret
            if creds.password:
                config["password"] = creds.password
        client = getattr(ccxt, self.ccxt_id)(config)
        if (
            client.verify is True
            and client.ssl_context is None
            and not client.safe_bool(client.options, "include_OS_certificates", False)
        ):
            client.ssl_context = _tls_context(client.cafile)
        if self.sandbox:
            try:
                client.set_sandbox_mode(True)
            except ccxt.NotSupported:
                raise PermanentExchangeError(
                    f"{self.ccxt_id} has no testnet (sandbox) in ccxt; use paper or live mode",
                    exchange=self.exchange_name,
                ) from None
        with _shared.lock:  # a client another thread made meanwhile wins; ours has no session yet
            return _shared.clients.setdefault(self._client_key, client)

    def _host(self, client: Any) -> str:
        api = client.urls.get("api")
        url = api if isinstance(api, str) else None
        if isinstance(api, Mapping):
            url = api.get("public") or next((v for v in api.values() if isinstance(v, str)), None)
        return urlparse(url).netloc if url else self.ccxt_id

    def _budget_for(self, client: Any) -> WeightBudget:
        if self._budget is None:
            self._budget = WeightBudget(
                exchange_name=self.exchange_name,
                host=self._host(client),
                account=self._account_label,
                limits=self._limits,
                max_wait_s=self._max_budget_wait_s,
            )
        return self._budget

    @property
    def budget(self) -> WeightBudget:
        return self._budget_for(self._client())

    def _secrets(self) -> list[str]:
        creds = self._credentials
        values = [getattr(creds, name, None) for name in ("api_key", "api_secret", "password")]
        return [value for value in values if value and len(value) >= 4]

    def _safe_message(self, exc: BaseException) -> str:
        text = str(exc) or type(exc).__name__
        text = _URL_QUERY.sub(r"\1", text)  # signed query strings carry signatures and timestamps
        for secret in self._secrets():
            text = text.replace(secret, "[redacted]")
        text = str(scrub(text))
        if len(text) > 500:
            text = text[:500] + "..."
        return text

    def _retry_after(self, headers: Mapping[str, Any] | None, message: str) -> float:
        for key, value in (headers or {}).items():
            if key.lower() == "retry-after":
                try:
                    return max(0.0, float(value))
                except ValueError:
                    break
        if " 418 " in f" {message} ":
            return 120.0
        now = time.time()
        return max(1.0, math.ceil(now / 60) * 60 - now)

    def _translate(
        self,
        exc: BaseException,
        headers: Mapping[str, Any] | None,
        *,
        operation: str,
        placing: bool,
        client_order_id: str,
    ) -> ExchangeError | None:
        if isinstance(exc, ExchangeError):
            return exc
        message = self._safe_message(exc)
        where = {"exchange": self.exchange_name, "operation": operation}
        network_cause = isinstance(exc.__cause__, aiohttp.ClientError | asyncio.TimeoutError | OSError)
        if not isinstance(exc, ccxt.BaseError):
            if isinstance(exc, aiohttp.ClientError | asyncio.TimeoutError | OSError):
                network_cause = True
            else:
                return None
        if isinstance(exc, ccxt.DDoSProtection | ccxt.RateLimitExceeded):
            return RateLimitedError(message, retry_after=self._retry_after(headers, message), **where)
        if isinstance(exc, ccxt.AuthenticationError):
            return AuthenticationFailedError(message, **where)
        if isinstance(exc, ccxt.InsufficientFunds):
            return InsufficientFundsError(message, **where)
        if isinstance(exc, ccxt.OrderNotFound):
            return OrderNotFoundError(message, **where)
        if isinstance(exc, ccxt.DuplicateOrderId) or "duplicate order" in message.lower():
            return DuplicateClientOrderIdError(message, **where)
        if isinstance(exc, ccxt.BadSymbol):
            return SymbolNotFoundError(message, **where)
        if isinstance(exc, ccxt.InvalidOrder):
            return InvalidOrderError(message, **where)
        if isinstance(exc, ccxt.InvalidNonce):
            # rejected for our clock or nonce before anything happened: not an unknown outcome
            return TemporaryExchangeError(message, **where)
        if isinstance(exc, ccxt.OperationFailed) or network_cause:
            if placing:
                return UnknownOutcomeError(
                    f"{message} (placing {client_order_id}: the order may or may not exist)",
                    client_order_id=client_order_id,
                    **where,
                )
            return TemporaryExchangeError(message, **where)
        if placing and isinstance(exc, ccxt.BadRequest | ccxt.OperationRejected):
            return InvalidOrderError(message, **where)
        return PermanentExchangeError(message, **where)

    async def _invoke(
        self, client: Any, fn: Callable[[Any], Awaitable[T]], *, needs_markets: bool, seen: dict[str, Any]
    ) -> T:
        """`fn(client)` on the loop. The response headers of this call are kept in `seen` at once: other
        threads' calls on the same client may answer before the caller reads them."""
        try:
            if needs_markets and not client.markets:
                await self._load_markets(client)
            return await fn(client)
        finally:
            seen["headers"] = getattr(client, "last_response_headers", None)

    async def _load_markets(self, client: Any) -> None:
        """Markets are public and the same for every account: one load per exchange and process.

        Every (thread, config) has its own ccxt client; without this each of them would fetch
        exchangeInfo (Binance weight 20) on first use — a threaded worker with many accounts would
        spend the whole minute's budget on it.
        """
        if self._attach_shared_markets(client):
            return
        await client.load_markets()
        with _SHARED_MARKETS_LOCK:
            _SHARED_MARKETS[(self.ccxt_id, self._host(client), self.sandbox)] = (client.markets, time.monotonic())

    def _attach_shared_markets(self, client: Any) -> bool:
        """Give `client` this process's loaded markets when they are fresh; False when it must load."""
        with _SHARED_MARKETS_LOCK:
            cached = _SHARED_MARKETS.get((self.ccxt_id, self._host(client), self.sandbox))
        if cached is None or time.monotonic() - cached[1] >= SHARED_MARKETS_TTL_S:
            return False
        client.set_markets(cached[0])
        return True

    def _call(
        self,
        operation: str,
        fn: Callable[[Any], Awaitable[T]],
        *,
        count: int = 1,
        placing: bool = False,
        client_order_id: str = "",
        needs_markets: bool = True,
    ) -> T:
        attempts = 1 if placing else 1 + len(READ_BACKOFF_S)
        for attempt in range(attempts):
            self._circuit.before_call()
            client = self._client()
            budget = self._budget_for(client)
            if needs_markets and not client.markets and not self._attach_shared_markets(client):
                budget.reserve("markets")  # the first call below loads them (exchangeInfo)
            budget.reserve(operation, count=count, orders=1 if placing else 0)
            seen: dict[str, Any] = {}
            try:
                result = _run(self._invoke(client, fn, needs_markets=needs_markets, seen=seen))
            except Exception as exc:
                error = self._translate(
                    exc, seen.get("headers"), operation=operation, placing=placing, client_order_id=client_order_id
                )
                if error is None and placing:
                    # a bug in parsing the answer, say: the order may well exist, so never let the
                    # caller think it failed cleanly
                    error = UnknownOutcomeError(
                        f"{self.exchange_name}: unexpected {type(exc).__name__} while placing "
                        f"{client_order_id}; the order may or may not exist",
                        client_order_id=client_order_id,
                        exchange=self.exchange_name,
                        operation=operation,
                    )
                if error is None:
                    raise
                budget.observe_headers(seen.get("headers"))
                if isinstance(error, RateLimitedError):
                    budget.block(error.retry_after)
                elif isinstance(error, TemporaryExchangeError | UnknownOutcomeError):
                    self._circuit.record_failure()
                else:
                    self._circuit.record_success()  # the exchange answered; it is up
                if attempt + 1 < attempts and isinstance(error, TemporaryExchangeError):
                    wait = error.retry_after if isinstance(error, RateLimitedError) else READ_BACKOFF_S[attempt]
                    if wait <= MAX_RATE_LIMIT_RETRY_WAIT_S:
                        self.sleep(wait)
                        continue
                raise error from None
            budget.observe_headers(seen.get("headers"))
            self._circuit.record_success()
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    # --------------------------------------------------------------------------- market rules

    def load_market_rules(self) -> list[MarketRules]:
        async def load(client: Any) -> tuple[dict[str, Any], Any]:
            markets = await client.load_markets(reload=True)
            with _SHARED_MARKETS_LOCK:
                _SHARED_MARKETS[(self.ccxt_id, self._host(client), self.sandbox)] = (client.markets, time.monotonic())
            return markets, client.precisionMode

        markets, precision_mode = self._call("markets", load, needs_markets=False)
        try:
            counting = CountingMode.from_ccxt(int(precision_mode))
        except (KeyError, TypeError, ValueError):
            counting = CountingMode.TICK_SIZE
        rules: list[MarketRules] = []
        for market in markets.values():
            if market.get("spot") is False:
                continue
            try:
                rules.append(market_rules_from_ccxt_market(market, precision_mode=counting))
            except (MarketRulesError, ValueError, KeyError):
                continue  # a market ccxt cannot describe with fixed ticks is not tradable by us
        return rules

    # ------------------------------------------------------------------------------ market data

    def ping(self) -> None:
        self._call("time", lambda client: client.fetch_time(), needs_markets=False)

    def fetch_ticker(self, symbol: str) -> Ticker:
        rules = self.resolve_symbol(symbol)
        raw = self._call("ticker", lambda client: client.fetch_ticker(rules.symbol))
        return Ticker(
            symbol=rules.symbol,
            last=_dec(raw.get("last")) or _dec(raw.get("close")),
            bid=_dec(raw.get("bid")),
            ask=_dec(raw.get("ask")),
            timestamp=_ts(raw.get("timestamp")),
        )

    def fetch_tickers(self, symbols: Sequence[str]) -> dict[str, Ticker]:
        """One request for every symbol (Binance: ``ticker/24hr?symbols=[...]``)."""
        wanted = [self.resolve_symbol(symbol).symbol for symbol in dict.fromkeys(symbols)]
        if not wanted:
            return {}
        raw = self._call("tickers", lambda client: client.fetch_tickers(wanted))
        return {
            symbol: Ticker(
                symbol=symbol,
                last=_dec(row.get("last")) or _dec(row.get("close")),
                bid=_dec(row.get("bid")),
                ask=_dec(row.get("ask")),
                timestamp=_ts(row.get("timestamp")),
            )
            for symbol, row in raw.items()
            if symbol in wanted
        }

    def fetch_ohlcv(
        self, symbol: str, timeframe: str, since: int | datetime | None = None, limit: int | None = None
    ) -> list[tuple]:
        rules = self.resolve_symbol(symbol)
        since_ms = _since_ms(since)
        rows = self._call("ohlcv", lambda client: client.fetch_ohlcv(rules.symbol, timeframe, since_ms, limit))
        return [
            (int(row[0]), _dec(row[1]), _dec(row[2]), _dec(row[3]), _dec(row[4]), _dec(row[5]) or Decimal(0))
            for row in rows
        ]

    # ---------------------------------------------------------------------------------- account

    def fetch_balance(self) -> dict[str, Balance]:
        raw = self._call("balance", lambda client: client.fetch_balance())
        result: dict[str, Balance] = {}
        totals = raw.get("total") or {}
        for asset in totals:
            free = _dec((raw.get("free") or {}).get(asset)) or Decimal(0)
            used = _dec((raw.get("used") or {}).get(asset)) or Decimal(0)
            total = _dec(totals.get(asset)) or free + used
            if free or used or total:
                result[asset] = Balance(asset=asset, free=free, used=used, total=total)
        return result

    def create_order(self, req: OrderRequest) -> OrderState:
        rules = self.resolve_symbol(req.symbol)
        price, quantity = prepare_order(req, rules, exchange=self.exchange_name)
        params = {"clientOrderId": req.client_order_id}  # ccxt sends it as Binance's newClientOrderId
        send_price = float(price) if price is not None else None

        async def place(client: Any) -> dict[str, Any]:
            return await client.create_order(rules.symbol, req.type, req.side, float(quantity), send_price, params)

        raw = self._call("create_order", place, placing=True, client_order_id=req.client_order_id)
        normalized = OrderRequest(
            symbol=rules.symbol,
            side=req.side,
            type=req.type,
            quantity=quantity,
            price=price,
            client_order_id=req.client_order_id,
        )
        return order_state_from_ccxt(raw, normalized)

    def _lookup_params(self, exchange_order_id: str | None, client_order_id: str | None) -> dict[str, Any]:
        if not exchange_order_id and not client_order_id:
            raise ValueError("give exchange_order_id or client_order_id")
        return {} if exchange_order_id else {"clientOrderId": client_order_id}

    def fetch_order(
        self, symbol: str, *, exchange_order_id: str | None = None, client_order_id: str | None = None
    ) -> OrderState:
        rules = self.resolve_symbol(symbol)
        params = self._lookup_params(exchange_order_id, client_order_id)
        raw = self._call(
            "fetch_order", lambda client: client.fetch_order(exchange_order_id, rules.symbol, dict(params))
        )
        return order_state_from_ccxt(raw)

    def cancel_order(
        self, symbol: str, *, exchange_order_id: str | None = None, client_order_id: str | None = None
    ) -> OrderState:
        rules = self.resolve_symbol(symbol)
        params = self._lookup_params(exchange_order_id, client_order_id)
        try:
            raw = self._call(
                "cancel_order", lambda client: client.cancel_order(exchange_order_id, rules.symbol, dict(params))
            )
        except (OrderNotFoundError, PermanentExchangeError) as exc:
            if not isinstance(exc, OrderNotFoundError) and "unknown order" not in str(exc).lower():
                raise
            # Binance answers -2011 for orders that already finished: report them as they are.
            return self.fetch_order(rules.symbol, exchange_order_id=exchange_order_id, client_order_id=client_order_id)
        state = order_state_from_ccxt(raw)
        if not state.client_order_id and client_order_id:
            state = dataclasses.replace(state, client_order_id=client_order_id)
        return state

    def fetch_open_orders(self, symbol: str | None = None) -> list[OrderState]:
        if symbol is None:
            raw = self._call("open_orders_all", lambda client: client.fetch_open_orders())
        else:
            rules = self.resolve_symbol(symbol)
            raw = self._call("open_orders_symbol", lambda client: client.fetch_open_orders(rules.symbol))
        return [order_state_from_ccxt(item) for item in raw]

    def fetch_my_trades(self, symbol: str, since: int | datetime | None = None) -> list[OrderFill]:
        rules = self.resolve_symbol(symbol)
        since_ms = _since_ms(since)
        raw = self._call("my_trades", lambda client: client.fetch_my_trades(rules.symbol, since_ms))
        return [_fill(trade) for trade in raw]

    def validate(self) -> tuple[bool, str]:
        if self._credentials is None:
            return False, "No API key is stored for this exchange."
        try:
            balances = self.fetch_balance()
        except AuthenticationFailedError as exc:
            return False, f"The exchange rejected the API key pair: {exc}"
        except CircuitOpenError as exc:
            return False, f"Not checked: {exc}"
        except TemporaryExchangeError as exc:
            return False, f"Could not reach {self.exchange_name}: {exc}"
        except ExchangeError as exc:
            return False, f"{self.exchange_name} refused the check: {exc}"
        mode = " (testnet)" if self.sandbox else ""
        return True, f"Authenticated on {self.exchange_name}{mode}; {len(balances)} asset(s) with a balance."

    def close(self) -> None:
        with _shared.lock:
            client = _shared.clients.pop(self._client_key, None)
        if client is not None:
            try:
                _run(client.close())
            except Exception:
                pass
