"""A group's position from its fills ledger: quantity held, average entry (fees in cost), realized PnL.

The arithmetic is `positions.rules.position.position_totals` (docs/engine.md#position-arithmetic); the
fill state it leads to is `positions.rules.lifecycle.fill_state_target` (docs/engine.md#group-states).
"""

from __future__ import annotations

from decimal import Decimal

from .. import ledger
from ..events import publish_group
from ..models import PositionGroup
from ..rules.lifecycle import FOLLOWS_FILLS, LegFill, fill_state_target
from ..rules.position import base_quote, position_totals
from .state import group_transition

STORED = Decimal("1e-18")  # the precision of money fields


def group_recompute(*, group: PositionGroup) -> PositionGroup:
    """Refresh a (locked) group's totals from its fills, and its fill state for open groups."""
    base, quote = base_quote(group.symbol)
    totals = position_totals(ledger.group_fills(group_id=group.pk), base=base, quote=quote)
    group.bought_quantity = totals.bought
    group.sold_quantity = totals.sold
    group.filled_quantity = totals.held
    group.total_cost = totals.cost
    group.avg_entry_price = totals.avg_entry.quantize(STORED) if totals.avg_entry is not None else None
    group.realized_pnl = totals.realized_pnl
    group.fees_quote = totals.fees_quote
    group.save(
        update_fields=[
            "bought_quantity",
            "sold_quantity",
            "filled_quantity",
            "total_cost",
            "avg_entry_price",
            "realized_pnl",
            "fees_quote",
            "updated_at",
        ]
    )
    _follow_fill_state(group)
    publish_group(group)
    return group


def _follow_fill_state(group: PositionGroup) -> None:
    """live → partially_filled → active as the entry legs fill."""
    if group.status not in FOLLOWS_FILLS:
        return  # closing and final groups: no need to read the legs
    legs = [LegFill(**row) for row in group.dca_orders.values("status", "filled_quantity")]
    target = fill_state_target(group.status, legs)
    if target is not None:
        group_transition(group_id=group.pk, to=target, locked=group)
