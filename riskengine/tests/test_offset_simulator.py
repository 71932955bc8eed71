"""A loser offset by a winner on the simulator, end to end: webhook → grids filled → risk cycle → orders.

Worked example (the simulator's fee: 0.1 % of what the account receives, in that asset):
- SOL/USDT: 10 SOL bought at 150 (1500 USDT); the fee takes 0.01 SOL: held 9.99, cost 1500.
- ETH/USDT: 1 ETH bought at 3000; held 0.999, cost 3000 (avg 3003.003003…); its per-leg TP rests at 4500.
At SOL 140: unrealized = 9.99 × 140 × 0.999 − 1500 = −102.7986 (−6.85 % ≤ −5 %): the loser.
"""

from __future__ import annotations

from decimal import Decimal as D  # noqa: N817  (worked examples read better short)

import pytest
from rest_framework.test import APIClient

from positions import hooks
from positions.models import ExitOrder, PositionGroup
from positions.services import monitor
from positions.services.configs import config_set
from positions.tests.conftest import alert, post
from positions.tests.test_end_to_end import _group, _placed, wait_for
from riskengine.models import RiskAction

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

F = D("0.001")
CONFIG = {
    "max_pyramids": 1,
    "levels": [{"gap_percent": "0", "weight_percent": "100", "tp_percent": "50"}],
    "post_full_wait_minutes": 0,
    "overrides": {"SOL/USDT": {"capital_usd": "1500"}, "ETH/USDT": {"capital_usd": "3000"}},
}


def _open(client, account, symbol: str, price: str, trade_id: str) -> PositionGroup:
    user = account.config.user
    account.simulator.set_price(symbol, price)
    body = alert(
        user.webhook_secret,
        tv={"exchange": "simulator", "symbol": symbol, "entry_price": price, "close_price": price},
        strategy_info={"trade_id": trade_id},
    )
    group = _group(post(client, user, body))
    wait_for(lambda: _placed(group), message=f"{symbol} grid placed")
    wait_for(lambda: group.exit_orders.filter(purpose="tp_leg", status="open").exists(), message=f"{symbol} TP")
    monitor.monitor_fills()
    group.refresh_from_db()
    return group


def test_loser_offset_by_a_winner_realizes_the_plan(client, simulator_account, celery_worker):
    account = simulator_account
    user = account.config.user
    config_set(user=user, data=CONFIG, partial=True)
    sol = _open(client, account, "SOLUSDT", "150", "sol-1")
    eth = _open(client, account, "ETHUSDT", "3000", "eth-1")
    assert (sol.status, sol.filled_quantity, sol.total_cost) == ("active", D("9.99"), D("1500"))
    assert (eth.status, eth.filled_quantity, eth.total_cost) == ("active", D("0.999"), D("3000"))
    api = APIClient()
    api.force_authenticate(user)

    # 1. ETH at 3050 cannot pay for SOL at 140: per ETH sold r = 3050 × 0.999 − 3000 / 0.999 = 43.946997…;
    #    all 0.999 of it realizes 43.90305 < 102.7986: nothing is sold, the reason is stored; a second cycle
    #    with the same reason folds into the same row.
    account.simulator.set_price("SOLUSDT", "140")
    account.simulator.set_price("ETHUSDT", "3050")
    first = api.post("/api/risk/run").json()
    assert first["kind"] == "none", first
    assert first["reason"] == "winners cover 43.90 of the 102.80 required to close SOL/USDT; nothing sold"
    second = api.post("/api/risk/run").json()
    assert second["id"] == first["id"] and second["repeats"] == 2
    assert ExitOrder.objects.filter(purpose="risk").count() == 0

    # 2. ETH at 3500: r = 3496.5 − 3003.003003… = 493.496996…; q = 102.7986 / r = 0.20831… → 0.2084 (step
    #    0.0001); 0.2084 × 3500 = 729.4 ≥ 20; realizes 0.2084 × r = 102.8448….
    account.simulator.set_price("ETHUSDT", "3500")
    status = api.get("/api/risk").json()
    rows = {row["symbol"]: row for row in status["groups"]}
    assert rows["SOL/USDT"]["eligible"] and rows["SOL/USDT"]["why_not"] == []
    assert D(rows["SOL/USDT"]["unrealized"]) == D("9.99") * 140 * (1 - F) - 1500 == D("-102.7986")
    assert not rows["ETH/USDT"]["eligible"]
    plan = status["plan"]
    r = D("3500") * (1 - F) - D("3000") / D("0.999")
    assert plan["loser"] == {
        "group_id": str(sol.pk),
        "symbol": "SOL/USDT",
        "quantity": "9.99",
        "price": "140",
        "unrealized": "-102.7986",
    }
    assert [(w["group_id"], D(w["quantity"])) for w in plan["winners"]] == [(str(eth.pk), D("0.2084"))]
    assert D(plan["winners"][0]["realizes"]) == D("0.2084") * r

    announced: list[hooks.EngineEvent] = []
    hooks.engine_event_subscribe(announced.append)
    try:
        ran = api.post("/api/risk/run").json()
    finally:
        hooks.engine_event_unsubscribe(announced.append)
    assert ran["kind"] == "offset" and ran["status"] == "done", ran
    sol.refresh_from_db()
    eth.refresh_from_db()
    assert sol.status == "closed" and sol.close_reason == "risk"
    assert eth.status == "active" and eth.filled_quantity == D("0.999") - D("0.2084")
    # What the simulator did: SOL's TP cancelled and 9.99 sold at market; ETH's TP cut to what it still
    # holds (cancelled, placed again for 0.7906 at its own price), 0.2084 sold at market.
    sim = {(o["symbol"], o["side"], o["type"], o["status"], D(o["origQty"])) for o in account.orders()}
    assert ("SOLUSDT", "SELL", "MARKET", "FILLED", D("9.99")) in sim
    assert ("ETHUSDT", "SELL", "MARKET", "FILLED", D("0.2084")) in sim
    assert ("ETHUSDT", "SELL", "LIMIT", "CANCELED", D("0.999")) in sim
    assert ("ETHUSDT", "SELL", "LIMIT", "NEW", D("0.7906")) in sim
    resting = eth.exit_orders.filter(status="open")
    assert sum(o.quantity for o in resting) <= eth.filled_quantity
    # Realized = planned: the loser's −102.7986 and the winner's q × r, read back from the fills.
    realized = ran["realized"]
    assert D(realized["loser"]) == D("-102.7986")
    assert abs(D(realized["winners"][str(eth.pk)]) - D("0.2084") * r) < D("1e-12")
    assert abs(D(realized["net"]) - (D("0.2084") * r - D("102.7986"))) < D("1e-12")
    action = RiskAction.objects.get(pk=ran["id"])
    assert action.loser_group_id == sol.pk and action.plan == ran["plan"]
    # The offset is announced once done (notifications tell it), with what each side realized.
    (offset,) = [e for e in announced if e.kind == hooks.RISK_OFFSET]
    assert offset.group_id == str(sol.pk) and offset.data["symbol"] == "SOL/USDT"
    assert offset.data["loser_realized"] == realized["loser"] and offset.data["net"] == realized["net"]
    assert offset.data["winners"] == [{"symbol": "ETH/USDT", "realized": realized["winners"][str(eth.pk)]}]
    print(  # the worked example, numbers in and orders out, for the record
        f"\nrisk offset: plan {ran['plan']}\nrealized {realized}\nsimulator orders {sorted(map(str, sim))}"
    )


def test_an_entry_fill_runs_the_users_cycle_when_risk_evaluate_on_fill(client, simulator_account, celery_worker):
    account = simulator_account
    config_set(user=account.config.user, data={**CONFIG, "risk_evaluate_on_fill": True}, partial=True)
    _open(client, account, "SOLUSDT", "150", "sol-fill")
    # positions announced the fill (positions.hooks); riskengine ran this user's cycle in the worker.
    action = wait_for(lambda: RiskAction.objects.filter(trigger="fill").first(), message="a cycle after the fill")
    assert action.kind == "none" and action.reason == "no eligible loser"
