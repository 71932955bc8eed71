"""The real, unmodified ccxt ``binance`` client against the simulator.

Configured only through :func:`exchanges.simulator.testing.ccxt_binance_config`, which the
production adapter reuses. No database: ``pytest -p no:django exchanges/tests/test_simulator_ccxt.py``.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import ccxt
import ccxt.async_support as ccxt_async
import pytest

from exchanges.simulator.testing import SimulatorProcess, ccxt_binance_config

SHARED_EXCHANGE = Path(__file__).resolve().parents[3] / "shared" / "data" / "exchange"
REAL_EXCHANGE_INFO = SHARED_EXCHANGE / "binance_exchangeInfo_subset.json"
REAL_MARKETS_CCXT = SHARED_EXCHANGE / "binance_markets_subset_ccxt.json"

API_KEY = "ccxt-key"
API_SECRET = "ccxt-secret"
Factory = Callable[..., ccxt.binance]


@pytest.fixture(scope="module")
def sim() -> Iterator[SimulatorProcess]:
    with SimulatorProcess() as process:
        yield process


@pytest.fixture
def fresh(sim: SimulatorProcess) -> SimulatorProcess:
    sim.reset()
    sim.create_account(API_KEY, API_SECRET, {"USDT": "10000", "BTC": "0.5"})
    sim.set_price("BTCUSDT", "65000")
    return sim


@pytest.fixture
def make_exchange(fresh: SimulatorProcess) -> Factory:
    """A new ccxt client per call (ccxt remembers a successful login, which changes -2015 handling)."""

    def factory(api_key: str = API_KEY, api_secret: str = API_SECRET, **overrides: Any) -> ccxt.binance:
        config = ccxt_binance_config(fresh.url, api_key, api_secret)
        config.update({"enableRateLimit": False, "timeout": 3000, **overrides})
        exchange = ccxt.binance(config)
        exchange.load_markets()
        return exchange

    return factory


@pytest.fixture
def exchange(make_exchange: Factory) -> ccxt.binance:
    return make_exchange()


def test_every_ccxt_base_url_points_at_the_simulator(exchange: ccxt.binance, fresh: SimulatorProcess) -> None:
    # a key ccxt adds in a later version would silently talk to the real Binance: fail loudly instead
    assert all(str(url).startswith(fresh.url) for url in exchange.urls["api"].values())


def test_load_markets_parses_the_built_in_set(exchange: ccxt.binance) -> None:
    assert set(exchange.markets) == {
        "BTC/USDT",
        "ETH/USDT",
        "SOL/USDT",
        "BNB/USDT",
        "XRP/USDT",
        "PEPE/USDT",
        "ETH/BTC",
    }
    btc = exchange.market("BTC/USDT")
    assert (btc["precision"]["price"], btc["precision"]["amount"]) == (0.01, 0.00001)
    assert (btc["limits"]["amount"]["min"], btc["limits"]["cost"]["min"]) == (0.00001, 5.0)
    assert btc["spot"] and btc["active"]
    pepe = exchange.market("PEPE/USDT")
    assert (pepe["precision"]["price"], pepe["precision"]["amount"]) == (1e-08, 1.0)
    assert exchange.market("ETH/BTC")["limits"]["cost"]["min"] == 0.0001
    assert exchange.price_to_precision("XRP/USDT", 0.123456) == "0.1235"


def test_load_markets_parses_the_real_exchange_info_subset() -> None:
    if not REAL_EXCHANGE_INFO.exists():
        pytest.skip(f"{REAL_EXCHANGE_INFO} is absent (shared data not checked out)")
    expected = json.loads(REAL_MARKETS_CCXT.read_text())
    with SimulatorProcess(exchange_info=REAL_EXCHANGE_INFO) as real:
        real.create_account(API_KEY, API_SECRET, {"BTC": "1"})
        config = {**ccxt_binance_config(real.url, API_KEY, API_SECRET), "enableRateLimit": False}
        exchange = ccxt.binance(config)
        markets = exchange.load_markets()
        assert len(markets) == 22
        for symbol, reference in expected.items():
            parsed = markets[symbol]
            for key in ("id", "base", "quote", "active", "precision", "limits"):
                assert parsed[key] == reference[key], (symbol, key)
        # a symbol in BREAK is closed for trading, with Binance's message and ccxt's error class
        with pytest.raises(ccxt.MarketClosed):
            exchange.create_order("BCC/BTC", "market", "sell", 1)


def test_fetch_ticker_and_ohlcv(exchange: ccxt.binance, fresh: SimulatorProcess) -> None:
    fresh.set_price("BTCUSDT", "65100.5")
    ticker = exchange.fetch_ticker("BTC/USDT")
    assert (ticker["last"], ticker["bid"], ticker["ask"]) == (65100.5, 65100.5, 65100.5)
    assert exchange.fetch_ticker("BTC/USDT", {"rolling": False})["symbol"] == "BTC/USDT"
    candles = exchange.fetch_ohlcv("BTC/USDT", "1m", limit=3)
    assert candles and candles[-1][4] == 65100.5


def test_limit_order_lifecycle_by_id_and_client_id(exchange: ccxt.binance, fresh: SimulatorProcess) -> None:
    order = exchange.create_order("BTC/USDT", "limit", "buy", 0.01, 64000, {"clientOrderId": "grid-1-0"})
    assert (order["clientOrderId"], order["status"], order["price"], order["amount"]) == (
        "grid-1-0",
        "open",
        64000.0,
        0.01,
    )
    by_id = exchange.fetch_order(order["id"], "BTC/USDT")
    by_client_id = exchange.fetch_order(None, "BTC/USDT", {"origClientOrderId": "grid-1-0"})
    assert by_id["id"] == by_client_id["id"] == order["id"]
    assert by_client_id["clientOrderId"] == "grid-1-0"

    exchange.create_order("ETH/USDT", "limit", "buy", 0.01, 2000)
    assert [o["id"] for o in exchange.fetch_open_orders("BTC/USDT")] == [order["id"]]
    assert len(exchange.fetch_open_orders()) == 2
    assert exchange.fetch_balance()["USDT"]["used"] == 660.0

    canceled = exchange.cancel_order(order["id"], "BTC/USDT")
    assert canceled["status"] == "canceled"
    assert exchange.fetch_order(order["id"], "BTC/USDT")["status"] == "canceled"
    assert [o["symbol"] for o in exchange.fetch_open_orders()] == ["ETH/USDT"]


def test_market_order_fills_with_commission_in_received_asset(exchange: ccxt.binance, fresh: SimulatorProcess) -> None:
    buy = exchange.create_order("BTC/USDT", "market", "buy", 0.01)
    assert (buy["status"], buy["filled"], buy["average"], buy["cost"]) == ("closed", 0.01, 65000.0, 650.0)
    assert buy["fee"] == {"currency": "BTC", "cost": 0.00001}
    sell = exchange.create_order("BTC/USDT", "market", "sell", 0.01)
    assert sell["fee"] == {"currency": "USDT", "cost": 0.65}
    quote_buy = exchange.create_order("BTC/USDT", "market", "buy", None, None, {"quoteOrderQty": 100})
    assert quote_buy["filled"] == 0.00153 and quote_buy["cost"] == pytest.approx(99.45)

    balances = fresh.balances(API_KEY)
    assert Decimal(balances["BTC"]["free"]) == Decimal("0.5") + Decimal("0.00999") - Decimal("0.01") + Decimal(
        "0.00153"
    ) - Decimal("0.00000153")
    trades = exchange.fetch_my_trades("BTC/USDT")
    assert [(t["side"], t["fee"]["currency"]) for t in trades] == [("buy", "BTC"), ("sell", "USDT"), ("buy", "BTC")]


def test_price_move_fills_resting_limit(exchange: ccxt.binance, fresh: SimulatorProcess) -> None:
    buy = exchange.create_order("BTC/USDT", "limit", "buy", 0.01, 64000)
    sell = exchange.create_order("BTC/USDT", "limit", "sell", 0.01, 66000)
    fresh.set_price("BTCUSDT", "64500")
    assert exchange.fetch_order(buy["id"], "BTC/USDT")["status"] == "open"
    fresh.set_price("BTCUSDT", "63990")
    filled = exchange.fetch_order(buy["id"], "BTC/USDT")
    assert (filled["status"], filled["average"], filled["filled"]) == ("closed", 64000.0, 0.01)
    assert exchange.fetch_order(sell["id"], "BTC/USDT")["status"] == "open"
    fresh.set_price("BTCUSDT", "66000")
    assert exchange.fetch_order(sell["id"], "BTC/USDT")["status"] == "closed"


def test_partial_fills_with_ratio(exchange: ccxt.binance, fresh: SimulatorProcess) -> None:
    order = exchange.create_order("BTC/USDT", "limit", "buy", 0.04, 64000)
    fresh.set_price("BTCUSDT", "63900", partial_fill_ratio="0.5")
    first = exchange.fetch_order(order["id"], "BTC/USDT")
    assert (first["status"], first["filled"], first["remaining"]) == ("open", 0.02, 0.02)
    assert exchange.fetch_open_orders("BTC/USDT")[0]["info"]["status"] == "PARTIALLY_FILLED"
    fresh.set_price("BTCUSDT", "63800", partial_fill_ratio="0.5")
    assert exchange.fetch_order(order["id"], "BTC/USDT")["filled"] == 0.03
    fresh.set_price("BTCUSDT", "63700")
    assert exchange.fetch_order(order["id"], "BTC/USDT")["status"] == "closed"
    assert [float(f["qty"]) for f in fresh.orders(API_KEY)[0]["fills"]] == [0.02, 0.01, 0.01]


def test_insufficient_balance(exchange: ccxt.binance) -> None:
    with pytest.raises(ccxt.InsufficientFunds):
        exchange.create_order("BTC/USDT", "limit", "buy", 1, 64000)
    with pytest.raises(ccxt.InsufficientFunds):
        exchange.create_order("BTC/USDT", "market", "sell", 0.6)


def test_filter_failures(exchange: ccxt.binance, fresh: SimulatorProcess) -> None:
    # ccxt rounds prices and amounts itself, so send raw values to reach the exchange's filters
    raw = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC"}
    with pytest.raises(ccxt.InvalidOrder, match="PRICE_FILTER"):
        exchange.private_post_order({**raw, "quantity": "0.001", "price": "60000.005"})
    with pytest.raises(ccxt.InvalidOrder, match="LOT_SIZE"):
        exchange.private_post_order({**raw, "quantity": "0.000015", "price": "60000"})
    # ccxt maps Binance's -1013 NOTIONAL failure to BadRequest, not InvalidOrder; so does the real API
    with pytest.raises(ccxt.BadRequest, match="Filter failure: NOTIONAL"):
        exchange.create_order("BTC/USDT", "limit", "buy", 0.00001, 60000)
    assert fresh.orders() == []


def test_duplicate_client_order_id_among_open_orders(exchange: ccxt.binance) -> None:
    exchange.create_order("BTC/USDT", "limit", "buy", 0.001, 60000, {"clientOrderId": "dup"})
    with pytest.raises(ccxt.InvalidOrder, match="Duplicate order sent"):
        exchange.create_order("BTC/USDT", "limit", "buy", 0.002, 60000, {"clientOrderId": "dup"})


def test_unknown_order(exchange: ccxt.binance) -> None:
    with pytest.raises(ccxt.OrderNotFound):
        exchange.fetch_order("424242", "BTC/USDT")
    with pytest.raises(ccxt.OrderNotFound):
        exchange.fetch_order(None, "BTC/USDT", {"origClientOrderId": "never-sent"})
    with pytest.raises(ccxt.OrderNotFound):
        exchange.cancel_order("424242", "BTC/USDT")


def test_bad_signature_and_unknown_key(make_exchange: Factory) -> None:
    with pytest.raises(ccxt.AuthenticationError, match="-1022"):
        make_exchange(api_secret="not-the-secret").fetch_balance()
    with pytest.raises(ccxt.AuthenticationError, match="-2015"):
        make_exchange(api_key="nobody").fetch_balance()


def test_injected_429_and_500_do_nothing(exchange: ccxt.binance, fresh: SimulatorProcess) -> None:
    fresh.add_fault("POST /api/v3/order", "error_429")
    with pytest.raises(ccxt.DDoSProtection):  # RateLimitExceeded is a subclass
        exchange.create_order("BTC/USDT", "limit", "buy", 0.001, 60000)
    fresh.add_fault("POST /api/v3/order", "error_500")
    with pytest.raises(ccxt.ExchangeNotAvailable):
        exchange.create_order("BTC/USDT", "limit", "buy", 0.001, 60000)
    assert fresh.orders() == []
    exchange.create_order("BTC/USDT", "limit", "buy", 0.001, 60000)  # faults are used up
    assert len(fresh.orders()) == 1


def test_timeout_after_accept_keeps_the_order(make_exchange: Factory, fresh: SimulatorProcess) -> None:
    exchange = make_exchange(timeout=800)
    fresh.add_fault("POST /api/v3/order", "timeout_after_accept")
    started = time.monotonic()
    with pytest.raises(ccxt.RequestTimeout):
        exchange.create_order("BTC/USDT", "limit", "buy", 0.001, 60000, {"clientOrderId": "lost-ack"})
    assert time.monotonic() - started < 3
    [held] = fresh.orders(API_KEY)
    assert (held["clientOrderId"], held["status"]) == ("lost-ack", "NEW")
    # the recovery path: look the order up by the client id we chose before sending
    found = exchange.fetch_order(None, "BTC/USDT", {"origClientOrderId": "lost-ack"})
    assert found["id"] == str(held["orderId"])


def test_used_weight_header_is_reported_and_grows(exchange: ccxt.binance) -> None:
    exchange.fetch_ticker("BTC/USDT")
    first = int(exchange.last_response_headers["X-MBX-USED-WEIGHT-1M"])
    exchange.fetch_open_orders()
    second = int(exchange.last_response_headers["X-MBX-USED-WEIGHT-1M"])
    assert second == first + 80  # openOrders without a symbol weighs 80


def test_async_client(fresh: SimulatorProcess) -> None:
    async def scenario() -> tuple[str, type[Exception] | None, int]:
        config = {**ccxt_binance_config(fresh.url, API_KEY, API_SECRET), "enableRateLimit": False, "timeout": 800}
        exchange = ccxt_async.binance(config)
        try:
            await exchange.load_markets()
            order = await exchange.create_order("BTC/USDT", "limit", "sell", 0.001, 70000, {"clientOrderId": "a-1"})
            fresh.add_fault("POST /api/v3/order", "timeout_after_accept")
            raised: type[Exception] | None = None
            try:
                await exchange.create_order("BTC/USDT", "limit", "sell", 0.001, 71000)
            except ccxt.NetworkError as error:
                raised = type(error)
            open_orders = await exchange.fetch_open_orders("BTC/USDT")
            return order["clientOrderId"], raised, len(open_orders)
        finally:
            await exchange.close()

    client_id, raised, open_count = asyncio.run(scenario())
    assert client_id == "a-1"
    assert raised is ccxt.RequestTimeout
    assert open_count == 2
