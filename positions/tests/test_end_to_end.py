"""Webhook → celery worker → the real ccxt client → the simulator, and back (no mocks anywhere)."""

from __future__ import annotations

import time
from collections import Counter
from decimal import Decimal

import pytest

from positions.models import DCAOrder, PositionGroup
from positions.tests.conftest import HISTORIC, alert, lag_off, post

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def wait_for(predicate, timeout: float = 20.0, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {message}")


def _open_on_simulator(account) -> list[dict]:
    return [o for o in account.orders() if o["status"] in ("NEW", "PARTIALLY_FILLED")]


def _expected_legs(account, symbol: str, entry: str, index: int = 0):
    from positions.config import effective_config
    from positions.grid import compute_grid
    from positions.services.configs import config_get

    rules = account.adapter().market_rules(symbol)
    _, grid = effective_config(config_get(user=account.config.user), symbol=symbol, timeframe="1h")
    return compute_grid(config=grid, pyramid_index=index, entry_price=Decimal(entry), rules=rules)


def _placed(group: PositionGroup) -> bool:
    group.refresh_from_db()
    return group.status != "waiting" and not group.dca_orders.filter(status__in=["pending", "unknown"]).exists()


def _group(response) -> PositionGroup:
    assert response.status_code == 202, response.content
    return PositionGroup.objects.get(pk=response.json()["group_id"])


def test_entry_grid_pyramid_max_and_exit_on_btc(client, simulator_account, celery_worker):
    from positions.services.configs import config_set

    account = simulator_account
    user = account.config.user
    config_set(user=user, data={"max_pyramids": 2}, partial=True)
    lag_off(user)  # the pyramids come in the next candles of a historic day
    account.simulator.set_price("BTCUSDT", "65000")

    group = _group(post(client, user, alert(user.webhook_secret, tv={"exchange": "simulator"}, timestamp=HISTORIC)))
    wait_for(lambda: _placed(group), message="grid placed")
    expected = _expected_legs(account, "BTC/USDT", "65000")
    sim_buys = sorted((o for o in account.orders() if o["side"] == "BUY"), key=lambda o: -Decimal(o["price"]))
    assert [(Decimal(o["price"]), Decimal(o["origQty"])) for o in sim_buys] == [
        (leg.price, leg.quantity) for leg in expected
    ]
    # The entry at the market price filled at once; its per-leg TP rests at fill × (1 + tp%).
    wait_for(lambda: group.exit_orders.filter(purpose="tp_leg", status="open").exists(), message="leg TP")
    tp = group.exit_orders.get(purpose="tp_leg")
    assert tp.price == Decimal("65650.00")
    group.refresh_from_db()
    assert group.status == "partially_filled"

    # Pyramid 1 in the next candle, from its own price.
    pyramid = post(
        client,
        user,
        alert(
            user.webhook_secret,
            tv={"exchange": "simulator", "entry_price": "64000"},
            strategy_info={"trade_id": "T-2"},
            timestamp="2026-11-20T11:00:01Z",
        ),
    )
    assert pyramid.json()["classification"] == "pyramid"
    wait_for(
        lambda: group.dca_orders.filter(pyramid_level=1).exclude(status="pending").count() == 5, message="pyramid grid"
    )
    pyramid_prices = sorted(group.dca_orders.filter(pyramid_level=1).values_list("price", flat=True), reverse=True)
    assert pyramid_prices == [leg.price for leg in _expected_legs(account, "BTC/USDT", "64000", index=1)]
    extra = post(
        client,
        user,
        alert(
            user.webhook_secret,
            tv={"exchange": "simulator"},
            strategy_info={"trade_id": "T-3"},
            timestamp="2026-11-20T12:00:01Z",
        ),
    )
    assert extra.json()["status"] == "ignored"

    # Exit: nothing left open, everything held sold, group closed with its PnL.
    exit_body = alert(
        user.webhook_secret,
        tv={"exchange": "simulator", "action": "sell"},
        strategy_info={"trade_id": "T-4"},
        execution_intent={"type": "exit", "side": "sell"},
    )
    assert post(client, user, exit_body).status_code == 202
    wait_for(lambda: PositionGroup.objects.get(pk=group.pk).status == "closed", message="group closed")
    assert _open_on_simulator(account) == []
    group.refresh_from_db()
    assert group.filled_quantity < Decimal("0.00001")  # at most dust below the step size
    sells = [o for o in account.orders() if o["side"] == "SELL" and o["type"] == "MARKET"]
    assert len(sells) == 1 and sells[0]["status"] == "FILLED"
    client_ids = [o["clientOrderId"] for o in account.orders()]
    assert len(client_ids) == len(set(client_ids))


@pytest.mark.parametrize(
    ("symbol", "exchange_symbol", "price", "override"),
    [
        ("PEPE/USDT", "PEPEUSDT", "0.00001234", {}),
        ("ETH/BTC", "ETHBTC", "0.05123", {"ETH/BTC": {"capital_usd": "0.02"}}),
    ],
)
def test_grid_rounding_on_tiny_ticks_and_btc_quote(
    client, simulator_account, celery_worker, symbol, exchange_symbol, price, override
):
    from positions.services.configs import config_set

    account = simulator_account
    user = account.config.user
    if override:
        config_set(user=user, data={"overrides": override}, partial=True)
    account.simulator.set_price(exchange_symbol, price)
    group = _group(
        post(
            client,
            user,
            alert(user.webhook_secret, tv={"exchange": "simulator", "symbol": exchange_symbol, "entry_price": price}),
        )
    )
    wait_for(lambda: _placed(group), message="grid placed")
    rules = account.adapter().market_rules(symbol)
    expected = _expected_legs(account, symbol, price)
    placed = sorted(group.dca_orders.all(), key=lambda o: o.dca_level)
    assert [(o.price, o.quantity) for o in placed] == [(leg.price, leg.quantity) for leg in expected]
    for order in placed:
        assert order.price % rules.tick_size == 0 and order.quantity % rules.step_size == 0
        assert order.price * order.quantity >= rules.min_notional
    sim = {o["clientOrderId"]: o for o in account.orders()}
    for order in placed:
        assert Decimal(sim[order.client_order_id]["price"]) == order.price


@pytest.mark.parametrize("fault", ["timeout_after_accept", "error_500", "error_429"])
def test_faults_on_placement_never_double_an_order(client, simulator_account, celery_worker, fault):
    account = simulator_account
    user = account.config.user
    account.simulator.set_price("BTCUSDT", "65000")
    account.simulator.add_fault("POST /api/v3/order", fault, count=2)
    group = _group(post(client, user, alert(user.webhook_secret, tv={"exchange": "simulator", "entry_price": "64000"})))
    wait_for(lambda: _placed(group), timeout=40, message="grid placed despite faults")
    intended = set(DCAOrder.objects.filter(group=group).values_list("client_order_id", flat=True))
    on_exchange = Counter(o["clientOrderId"] for o in account.orders())
    assert set(on_exchange) == intended
    assert all(count == 1 for count in on_exchange.values()), on_exchange
