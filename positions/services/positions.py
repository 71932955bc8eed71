"""Position arithmetic from the fills ledger: quantity held, average entry (fees in cost), realized PnL."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from ..choices import GroupStatus, OrderStatus
from ..events import publish_group
from ..models import Fill, PositionGroup

ZERO = Decimal("0")


@dataclass(frozen=True)
class PositionTotals:
    bought: Decimal  # base bought, gross
    sold: Decimal  # base sold
    held: Decimal  # base held now, net of base-asset fees
    cost: Decimal  # quote spent on the entries still held, fees included
    avg_entry: Decimal | None
    proceeds: Decimal  # quote received from sells, net of quote fees
    realized_pnl: Decimal
    fees_quote: Decimal  # every fee, valued in quote


def base_quote(symbol: str) -> tuple[str, str]:
    base, _, quote = symbol.partition("/")
    return base, quote


def totals_from_fills(fills: list[Fill], symbol: str) -> PositionTotals:
    """Average-cost accounting: sells realize (price − average entry) × quantity, net of fees."""
    base, quote = base_quote(symbol)
    bought = sold = held = cost = proceeds = realized = fees_quote = ZERO
    for fill in sorted(fills, key=lambda f: (f.executed_at, f.pk or 0)):
        fee_in_base = fill.fee if fill.fee_asset == base else ZERO
        fee_in_quote = fill.fee if fill.fee_asset == quote else ZERO
        fees_quote += fee_in_quote + fee_in_base * fill.price
        if fill.side == "buy":
            bought += fill.quantity
            held += fill.quantity - fee_in_base
            cost += fill.price * fill.quantity + fee_in_quote
        else:
            sold += fill.quantity
            avg = cost / held if held > 0 else ZERO
            net = fill.price * fill.quantity - fee_in_quote - fee_in_base * fill.price
            proceeds += net
            realized += net - avg * fill.quantity
            cost -= avg * fill.quantity
            held -= fill.quantity
    avg_entry = (cost / held) if held > 0 else None
    return PositionTotals(
        bought=bought,
        sold=sold,
        held=max(held, ZERO),
        cost=max(cost, ZERO),
        avg_entry=avg_entry,
        proceeds=proceeds,
        realized_pnl=realized,
        fees_quote=fees_quote,
    )


def group_recompute(*, group: PositionGroup) -> PositionGroup:
    """Refresh a (locked) group's totals from its fills, and its fill state for open groups."""
    totals = totals_from_fills(list(group.fills.all()), group.symbol)
    group.bought_quantity = totals.bought
    group.sold_quantity = totals.sold
    group.filled_quantity = totals.held
    group.total_cost = totals.cost
    group.avg_entry_price = totals.avg_entry.quantize(Decimal("1e-18")) if totals.avg_entry is not None else None
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
    from .state import group_transition

    if group.status not in (GroupStatus.LIVE, GroupStatus.PARTIALLY_FILLED, GroupStatus.ACTIVE, GroupStatus.WAITING):
        return
    legs = group.dca_orders.exclude(status__in=[OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.FAILED])
    statuses = list(legs.values_list("status", "filled_quantity"))
    if not statuses:
        return
    any_filled = any(qty > 0 for _, qty in statuses)
    all_filled = all(status == OrderStatus.FILLED for status, _ in statuses)
    if all_filled:
        target = GroupStatus.ACTIVE
    elif any_filled:
        target = GroupStatus.PARTIALLY_FILLED
    else:
        return
    if target != group.status:
        group_transition(group_id=group.pk, to=target, locked=group)
