"""What the pages show, read in a fixed number of queries whatever the number of rows (docs/web.md#queries).

Pages call these and the services' selectors; they never change anything (actions go through the
services, `web/views/actions.py`).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db.models import Count, DecimalField, ExpressionWrapper, F, OuterRef, Prefetch, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce

from positions.choices import FINAL_GROUP_STATUSES, RESTING_ORDER_STATUSES, OrderStatus
from positions.models import DCAOrder, ExitOrder, Fill, GroupEvent, PositionGroup, Pyramid
from positions.selectors import group_list, group_pnl, last_prices

ZERO = Decimal("0")
MONEY: DecimalField[Decimal, Decimal] = DecimalField(max_digits=38, decimal_places=18)


def groups_with_legs(qs: QuerySet[PositionGroup]) -> QuerySet[PositionGroup]:
    """Annotate legs filled / total and the capital resting in unfilled legs (one query with the groups).

    Correlated subqueries, not a join and GROUP BY: PostgreSQL evaluates them for the rows a page returns
    (after ORDER BY ... LIMIT), where a join aggregated every leg of every group first, and a paginator's
    COUNT stays a plain count of groups."""
    legs = DCAOrder.objects.filter(group=OuterRef("pk")).order_by().values("group")
    resting = legs.filter(status__in=RESTING_ORDER_STATUSES)
    return qs.annotate(
        legs_total=Coalesce(Subquery(legs.annotate(n=Count("pk")).values("n")), 0),
        legs_filled=Coalesce(Subquery(legs.filter(status=OrderStatus.FILLED).annotate(n=Count("pk")).values("n")), 0),
        capital_resting=Coalesce(
            Subquery(
                resting.annotate(
                    total=Sum(
                        ExpressionWrapper(F("price") * (F("quantity") - F("filled_quantity")), output_field=MONEY)
                    )
                ).values("total"),
                output_field=MONEY,
            ),
            ZERO,
            output_field=MONEY,
        ),
    )


def group_rows(groups: list[PositionGroup]) -> list[dict[str, Any]]:
    """Rows for a groups table: the group, its last price and PnL (prices from the cache, one round trip)."""
    prices = last_prices(groups=groups)
    rows = []
    for group in groups:
        price = prices.get(group.symbol)
        pnl = group_pnl(group=group, price=price)
        rows.append({"group": group, "price": price, "pnl": pnl, "unrealized": _dec(pnl["unrealized"])})
    return rows


def open_groups(user: Any, limit: int = 100) -> list[PositionGroup]:
    qs = group_list(viewer=user).exclude(status__in=FINAL_GROUP_STATUSES)
    return list(groups_with_legs(qs)[:limit])


def capital_locked(user: Any) -> Decimal:
    """Quote currency resting in unfilled DCA legs of the user's open groups."""
    qs = DCAOrder.objects.filter(status__in=RESTING_ORDER_STATUSES)
    if not user.sees_everything:
        qs = qs.filter(group__user=user)
    total = qs.aggregate(
        total=Sum(ExpressionWrapper(F("price") * (F("quantity") - F("filled_quantity")), output_field=MONEY))
    )["total"]
    return total or ZERO


def realized_total(user: Any) -> Decimal:
    qs = PositionGroup.objects.all()
    if not user.sees_everything:
        qs = qs.filter(user=user)
    return qs.aggregate(total=Sum("realized_pnl"))["total"] or ZERO


def equity_points(user: Any, limit: int = 500) -> list[dict[str, Any]]:
    """Cumulative realized PnL at each closed group's close time (the dashboard's sparkline)."""
    qs = PositionGroup.objects.filter(closed_at__isnull=False)
    if not user.sees_everything:
        qs = qs.filter(user=user)
    rows = list(qs.order_by("-closed_at").values_list("closed_at", "realized_pnl")[:limit])
    rows.reverse()
    total = ZERO
    points: list[dict[str, float | int]] = []
    for closed_at, pnl in rows:
        total += pnl or ZERO
        if closed_at is None:  # excluded by the filter; for the type checker
            continue
        second = int(closed_at.timestamp())
        if points and points[-1]["time"] == second:  # the chart needs one point per distinct time
            points[-1]["value"] = float(total)
        else:
            points.append({"time": second, "value": float(total)})
    return points


def _dec(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def group_page(user: Any, group_id: Any) -> PositionGroup | None:
    """One group with everything its page shows (pyramids, legs with their fills and take-profits, exit
    orders, fills, events) in a fixed number of queries; None when the viewer may not see it."""
    legs = DCAOrder.objects.order_by("dca_level").prefetch_related(
        "fills", Prefetch("tp_orders", queryset=ExitOrder.objects.prefetch_related("fills"))
    )
    return (
        groups_with_legs(group_list(viewer=user))
        .prefetch_related(
            Prefetch("pyramids", queryset=Pyramid.objects.order_by("index").prefetch_related(Prefetch("orders", legs))),
            Prefetch("exit_orders", queryset=ExitOrder.objects.order_by("created_at")),
            Prefetch("fills", queryset=Fill.objects.select_related("dca_order", "exit_order").order_by("executed_at")),
            Prefetch("events", queryset=GroupEvent.objects.order_by("-at", "-pk")),
        )
        .filter(pk=group_id)
        .first()
    )
