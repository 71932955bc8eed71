"""adapter_overhead: what the adapter adds to an order round trip on the simulator.

Per order: ``create_order`` (limit, resting) + ``cancel_order`` through ``CcxtAdapter`` (precision,
market rules lookup, Redis weight budget and circuit breaker, ccxt signing and parsing), against the
same two signed requests sent raw over one keep-alive HTTP connection. Both run against one simulator
on loopback, sequentially, after a warm-up; the figures are medians in milliseconds. The adapter runs
with Binance's weight table but without the 50-orders-per-10-s cap, which would otherwise make it
wait rather than measure.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import http.client
import json
import secrets
import statistics
import time
import uuid
from decimal import Decimal
from typing import Any
from urllib.parse import urlencode, urlsplit

ORDERS = 200
WARMUP = 10
SYMBOL = "BTCUSDT"
PRICE = "60000.00"
QUANTITY = "0.00100"


class RawClient:
    """Signed Binance requests over one persistent connection, parsed with ``json`` and nothing else."""

    def __init__(self, base_url: str, api_key: str, api_secret: str) -> None:
        parts = urlsplit(base_url)
        self.connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80, timeout=10)
        self.api_key = api_key
        self.secret = api_secret.encode()

    def signed(self, method: str, path: str, params: dict[str, str]) -> Any:
        query = urlencode({**params, "timestamp": str(int(time.time() * 1000)), "recvWindow": "5000"})
        signature = hmac.new(self.secret, query.encode(), hashlib.sha256).hexdigest()
        self.connection.request(method, f"{path}?{query}&signature={signature}", headers={"X-MBX-APIKEY": self.api_key})
        response = self.connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"{method} {path} -> {response.status} {body[:200]!r}")
        return json.loads(body)

    def order_round_trip(self, client_order_id: str) -> None:
        placed = self.signed(
            "POST",
            "/api/v3/order",
            {
                "symbol": SYMBOL,
                "side": "BUY",
                "type": "LIMIT",
                "timeInForce": "GTC",
                "quantity": QUANTITY,
                "price": PRICE,
                "newClientOrderId": client_order_id,
            },
        )
        self.signed("DELETE", "/api/v3/order", {"symbol": SYMBOL, "orderId": str(placed["orderId"])})

    def close(self) -> None:
        self.connection.close()


def _timed(action: Any, count: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def run(orders: int = ORDERS) -> dict[str, Any]:
    """Median ms per create + cancel: through the adapter, and raw."""
    # Django is set up by the bench harness after this module is imported; exchanges.models needs it
    from exchanges.adapters.ccxt_adapter import CcxtAdapter, close_all_clients
    from exchanges.adapters.types import OrderRequest
    from exchanges.client_ids import client_order_id_for
    from exchanges.models import Credentials
    from exchanges.ratelimit import BINANCE_LIMITS
    from exchanges.simulator.testing import SimulatorProcess, ccxt_binance_config

    with SimulatorProcess() as sim:
        sim.set_price(SYMBOL, "65000")
        api_key, api_secret = "bench" + secrets.token_hex(12), secrets.token_hex(32)
        sim.create_account(api_key, api_secret, {"USDT": "1000000"})
        overrides = ccxt_binance_config(sim.url, api_key, api_secret)
        overrides.pop("apiKey")
        overrides.pop("secret")
        adapter = CcxtAdapter(
            exchange_name="simulator",
            ccxt_id="binance",
            credentials=Credentials(api_key=api_key, api_secret=api_secret),
            circuit_name=f"bench:{uuid.uuid4()}",
            account_label="bench",
            limits=dataclasses.replace(BINANCE_LIMITS, orders_per_10s=None, orders_per_day=None),
            config_overrides=overrides,
        )

        def adapter_round_trip() -> None:
            request = OrderRequest(
                symbol="BTC/USDT",
                side="buy",
                type="limit",
                quantity=Decimal(QUANTITY),
                price=Decimal(PRICE),
                client_order_id=client_order_id_for(uuid.uuid4()),
            )
            placed = adapter.create_order(request)
            adapter.cancel_order("BTC/USDT", exchange_order_id=placed.exchange_order_id)

        raw = RawClient(sim.url, api_key, api_secret)
        try:
            _timed(adapter_round_trip, WARMUP)
            _timed(lambda: raw.order_round_trip(client_order_id_for(uuid.uuid4())), WARMUP)
            adapter_samples = _timed(adapter_round_trip, orders)
            raw_samples = _timed(lambda: raw.order_round_trip(client_order_id_for(uuid.uuid4())), orders)
        finally:
            raw.close()
            adapter.close()
            close_all_clients()
    median = statistics.median(adapter_samples)
    raw_median = statistics.median(raw_samples)
    return {
        "bench": "adapter_overhead",
        "orders": orders,
        "median_ms": round(median, 3),
        "raw_median_ms": round(raw_median, 3),
        "overhead_ms": round(median - raw_median, 3),
        "p90_ms": round(statistics.quantiles(adapter_samples, n=10)[-1], 3),
    }
