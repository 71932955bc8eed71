"""The exchange simulator without ccxt: the matching engine in-process, the HTTP server raw.

No database: run with ``pytest -p no:django exchanges/tests/test_simulator.py``.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import hmac
import json
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
from aiohttp.test_utils import make_mocked_request

from exchanges.simulator.cli import DEFAULT_EXCHANGE_INFO, load_exchange_info
from exchanges.simulator.engine import (
    Engine,
    FaultInjector,
    FaultRule,
    Order,
    SimulatorError,
    WeightTracker,
    format_decimal,
    load_candles,
)
from exchanges.simulator.server import SimulatorApp
from exchanges.simulator.testing import SimulatorProcess

D = Decimal
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
REAL_EXCHANGE_INFO = SHARED_DATA / "exchange" / "binance_exchangeInfo_subset.json"
REAL_CANDLES = SHARED_DATA / "candles" / "binance_BTC_USDT_1h.csv.gz"


def make_engine(**kwargs: Any) -> Engine:
    engine = Engine(load_exchange_info(None), **kwargs)
    engine.create_account("k", "s", {"USDT": D("10000"), "BTC": D("1")})
    engine.set_price("BTCUSDT", D("65000"))
    return engine


def limit_order(
    engine: Engine, side: str, quantity: str, price: str, *, symbol: str = "BTCUSDT", **kwargs: Any
) -> Order:
    kwargs.setdefault("time_in_force", "GTC")
    kwargs.setdefault("order_type", "LIMIT")
    return engine.place_order("k", symbol=symbol, side=side, quantity=D(quantity), price=D(price), **kwargs)


def balance(engine: Engine, asset: str) -> tuple[Decimal, Decimal]:
    entry = engine.balances("k")[asset]
    return entry.free, entry.locked


# ---------------------------------------------------------------------------- engine


def test_limit_buy_locks_quote_then_fills_at_limit_with_commission_in_base() -> None:
    engine = make_engine()
    order = limit_order(engine, "BUY", "0.01", "64000")
    assert order.status == "NEW"
    assert balance(engine, "USDT") == (D("9360"), D("640"))

    engine.set_price("BTCUSDT", D("64000.01"))  # not crossed yet
    assert order.status == "NEW"
    engine.set_price("BTCUSDT", D("63500"))

    assert order.status == "FILLED"
    assert [(f.price, f.qty, f.commission, f.commission_asset) for f in order.fills] == [
        (D("64000"), D("0.01"), D("0.00001000"), "BTC")
    ]
    assert order.cummulative_quote_qty == D("640")
    assert balance(engine, "USDT") == (D("9360"), D("0"))
    assert balance(engine, "BTC") == (D("1.00999"), D("0"))


def test_sell_commission_is_charged_in_quote() -> None:
    engine = make_engine()
    order = engine.place_order("k", symbol="BTCUSDT", side="SELL", order_type="MARKET", quantity=D("0.1"))
    assert order.status == "FILLED"
    assert order.fills[0].commission == D("6.5") and order.fills[0].commission_asset == "USDT"
    assert balance(engine, "USDT") == (D("10000") + D("6500") - D("6.5"), D("0"))
    assert balance(engine, "BTC") == (D("0.9"), D("0"))


def test_marketable_limit_fills_at_last_price_and_refunds_the_difference() -> None:
    engine = make_engine()
    order = limit_order(engine, "BUY", "0.01", "66000")
    assert order.status == "FILLED"
    assert order.fills[0].price == D("65000") and not order.fills[0].is_maker
    assert balance(engine, "USDT") == (D("9350"), D("0"))


def test_market_slippage_is_adverse_and_on_tick() -> None:
    engine = make_engine(market_slippage_bps=D("10"))
    buy = engine.place_order("k", symbol="BTCUSDT", side="BUY", order_type="MARKET", quantity=D("0.001"))
    sell = engine.place_order("k", symbol="BTCUSDT", side="SELL", order_type="MARKET", quantity=D("0.001"))
    assert buy.fills[0].price == D("65065.00")
    assert sell.fills[0].price == D("64935.00")


def test_quote_order_qty_market_buy_spends_at_most_the_quote_amount() -> None:
    engine = make_engine()
    order = engine.place_order("k", symbol="BTCUSDT", side="BUY", order_type="MARKET", quote_order_qty=D("100"))
    assert order.executed_qty == D("0.00153")  # 100 / 65000 = 0.0015384..., down to the 0.00001 step
    assert order.cummulative_quote_qty == D("99.45")
    assert order.orig_quote_order_qty == D("100")


def test_partial_fill_ratio_fills_half_the_rest_per_crossing_move() -> None:
    engine = make_engine()
    order = limit_order(engine, "SELL", "0.4", "66000")
    engine.set_price("BTCUSDT", D("66000"), partial_fill_ratio=D("0.5"))
    assert (order.status, order.executed_qty) == ("PARTIALLY_FILLED", D("0.2"))
    engine.set_price("BTCUSDT", D("66100"), partial_fill_ratio=D("0.5"))
    assert (order.status, order.executed_qty) == ("PARTIALLY_FILLED", D("0.3"))
    assert balance(engine, "BTC") == (D("0.6"), D("0.1"))
    engine.set_price("BTCUSDT", D("66200"))  # no ratio: the rest fills
    assert (order.status, order.executed_qty) == ("FILLED", D("0.4"))
    assert len(order.fills) == 3


def test_partial_fill_remainder_below_one_step_fills_completely() -> None:
    engine = make_engine()
    order = limit_order(engine, "SELL", "0.00001", "600000")
    engine.set_price("BTCUSDT", D("600000"), partial_fill_ratio=D("0.5"))
    assert (order.status, order.executed_qty) == ("FILLED", D("0.00001"))


def test_cancel_releases_locked_funds_and_unknown_cancel_is_2011() -> None:
    engine = make_engine()
    order = limit_order(engine, "SELL", "0.5", "70000")
    assert balance(engine, "BTC") == (D("0.5"), D("0.5"))
    engine.cancel_order("k", "BTCUSDT", client_order_id=order.client_order_id)
    assert order.status == "CANCELED"
    assert balance(engine, "BTC") == (D("1"), D("0"))
    with pytest.raises(SimulatorError) as raised:
        engine.cancel_order("k", "BTCUSDT", order_id=order.order_id)
    assert (raised.value.code, raised.value.msg) == (-2011, "Unknown order sent.")
    with pytest.raises(SimulatorError) as raised:
        engine.get_order("k", "ETHUSDT", order_id=order.order_id)  # right id, wrong symbol
    assert raised.value.code == -2013


@pytest.mark.parametrize(
    ("kwargs", "code", "msg"),
    [
        ({"quantity": D("0.001"), "price": D("60000.001")}, -1013, "Filter failure: PRICE_FILTER"),
        ({"quantity": D("0.000015"), "price": D("60000")}, -1013, "Filter failure: LOT_SIZE"),
        ({"quantity": D("0.00001"), "price": D("60000")}, -1013, "Filter failure: NOTIONAL"),
        ({"quantity": D("1"), "price": D("60000")}, -2010, "Account has insufficient balance for requested action."),
    ],
)
def test_filters_and_balance_use_binance_codes(kwargs: dict[str, Any], code: int, msg: str) -> None:
    engine = make_engine()
    with pytest.raises(SimulatorError) as raised:
        engine.place_order("k", symbol="BTCUSDT", side="BUY", order_type="LIMIT", time_in_force="GTC", **kwargs)
    assert (raised.value.code, raised.value.msg) == (code, msg)
    assert engine.orders() == []
    assert balance(engine, "USDT") == (D("10000"), D("0"))


def test_duplicate_client_id_rejected_only_while_the_first_order_is_open() -> None:
    engine = make_engine()
    first = limit_order(engine, "BUY", "0.001", "60000", client_order_id="grid-1")
    with pytest.raises(SimulatorError) as raised:
        limit_order(engine, "BUY", "0.01", "2000", symbol="ETHUSDT", client_order_id="grid-1")
    assert (raised.value.code, raised.value.msg) == (-2010, "Duplicate order sent.")
    engine.cancel_order("k", "BTCUSDT", order_id=first.order_id)
    again = limit_order(engine, "BUY", "0.001", "60000", client_order_id="grid-1")
    assert engine.get_order("k", "BTCUSDT", client_order_id="grid-1") is again


def test_generated_client_ids_and_order_ids_increase() -> None:
    engine = make_engine()
    orders = [
        engine.place_order("k", symbol="BTCUSDT", side="BUY", order_type="MARKET", quantity=D("0.001"))
        for _ in range(3)
    ]
    assert [o.order_id for o in orders] == sorted({o.order_id for o in orders})
    assert len({o.client_order_id for o in orders}) == 3


def test_ioc_expires_and_limit_maker_rejects_when_marketable() -> None:
    engine = make_engine()
    ioc = limit_order(engine, "BUY", "0.001", "60000", time_in_force="IOC")
    assert ioc.status == "EXPIRED" and balance(engine, "USDT") == (D("10000"), D("0"))
    with pytest.raises(SimulatorError) as raised:
        limit_order(engine, "BUY", "0.001", "66000", time_in_force=None, order_type="LIMIT_MAKER")
    assert raised.value.code == -2010


def test_real_exchange_info_filters_and_closed_market() -> None:
    if not REAL_EXCHANGE_INFO.exists():
        pytest.skip(f"{REAL_EXCHANGE_INFO} is absent (shared data not checked out)")
    engine = Engine(json.loads(REAL_EXCHANGE_INFO.read_text()))
    engine.create_account("k", "s", {"USDT": D("1000"), "BTC": D("1")})
    pepe = engine.markets["PEPEUSDT"]
    assert (pepe.tick_size, pepe.step_size, pepe.notional_filter) == (D("1E-8"), D("1.00"), "NOTIONAL")
    engine.set_price("PEPEUSDT", D("0.00000123"))
    order = limit_order(engine, "BUY", "10000000", "0.00000120", symbol="PEPEUSDT")
    assert order.status == "NEW"
    with pytest.raises(SimulatorError, match="LOT_SIZE"):
        limit_order(engine, "BUY", "10000000.5", "0.0000012", symbol="PEPEUSDT")
    with pytest.raises(SimulatorError) as raised:
        engine.place_order("k", symbol="BCCBTC", side="SELL", order_type="MARKET", quantity=D("1"))
    assert (raised.value.code, raised.value.msg) == (-1013, "Market is closed.")
    with pytest.raises(SimulatorError) as raised:
        engine.place_order("k", symbol="NOPEUSDT", side="SELL", order_type="MARKET", quantity=D("1"))
    assert raised.value.code == -1121


def _listing(symbol: str, base: str, like: str = "SOLUSDT") -> dict[str, Any]:
    """An exchangeInfo ``symbols[]`` entry for a new market, with the filters of an existing one."""
    raw = next(item for item in load_exchange_info(None)["symbols"] if item["symbol"] == like)
    return {**json.loads(json.dumps(raw)), "symbol": symbol, "baseAsset": base}


def test_a_market_listed_later_trades_and_a_delisting_cancels_its_orders() -> None:
    engine = make_engine()
    with pytest.raises(SimulatorError) as raised:
        engine.set_price("NEWUSDT", D("2"))
    assert raised.value.code == -1121

    rules = engine.list_market(_listing("NEWUSDT", "NEW"))

    assert (rules.symbol, rules.base_asset, rules.tick_size) == ("NEWUSDT", "NEW", D("0.01"))
    assert "NEWUSDT" in [item["symbol"] for item in engine.exchange_info["symbols"]]
    engine.set_price("NEWUSDT", D("2"))
    order = limit_order(engine, "BUY", "10", "1.5", symbol="NEWUSDT")
    assert balance(engine, "USDT") == (D("9985"), D("15"))
    engine.list_market({**_listing("NEWUSDT", "NEW"), "status": "BREAK"})  # listed again: rules replaced
    assert engine.markets["NEWUSDT"].status == "BREAK"
    assert [item["symbol"] for item in engine.exchange_info["symbols"]].count("NEWUSDT") == 1

    assert engine.delist_market("NEWUSDT") == [order]

    assert order.status == "CANCELED"
    assert balance(engine, "USDT") == (D("10000"), D("0"))
    assert "NEWUSDT" not in [item["symbol"] for item in engine.exchange_info["symbols"]]
    with pytest.raises(SimulatorError):
        engine.price("NEWUSDT")


def test_klines_synthesized_from_price_history() -> None:
    engine = Engine(load_exchange_info(None))
    minute = 60_000
    base = (int(time.time() * 1000) // minute - 3) * minute
    for offset, price in [(0, "100"), (10_000, "105"), (20_000, "98"), (2 * minute + 5, "101")]:
        engine.set_price("ETHUSDT", D(price), at_ms=base + offset)
    klines = engine.klines("ETHUSDT", minute)
    assert [(k.open, k.high, k.low, k.close) for k in klines[:3]] == [
        (D("100"), D("105"), D("98"), D("98")),
        (D("98"), D("98"), D("98"), D("98")),  # a quiet minute repeats the last close
        (D("101"), D("101"), D("101"), D("101")),
    ]
    assert klines[0].open_time == base and klines[0].close_time == base + minute - 1
    assert [k.open_time for k in engine.klines("ETHUSDT", minute, limit=2)] == [k.open_time for k in klines[-2:]]
    later = engine.klines("ETHUSDT", minute, start_ms=base + minute, limit=2)
    assert [(k.open_time, k.open) for k in later] == [(base + minute, D("98")), (base + 2 * minute, D("101"))]


def test_candles_load_gzip_and_aggregate(tmp_path: Path) -> None:
    path = tmp_path / "c.csv.gz"
    with gzip.open(path, "wt") as handle:
        handle.write("timestamp_ms,open,high,low,close,volume\n")
        for i in range(10):
            handle.write(f"{1_699_999_800_000 + i * 60_000},{100 + i},{101 + i},{99 + i},{100.5 + i},2\n")
    candles = load_candles(path)
    assert len(candles) == 10 and candles[0].open == D("100") and candles[3].close == D("103.5")
    engine = Engine(load_exchange_info(None))
    for candle in candles:
        engine.record_candle("SOLUSDT", candle, 60_000)
    five = engine.klines("SOLUSDT", 300_000)
    assert [(k.open, k.high, k.low, k.close, k.volume) for k in five] == [
        (D("100"), D("105"), D("99"), D("104.5"), D("10")),
        (D("105"), D("110"), D("104"), D("109.5"), D("10")),
    ]
    with pytest.raises(SimulatorError):
        engine.klines("SOLUSDT", 1_000)


def test_real_candles_file_loads() -> None:
    if not REAL_CANDLES.exists():
        pytest.skip(f"{REAL_CANDLES} is absent (shared data not checked out)")
    candles = load_candles(REAL_CANDLES)
    assert len(candles) > 10_000
    assert all(b.open_time - a.open_time >= 3_600_000 for a, b in zip(candles, candles[1:], strict=False))


def test_fault_rules_are_consumed_in_order() -> None:
    faults = FaultInjector()
    faults.add(
        [
            FaultRule.from_json({"match": "POST /api/v3/order", "action": "error_500", "count": 2}),
            FaultRule.from_json({"match": "/api/v3/*", "action": "error_429"}),
        ]
    )
    assert faults.take("GET", "/api/v3/order").action == "error_429"  # type: ignore[union-attr]
    assert faults.take("POST", "/api/v3/order").action == "error_500"  # type: ignore[union-attr]
    assert faults.take("POST", "/api/v3/order").action == "error_500"  # type: ignore[union-attr]
    assert faults.take("POST", "/api/v3/order") is None
    with pytest.raises(ValueError):
        FaultRule.from_json({"match": "*", "action": "explode"})


def test_rate_fault_rules_fire_on_a_share_of_requests_and_pass_the_rest_on() -> None:
    def fired(rule: dict[str, Any], requests: int = 2000) -> list[str | None]:
        faults = FaultInjector()
        faults.add(
            [
                FaultRule.from_json(rule),
                FaultRule.from_json({"match": "POST /api/v3/order", "action": "error_429", "every": 4}),
            ]
        )
        return [getattr(faults.take("POST", "/api/v3/order"), "action", None) for _ in range(requests)]

    seeded = {"match": "POST /api/v3/order", "action": "error_500", "probability": 0.1, "seed": 7}
    outcomes = fired(seeded)
    assert outcomes == fired(seeded)  # the seed makes the sequence repeatable
    assert 150 <= outcomes.count("error_500") <= 250  # ~10 %, and the rule never runs out
    # what the first rule lets through reaches the second: every 4th of those gets a 429
    assert outcomes.count("error_429") == (2000 - outcomes.count("error_500")) // 4

    every = fired({"match": "POST /api/v3/order", "action": "error_500", "every": 10, "count": 3}, requests=40)
    assert [i for i, action in enumerate(every) if action == "error_500"] == [9, 19, 29]  # then used up

    faults = FaultInjector()
    faults.add([FaultRule.from_json({"match": "POST /api/v3/order", "action": "timeout_after_accept", "every": 2})])
    assert faults.take("GET", "/api/v3/order") is None  # not matching: does not advance the rate
    assert faults.take("POST", "/api/v3/order") is None
    assert faults.take("POST", "/api/v3/order").action == "timeout_after_accept"  # type: ignore[union-attr]
    [rule] = faults.rules()
    assert (rule.count, rule.fired, rule.to_json()["every"]) == (None, 1, 2)
    assert faults.injected() == {"timeout_after_accept": 1}
    faults.clear()
    assert faults.rules() == [] and faults.injected() == {}
    for bad in ({"probability": 0}, {"probability": 1.5}, {"every": 0}, {"every": 2, "probability": 0.5}):
        with pytest.raises(ValueError):
            FaultRule.from_json({"match": "*", "action": "error_500", **bad})


def test_weight_tracker_rolls_over_one_minute() -> None:
    tracker = WeightTracker(limit=10)
    assert tracker.add("ip", 6, now=0.0) == 6
    assert tracker.add("ip", 6, now=30.0) == 12
    assert tracker.retry_after_s("ip", now=30.0) == 31
    assert tracker.used("ip", now=60.5) == 6
    assert tracker.total_weight == 12


def test_format_decimal_like_binance() -> None:
    assert format_decimal(D("65000")) == "65000.00000000"
    assert format_decimal(D("0.000000001")) == "0.000000001"


def test_control_api_refuses_non_loopback_clients() -> None:
    simulator = SimulatorApp(make_engine())
    app = simulator.build()

    async def call(peer: str) -> int:
        transport = mock.Mock()
        transport.get_extra_info.return_value = (peer, 40000)
        request = make_mocked_request("GET", "/_sim/stats", app=app, transport=transport)
        response = await simulator._loopback_only(request, simulator._sim_stats)
        return response.status

    assert asyncio.run(call("10.1.2.3")) == 403
    assert asyncio.run(call("127.0.0.1")) == 200
    assert asyncio.run(call("::1")) == 200


# ------------------------------------------------------------------------ raw HTTP


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorProcess]:
    with SimulatorProcess() as process:
        yield process


@pytest.fixture
def fresh(sim: SimulatorProcess) -> SimulatorProcess:
    sim.reset()
    sim.create_account("raw-key", "raw-secret", {"USDT": "1000"})
    sim.set_price("BTCUSDT", "65000")
    return sim


def http(
    sim: SimulatorProcess,
    method: str,
    path: str,
    params: dict[str, Any] | None = None,
    *,
    secret: str | None = None,
    api_key: str | None = None,
    body: bool = False,
) -> tuple[int, dict[str, str], Any]:
    query = urllib.parse.urlencode(params or {})
    if secret is not None:
        signature = hmac.new(secret.encode(), query.encode(), hashlib.sha256).hexdigest()
        query += f"&signature={signature}"
    url = sim.url + path + ("" if body or not query else f"?{query}")
    request = urllib.request.Request(url, data=query.encode() if body else None, method=method)
    if api_key is not None:
        request.add_header("X-MBX-APIKEY", api_key)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            status, headers, raw = response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        status, headers, raw = error.code, dict(error.headers), error.read()
    try:
        return status, headers, json.loads(raw)
    except json.JSONDecodeError:
        return status, headers, raw.decode()


def signed_params(**params: Any) -> dict[str, Any]:
    return {**params, "timestamp": int(time.time() * 1000)}


def test_signed_order_via_form_body_and_query(fresh: SimulatorProcess) -> None:
    order = {
        "symbol": "BTCUSDT",
        "side": "BUY",
        "type": "LIMIT",
        "timeInForce": "GTC",
        "quantity": "0.001",
        "price": "60000",
        "newClientOrderId": "raw-1",
    }
    status, headers, body = http(
        fresh, "POST", "/api/v3/order", signed_params(**order), secret="raw-secret", api_key="raw-key", body=True
    )
    assert status == 200, body
    assert body["clientOrderId"] == "raw-1" and body["status"] == "NEW" and body["fills"] == []
    assert headers["X-MBX-USED-WEIGHT-1M"] == "1"
    status, _, body = http(
        fresh,
        "GET",
        "/api/v3/order",
        signed_params(symbol="BTCUSDT", origClientOrderId="raw-1"),
        secret="raw-secret",
        api_key="raw-key",
    )
    assert status == 200 and body["price"] == "60000.00000000" and body["origQty"] == "0.00100000"
    assert fresh.balances("raw-key")["USDT"] == {"free": "940.00000000", "locked": "60.00000000"}


@pytest.mark.parametrize(
    ("api_key", "secret", "stamp_offset", "status", "code"),
    [
        (None, "raw-secret", 0, 401, -2014),
        ("who", "raw-secret", 0, 401, -2015),
        ("raw-key", "wrong", 0, 400, -1022),
        ("raw-key", "raw-secret", -6000, 400, -1021),
        ("raw-key", "raw-secret", 5000, 400, -1021),
    ],
)
def test_signed_endpoint_auth_errors(
    fresh: SimulatorProcess, api_key: str | None, secret: str, stamp_offset: int, status: int, code: int
) -> None:
    params = {"timestamp": int(time.time() * 1000) + stamp_offset}
    got_status, _, body = http(fresh, "GET", "/api/v3/account", params, secret=secret, api_key=api_key)
    assert (got_status, body["code"]) == (status, code)


def test_weight_limit_answers_429_with_retry_after(fresh: SimulatorProcess) -> None:
    fresh.configure(weight_limit=45)
    used = [int(http(fresh, "GET", "/api/v3/exchangeInfo")[1]["X-MBX-USED-WEIGHT-1M"]) for _ in range(2)]
    assert used == [20, 40]
    status, headers, body = http(fresh, "GET", "/api/v3/exchangeInfo")
    assert (status, body["code"]) == (429, -1003)
    assert int(headers["Retry-After"]) >= 1
    fresh.reset()
    assert http(fresh, "GET", "/api/v3/ping")[0] == 200


def test_public_endpoints(fresh: SimulatorProcess) -> None:
    status, headers, body = http(fresh, "GET", "/api/v3/exchangeInfo", {"symbols": '["ETHBTC","BTCUSDT"]'})
    assert status == 200 and [s["symbol"] for s in body["symbols"]] == ["ETHBTC", "BTCUSDT"]
    assert http(fresh, "GET", "/api/v3/exchangeInfo", {"symbol": "NOPE"})[2]["code"] == -1121
    assert http(fresh, "GET", "/api/v3/ticker/price", {"symbol": "BTCUSDT"})[2] == {
        "symbol": "BTCUSDT",
        "price": "65000.00000000",
    }
    before = int(http(fresh, "GET", "/api/v3/ticker/price", {"symbol": "BTCUSDT"})[1]["X-MBX-USED-WEIGHT-1M"])
    after = int(http(fresh, "GET", "/api/v3/ticker/price")[1]["X-MBX-USED-WEIGHT-1M"])
    assert after - before == 4  # 2 with a symbol, 4 without
    assert http(fresh, "GET", "/api/v3/ticker/bookTicker", {"symbol": "BTCUSDT"})[2]["askPrice"] == "65000.00000000"
    status, _, klines = http(fresh, "GET", "/api/v3/klines", {"symbol": "BTCUSDT", "interval": "1m", "limit": 5})
    assert status == 200 and klines[-1][4] == "65000.00000000"
    status, _, body = http(fresh, "GET", "/sapi/v1/capital/config/getall")
    assert (status, body["code"]) == (404, -1020)


def test_markets_listed_and_delisted_over_the_control_api(fresh: SimulatorProcess) -> None:
    assert http(fresh, "GET", "/api/v3/exchangeInfo", {"symbol": "LATERUSDT"})[2]["code"] == -1121
    assert fresh.list_market(_listing("LATERUSDT", "LATER")) == {"symbol": "LATERUSDT", "status": "TRADING"}
    try:
        status, _, body = http(fresh, "GET", "/api/v3/exchangeInfo", {"symbol": "LATERUSDT"})
        assert status == 200 and body["symbols"][0]["baseAsset"] == "LATER"
        assert "LATERUSDT" in [item["symbol"] for item in http(fresh, "GET", "/api/v3/exchangeInfo")[2]["symbols"]]
        with pytest.raises(RuntimeError, match="HTTP 400"):
            fresh.list_market({"symbol": "BROKEN"})  # no baseAsset
    finally:
        assert fresh.delist_market("LATERUSDT") == {"symbol": "LATERUSDT", "cancelled_order_ids": []}
    assert http(fresh, "GET", "/api/v3/exchangeInfo", {"symbol": "LATERUSDT"})[2]["code"] == -1121
    with pytest.raises(RuntimeError, match="HTTP 404"):
        fresh.delist_market("LATERUSDT")


def test_control_orders_shape_and_faults(fresh: SimulatorProcess) -> None:
    fresh.create_account("raw-key", "raw-secret", {"USDT": "1000"})
    fresh.add_fault("POST /api/v3/order", "error_500")
    order = {"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.001"}
    status, _, body = http(
        fresh, "POST", "/api/v3/order", signed_params(**order), secret="raw-secret", api_key="raw-key", body=True
    )
    assert status == 500 and "Internal Server Error" in body  # plain text, like a failing proxy
    assert fresh.orders() == []
    status, _, body = http(
        fresh, "POST", "/api/v3/order", signed_params(**order), secret="raw-secret", api_key="raw-key", body=True
    )
    assert status == 200 and body["status"] == "FILLED"
    [placed] = fresh.orders(api_key="raw-key")
    assert set(placed) == {
        "api_key",
        "symbol",
        "orderId",
        "clientOrderId",
        "side",
        "type",
        "price",
        "origQty",
        "executedQty",
        "cummulativeQuoteQty",
        "status",
        "time",
        "fills",
    }
    assert placed["fills"] == [
        {"price": "65000.00000000", "qty": "0.00100000", "commission": "0.00000100", "commissionAsset": "BTC"}
    ]
    assert fresh.stats()["requests_by_endpoint"]["POST /api/v3/order"] == 2
    [detailed] = fresh.orders(api_key="raw-key", fill_detail=True)
    [fill] = detailed["fills"]
    assert fill == {**placed["fills"][0], "tradeId": fill["tradeId"], "time": placed["time"]}
    assert isinstance(fill["tradeId"], int)


def test_delay_fault_and_fault_list(fresh: SimulatorProcess) -> None:
    fresh.add_fault("GET /api/v3/ping", "delay_ms", delay_ms=300)
    fresh.add_fault("GET /api/v3/time", "error_500", count=3)
    assert [rule["action"] for rule in fresh._request("GET", "/_sim/faults")["faults"]] == ["delay_ms", "error_500"]
    started = time.monotonic()
    assert http(fresh, "GET", "/api/v3/ping")[0] == 200
    assert time.monotonic() - started >= 0.3
    assert http(fresh, "GET", "/api/v3/time")[0] == 500
    fresh.clear_faults()
    assert http(fresh, "GET", "/api/v3/time")[0] == 200


def test_rate_fault_over_http_and_injected_counts(fresh: SimulatorProcess) -> None:
    rules = fresh.add_fault("GET /api/v3/time", "error_500", every=3)["faults"]
    assert rules[0]["every"] == 3 and rules[0]["count"] is None  # rate rules stay until cleared
    statuses = [http(fresh, "GET", "/api/v3/time")[0] for _ in range(9)]
    assert statuses == [200, 200, 500] * 3
    fresh.add_fault("GET /api/v3/ping", "error_429")  # a count rule, as before: once
    assert [http(fresh, "GET", "/api/v3/ping")[0] for _ in range(2)] == [429, 200]
    assert fresh.stats()["faults_injected"] == {"error_500": 3, "error_429": 1}
    assert fresh._request("GET", "/_sim/faults")["faults"][0]["fired"] == 3
    fresh.clear_faults()
    assert fresh.stats()["faults_injected"] == {}
    with pytest.raises(RuntimeError, match="probability"):
        fresh._request("POST", "/_sim/faults", {"match": "*", "action": "error_500", "probability": 2})


def test_candle_replay_moves_price_and_fills(tmp_path: Path) -> None:
    path = tmp_path / "replay.csv"
    rows = ["timestamp_ms,open,high,low,close,volume"]
    lows = ["99", "99", "99", "99", "90", "99"]
    for i, low in enumerate(lows):
        rows.append(f"{1_700_000_000_000 + i * 60_000},100,101,{low},100,1")
    path.write_text("\n".join(rows) + "\n")
    args = ["--candles", str(path), "--symbol", "SOLUSDT", "--speed", "150"]  # 0.4 s per candle
    with SimulatorProcess(extra_args=args) as replay:
        replay.create_account("r", "s", {"USDT": "1000"})
        status, _, body = http(
            replay,
            "POST",
            "/api/v3/order",
            signed_params(symbol="SOLUSDT", side="BUY", type="LIMIT", timeInForce="GTC", quantity="1", price="95"),
            secret="s",
            api_key="r",
            body=True,
        )
        assert status == 200 and body["status"] == "NEW", body
        deadline = time.monotonic() + 10
        klines: list[Any] = []
        while time.monotonic() < deadline and len(klines) < len(lows):
            time.sleep(0.1)
            klines = http(replay, "GET", "/api/v3/klines", {"symbol": "SOLUSDT", "interval": "1m"})[2]
        assert len(klines) == len(lows)
        assert klines[4][3] == "90.00000000"
        [order] = replay.orders("r")
        assert order["status"] == "FILLED" and order["fills"][0]["price"] == "95.00000000"


def test_process_stops_cleanly_on_sigterm() -> None:
    process = SimulatorProcess(exchange_info=DEFAULT_EXCHANGE_INFO).start()
    process_handle = process._process
    assert process_handle is not None
    process.stop()
    assert process_handle.returncode == 0, process.output()
