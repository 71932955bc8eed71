"""aiohttp application that speaks enough of Binance's spot REST API for ccxt's ``binance`` client.

Public endpoints (``/api/v3/ping``, ``time``, ``exchangeInfo``, ``ticker/price``,
``ticker/bookTicker``, ``ticker/24hr``, ``klines``), signed endpoints (``order`` POST/GET/DELETE,
``openOrders`` GET/DELETE, ``allOrders``, ``myTrades``, ``account``) with Binance's HMAC-SHA256
rules, Binance error bodies and HTTP statuses, and request weights counted per client IP over a
rolling minute (reported in ``X-MBX-USED-WEIGHT-1M``; above the limit, 6000, HTTP 429 / -1003).

Unsigned control endpoints under ``/_sim/`` (loopback clients only) create accounts, move prices,
list or delist markets (``POST /_sim/markets`` with one exchangeInfo ``symbols[]`` entry,
``DELETE /_sim/markets/{symbol}``), inject faults and expose what happened (docs/processes.md#simulator).

Fault rules (``POST /_sim/faults``, one rule or ``{"rules": [...]}``) fire by count, as before
(``{"match": "POST /api/v3/order", "action": "error_500", "count": 2}``), or by rate: add
``"probability": 0.1`` (optionally with ``"seed": 7`` for a repeatable sequence) or ``"every": 10``,
and the rule hits that share of the matching requests until ``DELETE /_sim/faults`` (or until its
optional ``count`` is used up). A rate rule that does not fire passes the request on to the next
rule. ``GET /_sim/faults`` lists the rules with how often each ``fired``; ``GET /_sim/stats`` has
``faults_injected``, the faults injected per action since the last clear. ``GET /_sim/orders?fills=detail``
adds each fill's ``tradeId`` and ``time`` to the contract's order shape.

Fault ``timeout_after_accept``: the request is processed normally (an order is accepted and stored),
then the response is held for ``delay_ms`` (default 30 s, far longer than any sane client timeout)
and the connection is closed without an answer. The client therefore hits its own read timeout
(ccxt raises ``RequestTimeout``, a ``NetworkError``) while the simulator holds the order. When the
client gives up first and closes the socket, the held handler is cancelled at once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import hashlib
import hmac
import ipaddress
import json
import logging
import zlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from exchanges.candles.rules import TIMEFRAME_MS
from exchanges.fillmodel import walk_points

from .engine import (
    ZERO,
    Candle,
    Engine,
    FaultRule,
    Kline,
    Order,
    SimulatorError,
    Trade,
    candle_interval_ms,
    format_decimal,
    mandatory_parameter_error,
    now_ms,
    to_decimal,
)

logger = logging.getLogger(__name__)

Params = Mapping[str, str]
Handler = Callable[[Params, str | None], Any]

DEFAULT_RECV_WINDOW_MS = 5000
MAX_RECV_WINDOW_MS = 60_000
DEFAULT_HOLD_MS = 30_000

# Binance's kline intervals: the engine's timeframes and the few more Binance has.
INTERVALS_MS = {"1s": 1_000, **TIMEFRAME_MS, "3d": 259_200_000, "1w": 604_800_000}


@dataclass(frozen=True)
class Endpoint:
    """One Binance route: its handler, its request weight and whether it is signed."""

    method: str
    path: str
    handler: Handler
    weight: Callable[[Params], int]
    signed: bool = False


def _fixed(weight: int) -> Callable[[Params], int]:
    return lambda params: weight


def _by_symbol(with_symbol: int, without: int) -> Callable[[Params], int]:
    return lambda params: with_symbol if params.get("symbol") else without


def _ticker_24hr_weight(params: Params) -> int:
    if params.get("symbol"):
        return 2
    symbols = params.get("symbols")
    if symbols:
        count = len(_parse_symbols(symbols))
        return 2 if count <= 20 else 40 if count <= 100 else 80
    return 80


def _parse_symbols(raw: str) -> list[str]:
    try:
        symbols = json.loads(raw)
    except json.JSONDecodeError:
        raise SimulatorError(-1100, "Illegal characters found in parameter 'symbols'.") from None
    if not isinstance(symbols, list) or not all(isinstance(s, str) for s in symbols):
        raise SimulatorError(-1100, "Illegal characters found in parameter 'symbols'.")
    return symbols


def _int_param(params: Params, name: str, default: int | None = None) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SimulatorError(-1100, f"Illegal characters found in parameter '{name}'.") from None


def _required(params: Params, name: str) -> str:
    value = params.get(name)
    if not value:
        raise mandatory_parameter_error(name)
    return value


def _limit(params: Params, default: int, maximum: int) -> int:
    limit = _int_param(params, "limit", default)
    assert limit is not None
    if limit < 1 or limit > maximum:
        raise SimulatorError(-1100, "Illegal characters found in parameter 'limit'.")
    return limit


def _strip_signature(raw: str) -> str:
    """The raw query or body without its ``signature=`` pair: what the client signed."""
    if not raw:
        return ""
    return "&".join(part for part in raw.split("&") if not part.startswith("signature="))


def _error_body(error: SimulatorError) -> web.Response:
    return web.json_response({"code": error.code, "msg": error.msg}, status=error.http_status)


def _is_loopback(remote: str | None) -> bool:
    if not remote:
        return False
    try:
        return ipaddress.ip_address(remote.split("%")[0]).is_loopback
    except ValueError:
        return False


class SimulatorApp:
    """Owns the engine and builds the aiohttp application around it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.requests_total = 0
        self.requests_by_endpoint: collections.Counter[str] = collections.Counter()
        self.errors_by_code: collections.Counter[str] = collections.Counter()
        self.endpoints: dict[tuple[str, str], Endpoint] = {}
        for endpoint in self._binance_endpoints():
            self.endpoints[(endpoint.method, endpoint.path)] = endpoint

    # ------------------------------------------------------------------ application

    def build(self) -> web.Application:
        """The aiohttp application: Binance routes, control routes, JSON 404 for the rest."""
        app = web.Application(middlewares=[self._loopback_only])
        for method, path in self.endpoints:
            app.router.add_route(method, path, self._dispatch)
        control: list[tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]] = [
            ("POST", "/_sim/accounts", self._sim_accounts),
            ("POST", "/_sim/price", self._sim_price),
            ("POST", "/_sim/markets", self._sim_market_list),
            ("DELETE", "/_sim/markets/{symbol}", self._sim_market_delist),
            ("GET", "/_sim/faults", self._sim_faults_list),
            ("POST", "/_sim/faults", self._sim_faults_add),
            ("DELETE", "/_sim/faults", self._sim_faults_clear),
            ("GET", "/_sim/orders", self._sim_orders),
            ("GET", "/_sim/balances", self._sim_balances),
            ("POST", "/_sim/reset", self._sim_reset),
            ("GET", "/_sim/config", self._sim_config_get),
            ("POST", "/_sim/config", self._sim_config_set),
            ("GET", "/_sim/stats", self._sim_stats),
        ]
        for method, path, handler in control:
            app.router.add_route(method, path, handler)
        app.router.add_route("*", "/{tail:.*}", self._unknown_route)
        return app

    @web.middleware
    async def _loopback_only(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        # the control API can mint money and orders: never expose it beyond this machine
        if request.path.startswith("/_sim/") and not _is_loopback(request.remote):
            return web.json_response(
                {"error": "forbidden", "detail": "The control API only answers loopback clients."},
                status=403,
            )
        return await handler(request)

    async def _unknown_route(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "code": -1020,
                "msg": f"This operation is not supported: the simulator has no {request.method} {request.path}.",
            },
            status=404,
        )

    # --------------------------------------------------------------- binance routes

    def _binance_endpoints(self) -> list[Endpoint]:
        return [
            Endpoint("GET", "/api/v3/ping", lambda p, k: {}, _fixed(1)),
            Endpoint("GET", "/api/v3/time", lambda p, k: {"serverTime": now_ms()}, _fixed(1)),
            Endpoint("GET", "/api/v3/exchangeInfo", self._exchange_info, _fixed(20)),
            Endpoint("GET", "/api/v3/ticker/price", self._ticker_price, _by_symbol(2, 4)),
            Endpoint("GET", "/api/v3/ticker/bookTicker", self._book_ticker, _by_symbol(2, 4)),
            Endpoint("GET", "/api/v3/ticker/24hr", self._ticker_24hr, _ticker_24hr_weight),
            Endpoint("GET", "/api/v3/klines", self._klines, _fixed(2)),
            Endpoint("POST", "/api/v3/order", self._order_new, _fixed(1), signed=True),
            Endpoint("GET", "/api/v3/order", self._order_get, _fixed(4), signed=True),
            Endpoint("DELETE", "/api/v3/order", self._order_cancel, _fixed(1), signed=True),
            Endpoint("GET", "/api/v3/openOrders", self._open_orders, _by_symbol(6, 80), signed=True),
            Endpoint("DELETE", "/api/v3/openOrders", self._cancel_all, _fixed(1), signed=True),
            Endpoint("GET", "/api/v3/allOrders", self._all_orders, _fixed(20), signed=True),
            Endpoint("GET", "/api/v3/myTrades", self._my_trades, _fixed(20), signed=True),
            Endpoint("GET", "/api/v3/account", self._account, _fixed(20), signed=True),
        ]

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        """Faults, weight, authentication and error mapping shared by every Binance route."""
        endpoint = self.endpoints[(request.method, request.path)]
        route = f"{endpoint.method} {endpoint.path}"
        self.requests_total += 1
        self.requests_by_endpoint[route] += 1
        client = request.remote or "unknown"

        fault = self.engine.faults.take(request.method, request.path)
        if fault is not None and fault.action == "error_500":
            # a plain-text 500, like a failing load balancer: no JSON code for ccxt to map
            return web.Response(status=500, text="500 Internal Server Error (injected fault)")
        if fault is not None and fault.action == "error_429":
            return web.json_response(
                {"code": -1003, "msg": "Too many requests; injected fault."},
                status=429,
                headers={
                    "Retry-After": "1",
                    "X-MBX-USED-WEIGHT-1M": str(self.engine.weights.used(client)),
                },
            )
        if fault is not None and fault.action == "delay_ms":
            await asyncio.sleep((fault.delay_ms or 0) / 1000)

        raw_query = request.raw_path.partition("?")[2]
        raw_body = await request.text() if request.can_read_body else ""
        params: dict[str, str] = dict(parse_qsl(raw_body, keep_blank_values=True))
        params.update(parse_qsl(raw_query, keep_blank_values=True))  # the query string wins

        headers: dict[str, str] = {}
        try:
            weight = endpoint.weight(params)
        except SimulatorError:
            weight = 1
        used = self.engine.weights.add(client, weight)
        headers["X-MBX-USED-WEIGHT-1M"] = str(used)
        headers["X-MBX-USED-WEIGHT"] = str(used)
        if used > self.engine.weights.limit:
            headers["Retry-After"] = str(self.engine.weights.retry_after_s(client))
            response: web.Response = _error_body(
                SimulatorError(
                    -1003,
                    f"Too much request weight used; current limit is {self.engine.weights.limit} "
                    "request weight per 1 MINUTE. Please use WebSocket Streams for live updates "
                    "to avoid polling the API.",
                    429,
                )
            )
        else:
            try:
                api_key = self._authenticate(request, raw_query, raw_body, params) if endpoint.signed else None
                response = web.json_response(endpoint.handler(params, api_key))
            except SimulatorError as error:
                self.errors_by_code[str(error.code)] += 1
                response = _error_body(error)
        response.headers.update(headers)

        if fault is not None and fault.action == "timeout_after_accept":
            await self._hold_and_drop(request, fault)
        return response

    async def _hold_and_drop(self, request: web.Request, fault: FaultRule) -> None:
        """Keep the client waiting past its timeout, then hang up without answering."""
        hold_ms = fault.delay_ms if fault.delay_ms is not None else DEFAULT_HOLD_MS
        await asyncio.sleep(hold_ms / 1000)
        if request.transport is not None:
            request.transport.close()
        raise asyncio.CancelledError  # nothing may be written on the closed connection

    def _authenticate(self, request: web.Request, raw_query: str, raw_body: str, params: Params) -> str:
        """Binance's signed-endpoint checks: API key, signature, timestamp within recvWindow."""
        api_key = request.headers.get("X-MBX-APIKEY", "")
        if not api_key:
            raise SimulatorError(-2014, "API-key format invalid.", 401)
        account = self.engine.account(api_key)
        if account is None:
            raise SimulatorError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        timestamp = _int_param(params, "timestamp")
        if timestamp is None:
            raise mandatory_parameter_error("timestamp")
        signature = params.get("signature", "")
        if not signature:
            raise mandatory_parameter_error("signature")
        payload = _strip_signature(raw_query) + _strip_signature(raw_body)
        expected = hmac.new(account.api_secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise SimulatorError(-1022, "Signature for this request is not valid.")
        recv_window = _int_param(params, "recvWindow", DEFAULT_RECV_WINDOW_MS)
        assert recv_window is not None
        if recv_window > MAX_RECV_WINDOW_MS:
            raise SimulatorError(-1131, "recvWindow must be less than 60000")
        server_time = now_ms()
        if timestamp >= server_time + 1000:
            raise SimulatorError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
        if server_time - timestamp > recv_window:
            raise SimulatorError(-1021, "Timestamp for this request is outside of the recvWindow.")
        return api_key

    # ---------------------------------------------------------------- public data

    def _exchange_info(self, params: Params, api_key: str | None) -> dict[str, Any]:
        info = dict(self.engine.exchange_info)
        info["serverTime"] = now_ms()
        wanted: list[str] | None = None
        if params.get("symbol"):
            wanted = [params["symbol"]]
        elif params.get("symbols"):
            wanted = _parse_symbols(params["symbols"])
        if wanted is not None:
            by_symbol = {raw["symbol"]: raw for raw in info.get("symbols", [])}
            missing = [symbol for symbol in wanted if symbol not in by_symbol]
            if missing:
                raise SimulatorError(-1121, "Invalid symbol.")
            info["symbols"] = [by_symbol[symbol] for symbol in wanted]
        return info

    def _selected_symbols(self, params: Params) -> list[str] | None:
        """``symbol`` or ``symbols`` (validated), or None for "all with a price"."""
        if params.get("symbol"):
            symbols = [params["symbol"]]
        elif params.get("symbols"):
            symbols = _parse_symbols(params["symbols"])
        else:
            return None
        for symbol in symbols:
            self.engine.market(symbol)
        return symbols

    def _last_price(self, symbol: str) -> Decimal:
        price = self.engine.price(symbol)
        if price is None:
            raise SimulatorError(-1013, f"No price for {symbol} yet; set one via /_sim/price.")
        return price

    def _public_rows(self, params: Params, row: Callable[[str, Decimal], dict[str, Any]]) -> Any:
        symbols = self._selected_symbols(params)
        if symbols is None:
            return [row(symbol, price) for symbol, price in sorted(self.engine.prices().items())]
        rows = [row(symbol, self._last_price(symbol)) for symbol in symbols]
        return rows[0] if params.get("symbol") else rows

    def _ticker_price(self, params: Params, api_key: str | None) -> Any:
        return self._public_rows(params, lambda symbol, price: {"symbol": symbol, "price": format_decimal(price)})

    def _book_ticker(self, params: Params, api_key: str | None) -> Any:
        def row(symbol: str, price: Decimal) -> dict[str, Any]:
            # one price, no spread: both sides quote the last price with the market's max size
            depth = format_decimal(self.engine.market(symbol).max_qty)
            return {
                "symbol": symbol,
                "bidPrice": format_decimal(price),
                "bidQty": depth,
                "askPrice": format_decimal(price),
                "askQty": depth,
            }

        return self._public_rows(params, row)

    def _ticker_24hr(self, params: Params, api_key: str | None) -> Any:
        now = now_ms()
        day_ago = now - 86_400_000

        def row(symbol: str, price: Decimal) -> dict[str, Any]:
            history = self.engine.price_history(symbol)
            window = [p for t, p in history if t >= day_ago] or [price]
            before = [p for t, p in history if t < day_ago]
            open_price = before[-1] if before else window[0]
            change = price - open_price
            percent = (change / open_price * 100).quantize(Decimal("0.001"), ROUND_HALF_UP)
            depth = format_decimal(self.engine.market(symbol).max_qty)
            return {
                "symbol": symbol,
                "priceChange": format_decimal(change),
                "priceChangePercent": f"{percent:f}",
                "weightedAvgPrice": format_decimal(price),
                "prevClosePrice": format_decimal(open_price),
                "lastPrice": format_decimal(price),
                "lastQty": "0.00000000",
                "bidPrice": format_decimal(price),
                "bidQty": depth,
                "askPrice": format_decimal(price),
                "askQty": depth,
                "openPrice": format_decimal(open_price),
                "highPrice": format_decimal(max([*window, open_price])),
                "lowPrice": format_decimal(min([*window, open_price])),
                "volume": "0.00000000",
                "quoteVolume": "0.00000000",
                "openTime": day_ago,
                "closeTime": now,
                "firstId": -1,
                "lastId": -1,
                "count": len(window),
            }

        return self._public_rows(params, row)

    def _klines(self, params: Params, api_key: str | None) -> list[list[Any]]:
        symbol = _required(params, "symbol")
        interval = _required(params, "interval")
        if interval not in INTERVALS_MS:
            raise SimulatorError(-1120, "Invalid interval.")
        klines = self.engine.klines(
            symbol,
            INTERVALS_MS[interval],
            start_ms=_int_param(params, "startTime"),
            end_ms=_int_param(params, "endTime"),
            limit=_limit(params, 500, 1000),
        )
        return [_kline_row(kline) for kline in klines]

    # --------------------------------------------------------------- signed: orders

    def _order_new(self, params: Params, api_key: str | None) -> dict[str, Any]:
        assert api_key is not None
        symbol = _required(params, "symbol")
        side = _required(params, "side")
        order_type = _required(params, "type")
        order = self.engine.place_order(
            api_key,
            symbol=symbol,
            side=side,
            order_type=order_type,
            quantity=_optional_decimal(params, "quantity"),
            price=_optional_decimal(params, "price"),
            quote_order_qty=_optional_decimal(params, "quoteOrderQty"),
            time_in_force=params.get("timeInForce") or None,
            client_order_id=params.get("newClientOrderId") or None,
        )
        response_type = (params.get("newOrderRespType") or "FULL").upper()
        if response_type == "ACK":
            return {
                "symbol": order.symbol,
                "orderId": order.order_id,
                "orderListId": -1,
                "clientOrderId": order.client_order_id,
                "transactTime": order.time,
            }
        body = _order_result(order)
        if response_type == "FULL":
            body["fills"] = [
                {
                    "price": format_decimal(fill.price),
                    "qty": format_decimal(fill.qty),
                    "commission": format_decimal(fill.commission),
                    "commissionAsset": fill.commission_asset,
                    "tradeId": fill.trade_id,
                }
                for fill in order.fills
            ]
        return body

    def _order_lookup_args(self, params: Params) -> dict[str, Any]:
        return {
            "order_id": _int_param(params, "orderId"),
            "client_order_id": params.get("origClientOrderId") or None,
        }

    def _order_get(self, params: Params, api_key: str | None) -> dict[str, Any]:
        assert api_key is not None
        symbol = _required(params, "symbol")
        return _order_json(self.engine.get_order(api_key, symbol, **self._order_lookup_args(params)))

    def _order_cancel(self, params: Params, api_key: str | None) -> dict[str, Any]:
        assert api_key is not None
        symbol = _required(params, "symbol")
        order = self.engine.cancel_order(api_key, symbol, **self._order_lookup_args(params))
        return _cancel_json(order, params.get("newClientOrderId") or None)

    def _cancel_all(self, params: Params, api_key: str | None) -> list[dict[str, Any]]:
        assert api_key is not None
        symbol = _required(params, "symbol")
        open_orders = self.engine.open_orders(api_key, symbol)
        if not open_orders:
            raise SimulatorError(-2011, "Unknown order sent.")
        return [
            _cancel_json(self.engine.cancel_order(api_key, symbol, order_id=order.order_id), None)
            for order in open_orders
        ]

    def _open_orders(self, params: Params, api_key: str | None) -> list[dict[str, Any]]:
        assert api_key is not None
        orders = self.engine.open_orders(api_key, params.get("symbol") or None)
        return [_order_json(order) for order in orders]

    def _all_orders(self, params: Params, api_key: str | None) -> list[dict[str, Any]]:
        assert api_key is not None
        orders = self.engine.all_orders(
            api_key,
            _required(params, "symbol"),
            from_order_id=_int_param(params, "orderId"),
            start_ms=_int_param(params, "startTime"),
            end_ms=_int_param(params, "endTime"),
            limit=_limit(params, 500, 1000),
        )
        return [_order_json(order) for order in orders]

    def _my_trades(self, params: Params, api_key: str | None) -> list[dict[str, Any]]:
        assert api_key is not None
        trades = self.engine.my_trades(
            api_key,
            _required(params, "symbol"),
            order_id=_int_param(params, "orderId"),
            from_id=_int_param(params, "fromId"),
            start_ms=_int_param(params, "startTime"),
            end_ms=_int_param(params, "endTime"),
            limit=_limit(params, 500, 1000),
        )
        return [_trade_json(trade) for trade in trades]

    def _account(self, params: Params, api_key: str | None) -> dict[str, Any]:
        assert api_key is not None
        account = self.engine.account(api_key)
        assert account is not None
        omit_zero = (params.get("omitZeroBalances") or "").lower() == "true"
        balances = [
            {"asset": asset, "free": format_decimal(balance.free), "locked": format_decimal(balance.locked)}
            for asset, balance in self.engine.balances(api_key).items()
            if not (omit_zero and balance.free == ZERO and balance.locked == ZERO)
        ]
        rate = self.engine.commission_rate
        return {
            "makerCommission": int(rate * 10_000),
            "takerCommission": int(rate * 10_000),
            "buyerCommission": 0,
            "sellerCommission": 0,
            "commissionRates": {
                "maker": format_decimal(rate),
                "taker": format_decimal(rate),
                "buyer": "0.00000000",
                "seller": "0.00000000",
            },
            "canTrade": True,
            "canWithdraw": False,
            "canDeposit": False,
            "brokered": False,
            "requireSelfTradePrevention": False,
            "preventSor": False,
            "updateTime": account.update_time,
            "accountType": "SPOT",
            "balances": balances,
            "permissions": ["SPOT"],
            "uid": zlib.crc32(api_key.encode()),
        }

    # ------------------------------------------------------------------ control API

    async def _json_body(self, request: web.Request) -> Any:
        try:
            return await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise web.HTTPBadRequest(
                text=json.dumps({"error": "bad_request", "detail": "Body must be JSON."}),
                content_type="application/json",
            ) from None

    @staticmethod
    def _bad_request(detail: str) -> web.Response:
        return web.json_response({"error": "bad_request", "detail": detail}, status=400)

    async def _sim_accounts(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        try:
            balances = {str(asset): Decimal(str(amount)) for asset, amount in (body.get("balances") or {}).items()}
            account = self.engine.create_account(str(body["api_key"]), str(body["api_secret"]), balances)
        except (KeyError, ValueError, ArithmeticError, AttributeError) as error:
            return self._bad_request(f"Invalid account: {error!s}")
        return web.json_response({"api_key": account.api_key, "balances": _balances_json(self.engine, account.api_key)})

    async def _sim_price(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        try:
            symbol = str(body["symbol"])
            price = Decimal(str(body["price"]))
            ratio = body.get("partial_fill_ratio")
            traded = self.engine.set_price(
                symbol, price, partial_fill_ratio=Decimal(str(ratio)) if ratio is not None else None
            )
        except SimulatorError as error:
            return self._bad_request(error.msg)
        except (KeyError, ValueError, ArithmeticError, AttributeError) as error:
            return self._bad_request(f"Invalid price update: {error!s}")
        return web.json_response(
            {"symbol": symbol, "price": format_decimal(price), "traded_order_ids": [o.order_id for o in traded]}
        )

    async def _sim_market_list(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        if not isinstance(body, dict):
            return self._bad_request("Invalid market: the body must be one exchangeInfo symbols[] entry.")
        try:
            rules = self.engine.list_market(body)
        except (KeyError, ValueError, ArithmeticError, AttributeError, TypeError) as error:
            return self._bad_request(f"Invalid market: {error!s}")
        return web.json_response({"symbol": rules.symbol, "status": rules.status})

    async def _sim_market_delist(self, request: web.Request) -> web.Response:
        symbol = request.match_info["symbol"]
        try:
            cancelled = self.engine.delist_market(symbol)
        except SimulatorError as error:
            return web.json_response({"error": "not_found", "detail": error.msg}, status=404)
        return web.json_response({"symbol": symbol, "cancelled_order_ids": [order.order_id for order in cancelled]})

    async def _sim_faults_list(self, request: web.Request) -> web.Response:
        return web.json_response({"faults": [rule.to_json() for rule in self.engine.faults.rules()]})

    async def _sim_faults_add(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        raw_rules = body.get("rules", [body]) if isinstance(body, dict) else body
        try:
            rules = [FaultRule.from_json(raw) for raw in raw_rules]
        except (TypeError, ValueError, AttributeError) as error:
            return self._bad_request(f"Invalid fault rule: {error!s}")
        self.engine.faults.add(rules)
        return await self._sim_faults_list(request)

    async def _sim_faults_clear(self, request: web.Request) -> web.Response:
        self.engine.faults.clear()
        return web.json_response({"faults": []})

    async def _sim_orders(self, request: web.Request) -> web.Response:
        api_key = request.query.get("api_key") or None
        detail = request.query.get("fills") == "detail"
        return web.json_response([_control_order_json(order, detail=detail) for order in self.engine.orders(api_key)])

    async def _sim_balances(self, request: web.Request) -> web.Response:
        api_key = request.query.get("api_key", "")
        if self.engine.account(api_key) is None:
            return web.json_response({"error": "not_found", "detail": "No account with that api_key."}, status=404)
        return web.json_response(_balances_json(self.engine, api_key))

    async def _sim_reset(self, request: web.Request) -> web.Response:
        self.engine.reset()
        self.requests_total = 0
        self.requests_by_endpoint.clear()
        self.errors_by_code.clear()
        return web.json_response({"status": "reset"})

    async def _sim_config_get(self, request: web.Request) -> web.Response:
        return web.json_response(self.engine.config())

    async def _sim_config_set(self, request: web.Request) -> web.Response:
        body = await self._json_body(request)
        try:
            slippage = body.get("market_slippage_bps")
            weight_limit = body.get("weight_limit")
            config = self.engine.configure(
                market_slippage_bps=Decimal(str(slippage)) if slippage is not None else None,
                partial_fill_ratio=(
                    Decimal(str(body["partial_fill_ratio"])) if body.get("partial_fill_ratio") is not None else None
                ),
                clear_partial_fill_ratio="partial_fill_ratio" in body and body["partial_fill_ratio"] is None,
                weight_limit=int(weight_limit) if weight_limit is not None else None,
            )
        except (ValueError, ArithmeticError, AttributeError) as error:
            return self._bad_request(f"Invalid config: {error!s}")
        return web.json_response(config)

    async def _sim_stats(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "requests": self.requests_total,
                "requests_by_endpoint": dict(self.requests_by_endpoint),
                "errors_by_code": dict(self.errors_by_code),
                "weight_total": self.engine.weights.total_weight,
                "weight_1m": self.engine.weights.snapshot(),
                "accounts": self.engine.account_count(),
                "orders": len(self.engine.orders()),
                "open_orders": self.engine.open_order_count(),
                "faults_injected": self.engine.faults.injected(),
            }
        )


SIM_KEY = web.AppKey("simulator", SimulatorApp)


# ---------------------------------------------------------------------- rendering


def _optional_decimal(params: Params, name: str) -> Decimal | None:
    raw = params.get(name)
    return to_decimal(raw, name) if raw not in (None, "") else None


def _order_result(order: Order) -> dict[str, Any]:
    """POST /api/v3/order with newOrderRespType RESULT."""
    return {
        "symbol": order.symbol,
        "orderId": order.order_id,
        "orderListId": -1,
        "clientOrderId": order.client_order_id,
        "transactTime": order.time,
        "price": format_decimal(order.price),
        "origQty": format_decimal(order.orig_qty),
        "executedQty": format_decimal(order.executed_qty),
        "origQuoteOrderQty": format_decimal(order.orig_quote_order_qty),
        "cummulativeQuoteQty": format_decimal(order.cummulative_quote_qty),
        "status": order.status,
        "timeInForce": order.time_in_force or "GTC",
        "type": order.type,
        "side": order.side,
        "workingTime": order.time,
        "selfTradePreventionMode": "NONE",
    }


def _order_json(order: Order) -> dict[str, Any]:
    """An order as GET /api/v3/order, openOrders and allOrders return it."""
    return {
        "symbol": order.symbol,
        "orderId": order.order_id,
        "orderListId": -1,
        "clientOrderId": order.client_order_id,
        "price": format_decimal(order.price),
        "origQty": format_decimal(order.orig_qty),
        "executedQty": format_decimal(order.executed_qty),
        "cummulativeQuoteQty": format_decimal(order.cummulative_quote_qty),
        "status": order.status,
        "timeInForce": order.time_in_force or "GTC",
        "type": order.type,
        "side": order.side,
        "stopPrice": "0.00000000",
        "icebergQty": "0.00000000",
        "time": order.time,
        "updateTime": order.update_time,
        "isWorking": True,
        "workingTime": order.time,
        "origQuoteOrderQty": format_decimal(order.orig_quote_order_qty),
        "selfTradePreventionMode": "NONE",
    }


def _cancel_json(order: Order, cancel_client_id: str | None) -> dict[str, Any]:
    """DELETE /api/v3/order: ``clientOrderId`` is the cancel request's own id, as on Binance."""
    return {
        "symbol": order.symbol,
        "origClientOrderId": order.client_order_id,
        "orderId": order.order_id,
        "orderListId": -1,
        "clientOrderId": cancel_client_id or f"cancel{order.order_id}",
        "transactTime": order.update_time,
        "price": format_decimal(order.price),
        "origQty": format_decimal(order.orig_qty),
        "executedQty": format_decimal(order.executed_qty),
        "origQuoteOrderQty": format_decimal(order.orig_quote_order_qty),
        "cummulativeQuoteQty": format_decimal(order.cummulative_quote_qty),
        "status": order.status,
        "timeInForce": order.time_in_force or "GTC",
        "type": order.type,
        "side": order.side,
        "selfTradePreventionMode": "NONE",
    }


def _trade_json(trade: Trade) -> dict[str, Any]:
    fill = trade.fill
    return {
        "symbol": trade.order.symbol,
        "id": fill.trade_id,
        "orderId": trade.order.order_id,
        "orderListId": -1,
        "price": format_decimal(fill.price),
        "qty": format_decimal(fill.qty),
        "quoteQty": format_decimal(fill.quote_qty),
        "commission": format_decimal(fill.commission),
        "commissionAsset": fill.commission_asset,
        "time": fill.time,
        "isBuyer": trade.is_buyer,
        "isMaker": fill.is_maker,
        "isBestMatch": True,
    }


def _control_order_json(order: Order, *, detail: bool = False) -> dict[str, Any]:
    """An order as ``GET /_sim/orders`` lists it (tests and benches read these fields by name).

    With ``detail`` (``?fills=detail``) each fill also has its ``tradeId`` and ``time`` (epoch ms), so
    that fills of different orders can be put in the order they happened.
    """
    fills: list[dict[str, Any]] = []
    for fill in order.fills:
        row: dict[str, Any] = {
            "price": format_decimal(fill.price),
            "qty": format_decimal(fill.qty),
            "commission": format_decimal(fill.commission),
            "commissionAsset": fill.commission_asset,
        }
        if detail:
            row.update(tradeId=fill.trade_id, time=fill.time)
        fills.append(row)
    return {
        "api_key": order.api_key,
        "symbol": order.symbol,
        "orderId": order.order_id,
        "clientOrderId": order.client_order_id,
        "side": order.side,
        "type": order.type,
        "price": format_decimal(order.price),
        "origQty": format_decimal(order.orig_qty),
        "executedQty": format_decimal(order.executed_qty),
        "cummulativeQuoteQty": format_decimal(order.cummulative_quote_qty),
        "status": order.status,
        "time": order.time,
        "fills": fills,
    }


def _balances_json(engine: Engine, api_key: str) -> dict[str, dict[str, str]]:
    return {
        asset: {"free": format_decimal(balance.free), "locked": format_decimal(balance.locked)}
        for asset, balance in engine.balances(api_key).items()
    }


def _kline_row(kline: Kline) -> list[Any]:
    return [
        kline.open_time,
        format_decimal(kline.open),
        format_decimal(kline.high),
        format_decimal(kline.low),
        format_decimal(kline.close),
        format_decimal(kline.volume),
        kline.close_time,
        format_decimal(kline.quote_volume),
        kline.trades,
        "0.00000000",
        "0.00000000",
        "0",
    ]


# ------------------------------------------------------------------ candle replay


async def replay_candles(engine: Engine, symbol: str, candles: list[Candle], speed: float) -> None:
    """Walk each candle's price path at ``speed``x: open → low → high → close when close ≥ open, else
    open → high → low → close (`exchanges.fillmodel`, the backtester's walk too).

    A candle of interval T takes T / speed seconds of wall time, split over its four prices, so
    resting orders see every level the real market touched. Closed candles become klines.
    """
    if not candles:
        return
    rules = engine.market(symbol)
    interval_ms = candle_interval_ms(candles)
    step_s = interval_ms / 1000 / max(speed, 1e-9) / 4
    for candle in candles:
        # The walk of the fill model the backtester uses too (docs/backtests.md#fill-model).
        for raw_price in walk_points(candle.open, candle.high, candle.low, candle.close):
            price = rules.round_price(raw_price, ROUND_HALF_UP)
            if price > ZERO:
                engine.set_price(symbol, price)
            await asyncio.sleep(step_s)
        engine.record_candle(symbol, candle, interval_ms)
    logger.info("candle replay of %s finished after %d candles", symbol, len(candles))


def build_app(engine: Engine, *, replay: tuple[str, list[Candle], float] | None = None) -> web.Application:
    """The full application; with ``replay`` the candles play while the server runs."""
    simulator = SimulatorApp(engine)
    app = simulator.build()
    app[SIM_KEY] = simulator
    if replay is not None:
        symbol, candles, speed = replay

        async def run_replay(app: web.Application) -> Any:
            task = asyncio.create_task(replay_candles(engine, symbol, candles, speed))
            yield
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        app.cleanup_ctx.append(run_replay)
    return app
