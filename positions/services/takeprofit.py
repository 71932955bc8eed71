"""Take-profit placement that follows fills (per-leg TPs); the periodic checks live in `exits`."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from django.db import transaction

from exchanges.client_ids import client_order_id_for

from ..choices import ExitPurpose, GroupStatus, OrderStatus, OrderType, TpMode
from ..models import DCAOrder, ExitOrder, Fill, PositionGroup

ZERO = Decimal("0")
LIVE_TP = (OrderStatus.PENDING, OrderStatus.UNKNOWN, OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED)


def on_fills(*, order: Any, group: PositionGroup, fills: list[Fill]) -> None:
    """Called inside the transaction that booked new fills of `order` (the group row is locked)."""
    per_leg = isinstance(order, DCAOrder) and group.tp_mode in (TpMode.PER_LEG, TpMode.HYBRID)
    if per_leg and group.status not in (GroupStatus.CLOSING, GroupStatus.CLOSED, GroupStatus.FAILED):
        leg_tp_follow(leg=order, group=group)


def _leg_net_quantity(leg: DCAOrder, base: str) -> Decimal:
    net = ZERO
    for fill in leg.fills.all():
        net += fill.quantity - (fill.fee if fill.fee_asset == base else ZERO)
    return net


def leg_tp_follow(*, leg: DCAOrder, group: PositionGroup) -> ExitOrder | None:
    """Make the leg's resting TP quantity match what the leg has filled (a new TP for the increment)."""
    from exchanges.precision import round_qty_down, validate_order

    from ..grid import trade_tp_price
    from .market import rules_for

    rules = rules_for(group)
    if rules is None:
        return None
    base = group.symbol.split("/")[0]
    wanted = round_qty_down(_leg_net_quantity(leg, base), rules)
    placed = sum((tp.quantity for tp in leg.tp_orders.filter(status__in=LIVE_TP)), ZERO)
    delta = round_qty_down(wanted - placed, rules)
    if delta <= 0:
        return None
    fill_price = leg.filled_price or leg.price
    price = trade_tp_price(fill_price, leg.tp_percent, rules)
    if validate_order(price, delta, rules):
        return None  # too small on its own; the next fill of this leg adds to it
    order_id = uuid.uuid4()
    tp = ExitOrder.objects.create(
        id=order_id,
        group=group,
        exchange_config_id=group.exchange_config_id,
        symbol=group.symbol,
        side="sell",
        order_type=OrderType.LIMIT,
        price=price,
        quantity=delta,
        client_order_id=client_order_id_for(order_id),
        purpose=ExitPurpose.TAKE_PROFIT_LEG,
        leg=leg,
        pyramid_id=leg.pyramid_id,
    )
    from ..tasks import submit_order

    transaction.on_commit(lambda: submit_order.delay(str(order_id)))
    return tp
