"""A new group whose market has no rules waits for them (docs/engine.md#group-states): webhook → worker →
the real ccxt client → the simulator, which lists the market later (no mocks anywhere)."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import SystemLog
from exchanges.simulator.cli import load_exchange_info
from positions.models import PositionGroup
from positions.services.configs import config_set
from positions.services.processing import WAITING_FOR_MARKET_RULES, market_rules_waiting_retry
from positions.tests.conftest import alert, post
from positions.tests.test_end_to_end import _expected_legs, wait_for

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

SYMBOL = "NEWUSDT"  # a market the simulator does not list until a test lists it


def _listing() -> dict:
    """The exchangeInfo entry of NEWUSDT: SOLUSDT's filters under a new base asset."""
    sol = next(item for item in load_exchange_info(None)["symbols"] if item["symbol"] == "SOLUSDT")
    return {**json.loads(json.dumps(sol)), "symbol": SYMBOL, "baseAsset": "NEW"}


@pytest.fixture
def unlisted(simulator_account):
    """The simulator account; NEWUSDT is delisted again afterwards, whatever the test listed."""
    yield simulator_account
    try:
        simulator_account.simulator.delist_market(SYMBOL)
    except RuntimeError:
        pass  # never listed


def _waiting_group(client, account) -> PositionGroup:
    user = account.config.user
    body = alert(user.webhook_secret, tv={"exchange": "simulator", "symbol": SYMBOL, "entry_price": "2"})
    response = post(client, user, body)
    assert response.status_code == 202, response.content
    group = PositionGroup.objects.get(pk=response.json()["group_id"])
    wait_for(lambda: group.events.filter(kind=WAITING_FOR_MARKET_RULES).exists(), message="waiting event")
    return group


def test_unlisted_symbol_waits_until_listed_then_the_sweep_places_the_grid(client, unlisted, celery_worker):
    account = unlisted
    group = _waiting_group(client, account)

    group.refresh_from_db()
    assert (group.symbol, group.status, group.failure_reason) == ("NEW/USDT", "waiting", "")
    assert not group.dca_orders.exists() and account.orders() == []
    event = group.events.get(kind=WAITING_FOR_MARKET_RULES)
    assert "NEW/USDT" in event.details["error"]  # the exchange's message

    # Asked again while the exchange still does not list it: still waiting, nothing sent, said once.
    assert market_rules_waiting_retry() == {"groups": 1, "placed": 0, "waiting": 1, "failed": 0, "refresh_failed": 0}
    group.refresh_from_db()
    assert group.status == "waiting" and account.orders() == []
    assert group.events.filter(kind=WAITING_FOR_MARKET_RULES).count() == 1
    assert SystemLog.objects.filter(message__contains="no market rules yet").count() == 1

    account.simulator.list_market(_listing())
    account.simulator.set_price(SYMBOL, "2")
    assert market_rules_waiting_retry()["placed"] == 1

    group.refresh_from_db()
    assert group.status in ("live", "partially_filled") and group.exchange_symbol == SYMBOL
    expected = _expected_legs(account, "NEW/USDT", "2")
    buys = sorted((o for o in account.orders() if o["side"] == "BUY"), key=lambda o: -Decimal(o["price"]))
    assert [(Decimal(o["price"]), Decimal(o["origQty"])) for o in buys] == [
        (leg.price, leg.quantity) for leg in expected
    ]
    assert sorted(o["clientOrderId"] for o in buys) == sorted(
        group.dca_orders.values_list("client_order_id", flat=True)
    )
    # Nothing is left waiting: the next sweep asks nothing.
    assert market_rules_waiting_retry()["groups"] == 0


def test_a_group_waiting_past_its_maximum_age_fails_with_the_reason(client, unlisted, celery_worker):
    account = unlisted
    config_set(user=account.config.user, data={"queue_max_age_minutes": 30}, partial=True)
    group = _waiting_group(client, account)
    assert market_rules_waiting_retry()["waiting"] == 1  # not old enough yet

    PositionGroup.objects.filter(pk=group.pk).update(created_at=timezone.now() - timedelta(minutes=45))
    assert market_rules_waiting_retry()["failed"] == 1

    group.refresh_from_db()
    assert group.status == "failed"
    assert group.failure_reason.startswith("no_market_rules: ")
    assert "NEW/USDT" in group.failure_reason and "waited 45 minutes" in group.failure_reason
    assert account.orders() == []


def test_an_exit_signal_closes_a_waiting_group_with_nothing_sold(client, unlisted, celery_worker):
    account = unlisted
    user = account.config.user
    group = _waiting_group(client, account)

    exit_body = alert(
        user.webhook_secret,
        tv={"exchange": "simulator", "symbol": SYMBOL, "action": "sell", "entry_price": "2"},
        strategy_info={"trade_id": "T-2"},
        execution_intent={"type": "exit", "side": "sell"},
    )
    assert post(client, user, exit_body).status_code == 202
    wait_for(lambda: PositionGroup.objects.get(pk=group.pk).status == "closed", message="group closed")

    group.refresh_from_db()
    assert group.close_reason == "exit_signal" and group.sold_quantity == 0
    assert not group.exit_orders.exists() and not group.dca_orders.exists()
    # With no open group left, the unlisted market refuses an alert again, an exit included.
    again = post(client, user, {**exit_body, "strategy_info": {**exit_body["strategy_info"], "trade_id": "T-3"}})
    assert again.status_code == 400 and again.json()["error"] == "unknown_symbol"
    # Listed afterwards: the closed group is not asked again and nothing is ever sent.
    account.simulator.list_market(_listing())
    account.simulator.set_price(SYMBOL, "2")
    assert market_rules_waiting_retry()["groups"] == 0
    assert account.orders() == []
