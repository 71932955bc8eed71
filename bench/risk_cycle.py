"""risk_cycle: one risk-engine evaluation over 500 open groups of 50 users, 100 of them eligible losers
(bench/README.md).

Setup, in this process through the ORM (the cycle reads groups, not how they came to be): a simulator
serving the 20 USDT markets of `monitor_cycle`, 50 traders with funded accounts and
`post_full_wait_minutes: 0`, and 10 active groups each over 10 of those symbols, one filled entry leg
apiece. Per trader, 2 groups cost 12 % more than they are worth at the simulator's price (eligible
losers at about −12 %) and the 8 others are small winners whose profit cannot cover a loser, so the cycle
decides and stores "nothing done" for every trader and sends no order: what is measured is the
evaluation itself (reads, prices, plan, the stored actions).

Measured: one `risk_cycle()` call (`cycle_ms`, wall clock; the first call of this process, so it includes
the one-time market load of the ccxt client), a second identical call (`cycle_ms_warm`: the actions fold
into the same rows), the request weight and the ticker requests the simulator counted during the first.
"""

from __future__ import annotations

import time
import uuid
from decimal import Decimal
from typing import Any

from .harness import Harness, say
from .monitor_cycle import BASES, PRICES, _exchange_info
from .traders import traders_create

TRADERS = 50
GROUPS_PER_TRADER = 10
LOSERS_PER_TRADER = 2
LOSS = Decimal("1.12")  # a loser's cost over its value
GAIN = Decimal("0.995")  # a winner's cost under its value (about +0.4 % after the exit fee)
NOTIONAL = Decimal("100")


def _groups_create(traders: list[Any]) -> int:
    """10 active groups per trader, each with pyramid 0 and one filled entry leg."""
    # Django is set up by Harness (on the bench database) after this module is imported
    from exchanges.client_ids import client_order_id_for
    from positions.models import DCAOrder, PositionGroup, Pyramid

    groups, pyramids, legs = [], [], []
    eligible = 0
    for t_index, trader in enumerate(traders):
        for g_index in range(GROUPS_PER_TRADER):
            symbol_index = (t_index + g_index) % len(BASES)
            price = Decimal(PRICES[symbol_index])
            held = (NOTIONAL / price).quantize(Decimal("0.000001"))
            loser = g_index < LOSERS_PER_TRADER
            eligible += loser
            cost = (held * price * (LOSS if loser else GAIN)).quantize(Decimal("0.00000001"))
            group = PositionGroup(
                id=uuid.uuid4(),
                user_id=trader.user_id,
                exchange_config_id=trader.config_id,
                symbol=f"{BASES[symbol_index]}/USDT",
                exchange_symbol=f"{BASES[symbol_index]}USDT",
                timeframe="1h",
                status="active",
                max_pyramids=1,
                pyramid_count=1,
                filled_quantity=held,
                bought_quantity=held,
                total_cost=cost,
                avg_entry_price=cost / held,
            )
            pyramid = Pyramid(group=group, index=0, entry_price=price, capital_usd=cost)
            order_id = uuid.uuid4()
            leg = DCAOrder(
                id=order_id,
                group=group,
                exchange_config_id=trader.config_id,
                pyramid=pyramid,
                pyramid_level=0,
                dca_level=0,
                symbol=group.symbol,
                side="buy",
                order_type="limit",
                price=price,
                expected_price=price,
                quantity=held,
                filled_quantity=held,
                status="filled",
                client_order_id=client_order_id_for(order_id),
                submit_attempts=1,
            )
            groups.append(group)
            pyramids.append(pyramid)
            legs.append(leg)
    PositionGroup.objects.bulk_create(groups)
    Pyramid.objects.bulk_create(pyramids)
    DCAOrder.objects.bulk_create(legs)
    return eligible


def _timed_cycle(sim: Any) -> tuple[float, int, dict[str, int], dict[str, int]]:
    # Django is set up by Harness (on the bench database) after this module is imported
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    # Django is set up by Harness (on the bench database) after this module is imported
    from riskengine.services import risk_cycle

    before = sim.stats()
    with CaptureQueriesContext(connection) as queries:
        started = time.perf_counter()
        counts = risk_cycle(trigger="bench")
        elapsed = (time.perf_counter() - started) * 1000
    counts["queries"] = len(queries.captured_queries)
    after = sim.stats()
    requests = {
        route: count - before["requests_by_endpoint"].get(route, 0)
        for route, count in after["requests_by_endpoint"].items()
        if count > before["requests_by_endpoint"].get(route, 0)
    }
    return elapsed, after["weight_total"] - before["weight_total"], requests, counts


def run(harness: Harness) -> dict[str, Any]:
    info = harness.tmp / "risk_exchange_info.json"
    _exchange_info(info)
    sim = harness.start_simulator(exchange_info=info)
    for base, price in zip(BASES, PRICES, strict=True):
        sim.set_price(f"{base}USDT", price)
    # Django is set up by Harness (on the bench database) after this module is imported
    from exchanges.services import market_rules_refresh

    traders = traders_create(
        sim,
        count=TRADERS,
        prefix="risk",
        balances={"USDT": "100000"},
        engine_config={"post_full_wait_minutes": 0},
    )
    market_rules_refresh(exchange_name="simulator")
    eligible = _groups_create(traders)
    say(f"{TRADERS * GROUPS_PER_TRADER} groups, {eligible} eligible losers")
    cycle, weight, requests, counts = _timed_cycle(sim)
    warm, warm_weight, _, _ = _timed_cycle(sim)
    # Django is set up by Harness (on the bench database) after this module is imported
    from riskengine.models import RiskAction

    return {
        "bench": "risk_cycle",
        "open_groups": TRADERS * GROUPS_PER_TRADER,
        "users": TRADERS,
        "eligible": eligible,
        "cycle_ms": round(cycle, 1),
        "exchange_weight": weight,
        "ticker_requests": sum(n for route, n in requests.items() if "ticker" in route),
        "requests": requests,
        "cycle_ms_warm": round(warm, 1),
        "exchange_weight_warm": warm_weight,
        "actions": RiskAction.objects.count(),
        "counts": counts,
    }
