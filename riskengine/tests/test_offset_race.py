"""A winner's sale planned on a holding that is no longer there, on the simulator (docs/engine.md#risk-engine).

The race the chaos test saw, made deterministic: offset A's sale of SOL is accepted and filled by the
exchange, but its answer never comes (a timeout after accept), so its fill is not booked and A stays
executing. The next cycle (run now) plans offset B on the same winner from the stored holding, all 9.99
SOL, and wants more of it than the exchange still has. B's sale is fitted, under the group's row lock, to
what the fills hold less what the group's other sells still out may take (A's unknown sale): it shrinks to
exactly what is left, fills, and nothing is refused or sold twice; A is then looked up and booked, and
every amount the offsets record is what the simulator's fills say.

Worked example (the simulator's fee: 0.1 % of what the account receives, in that asset):
- SOL/USDT: 10 SOL bought at 150: held 9.99, cost 1500, average 150.15015…; its TP rests at 225.
- ETH/USDT: 1 ETH bought at 3000: held 0.999, cost 3000. BTC/USDT: 3000 USDT's worth at 65000.
- A: ETH at 2800 loses 0.999 × 2800 × 0.999 − 3000 = −205.5972 (−6.85 %); SOL at 200 realizes
  r = 200 × 0.999 − 150.15015… = 49.64985 per SOL: 205.5972 / r = 4.1409… → 4.15 SOL (step 0.01).
- B: BTC at 57000 loses about 374 (−12.5 %): about 7.5 SOL, planned from the stored 9.99 SOL; the exchange
  has 9.99 − 4.15 = 5.84 left, and that is what B sells.
"""

from __future__ import annotations

from decimal import Decimal as D  # noqa: N817  (worked examples read better short)

import pytest
from rest_framework.test import APIClient

from exchanges.circuit import CircuitBreaker
from positions.models import ExitOrder, GroupEvent
from positions.services.configs import config_set
from riskengine.models import RiskAction
from riskengine.services import risk_actions_resume
from riskengine.tests.test_offset_simulator import _open

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

F = D("0.001")
CONFIG = {
    "max_pyramids": 1,
    "levels": [{"gap_percent": "0", "weight_percent": "100", "tp_percent": "50"}],
    "post_full_wait_minutes": 0,
    "overrides": {
        "SOL/USDT": {"capital_usd": "1500"},
        "ETH/USDT": {"capital_usd": "3000"},
        "BTC/USDT": {"capital_usd": "3000"},
    },
}


def _realized(order: dict, avg_cost: D) -> D:
    """What a market sell of the simulator realized: quote received less its fee, less the cost of what it sold."""
    quote = D(order["cummulativeQuoteQty"])
    return quote - (quote * F).quantize(D("1e-8")) - D(order["executedQty"]) * avg_cost


def test_a_sale_planned_on_a_holding_an_unbooked_sale_took_is_fitted_not_refused(
    client, simulator_account, celery_worker
):
    account = simulator_account
    user = account.config.user
    config_set(user=user, data=CONFIG, partial=True)
    sol = _open(client, account, "SOLUSDT", "150", "sol-1")
    _open(client, account, "ETHUSDT", "3000", "eth-1")
    _open(client, account, "BTCUSDT", "65000", "btc-1")
    assert (sol.filled_quantity, sol.total_cost) == (D("9.99"), D("1500"))
    api = APIClient()
    api.force_authenticate(user)

    # Offset A: the loser's close is the first order sent, SOL's sale the second: the exchange fills it,
    # the answer times out and every look-up fails for now.
    account.simulator.set_price("ETHUSDT", "2800")
    account.simulator.set_price("SOLUSDT", "200")
    account.simulator.add_fault("POST /api/v3/order", "timeout_after_accept", every=2, count=1)
    account.simulator.add_fault("GET /api/v3/order", "error_500", count=50)
    first = api.post("/api/risk/run").json()
    account.simulator.clear_faults()
    CircuitBreaker(f"config:{account.config.pk}").reset()  # the failed look-ups opened it
    assert first["kind"] == "offset" and first["status"] == "executing", first
    (planned_a,) = first["plan"]["winners"]
    assert D(planned_a["quantity"]) == D("4.15")
    sale_a = ExitOrder.objects.get(pk=RiskAction.objects.get(pk=first["id"]).orders[str(sol.pk)])
    assert sale_a.status == "unknown"
    sol.refresh_from_db()
    assert sol.filled_quantity == D("9.99")  # A's fill is not booked

    # Offset B, planned from the stored holding: more SOL than the exchange has left.
    account.simulator.set_price("BTCUSDT", "57000")
    second = api.post("/api/risk/run").json()
    assert second["kind"] == "offset", second
    (planned_b,) = second["plan"]["winners"]
    assert planned_b["group_id"] == str(sol.pk) and D(planned_b["quantity"]) > D("9.99") - D("4.15")
    sale_b = ExitOrder.objects.get(pk=RiskAction.objects.get(pk=second["id"]).orders[str(sol.pk)])
    assert (sale_b.status, sale_b.quantity) == ("filled", D("5.84")), sale_b.last_error
    assert sale_b.last_error == (
        f"resized from {D(planned_b['quantity']):f}: the group holds 9.99, 5.84 of it beyond its other working sells"
    )
    assert GroupEvent.objects.filter(group=sol, kind="risk_sale_resized").count() == 1

    # The next cycle resumes A: its sale is looked up (never sent again) and booked.
    assert risk_actions_resume() >= 1
    actions = {str(a.pk): a for a in RiskAction.objects.filter(kind="offset")}
    assert {a.status for a in actions.values()} == {"done"}
    sale_a.refresh_from_db()
    sol.refresh_from_db()
    assert sale_a.status == "filled" and sol.filled_quantity == 0

    # Nothing refused, nothing sold twice: each sale is on the simulator once, filled, and together they
    # sold what the group bought.
    assert not ExitOrder.objects.filter(status="rejected").exists()
    sells = {
        o["clientOrderId"]: o
        for o in account.orders()
        if o["symbol"] == "SOLUSDT" and o["side"] == "SELL" and o["type"] == "MARKET"
    }
    assert sorted(sells) == sorted([sale_a.client_order_id, sale_b.client_order_id])
    assert {cid: (o["status"], D(o["executedQty"])) for cid, o in sells.items()} == {
        sale_a.client_order_id: ("FILLED", D("4.15")),
        sale_b.client_order_id: ("FILLED", D("5.84")),
    }
    booked = {f.exit_order.client_order_id: f.quantity for f in sol.fills.filter(side="sell")}
    assert booked == {sale_a.client_order_id: D("4.15"), sale_b.client_order_id: D("5.84")}
    # The amounts recorded are what the simulator's fills realized.
    avg = D("1500") / D("9.99")
    for action_id, sale in ((first["id"], sale_a), (second["id"], sale_b)):
        stored = D(actions[action_id].realized["winners"][str(sol.pk)])
        assert abs(stored - _realized(sells[sale.client_order_id], avg)) < D("1e-8"), (action_id, stored)
