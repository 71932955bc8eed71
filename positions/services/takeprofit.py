"""Take-profit placement that follows fills (per-leg TPs); the periodic checks live in `monitor`.

What to place is `positions.rules.exits.leg_take_profit` (docs/engine.md#take-profit); this module
commits the TP intent and hands it to the worker after commit.
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from exchanges.client_ids import client_order_id_for

from .. import jobs, ledger
from ..choices import UNSETTLED_ORDER_STATUSES, ExitPurpose, GroupStatus, OrderStatus, OrderType
from ..models import DCAOrder, ExitOrder, Fill, PositionGroup
from ..rules.exits import PER_LEG_TP_MODES, leg_take_profit
from ..rules.position import base_quote, net_bought
from .market import rules_for

ZERO = Decimal("0")
# A leg's TPs that cover part of its quantity: live, or already sold.
LIVE_TP = (OrderStatus.PENDING, OrderStatus.UNKNOWN, OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED)


def on_fills(*, order: ledger.Order, group: PositionGroup, fills: list[Fill]) -> None:
    """Called inside the transaction that booked new fills of `order` (the group row is locked)."""
    if not isinstance(order, DCAOrder) or group.tp_mode not in PER_LEG_TP_MODES:
        return
    if group.status not in (GroupStatus.CLOSING, GroupStatus.CLOSED, GroupStatus.FAILED):
        leg_tp_follow(leg=order, group=group)


def leg_tp_follow(*, leg: DCAOrder, group: PositionGroup) -> ExitOrder | None:
    """Make the leg's resting TP quantity match what the leg has filled (a new TP for the increment)."""
    rules = rules_for(group)
    if rules is None:
        return None
    base, _ = base_quote(group.symbol)
    placed = sum((tp.quantity for tp in leg.tp_orders.filter(status__in=LIVE_TP)), ZERO)
    # Sells already working for the group (other legs' TPs, a risk engine sale committed but not yet
    # filled) hold part of what it has: the new TP gets at most the rest (docs/engine.md#per-leg).
    working = group.exit_orders.filter(status__in=UNSETTLED_ORDER_STATUSES).values_list("quantity", "filled_quantity")
    decision = leg_take_profit(
        net_filled=net_bought(ledger.order_fills(order=leg), base=base),
        placed=placed,
        fill_price=leg.filled_price or leg.price,
        tp_percent=leg.tp_percent,
        rules=rules,
        room=group.filled_quantity - sum((quantity - filled for quantity, filled in working), ZERO),
    )
    if decision is None:
        return None  # covered, or too small on its own: the leg's next fill adds to it
    order_id = uuid.uuid4()
    tp = ExitOrder.objects.create(
        id=order_id,
        group=group,
        exchange_config_id=group.exchange_config_id,
        symbol=group.symbol,
        side="sell",
        order_type=OrderType.LIMIT,
        price=decision.price,
        quantity=decision.quantity,
        client_order_id=client_order_id_for(order_id),
        purpose=ExitPurpose.TAKE_PROFIT_LEG,
        leg=leg,
        pyramid_id=leg.pyramid_id,
    )
    _submit_after_commit(order_id)
    return tp


def _submit_after_commit(order_id: Any) -> None:
    jobs.enqueue_after_commit(jobs.SUBMIT_ORDER, str(order_id))
