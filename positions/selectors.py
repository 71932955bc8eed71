"""Reads for positions: only the caller's own data unless they are a manager or admin."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.core.cache import cache
from django.db.models import DecimalField, ExpressionWrapper, F, Prefetch, QuerySet, Sum, Value
from django.db.models.functions import Coalesce

from exchanges.precision import unified_symbol

from .choices import FINAL_GROUP_STATUSES, OrderStatus
from .ledger import as_fill_data
from .models import DCAOrder, PositionGroup, Pyramid
from .rules.position import base_quote, net_proceeds, position_totals


def group_list(*, viewer: Any, status: str | None = None, symbol: str | None = None) -> QuerySet[PositionGroup]:
    qs = PositionGroup.objects.select_related("exchange_config")
    if not viewer.sees_everything:
        qs = qs.filter(user=viewer)
    if status == "open":
        qs = qs.exclude(status__in=FINAL_GROUP_STATUSES)
    elif status:
        qs = qs.filter(status=status)
    if symbol:  # as traders type it: BTCUSDT, btcusdt, BTC-USDT, BTC/USDT
        qs = qs.filter(symbol__iexact=unified_symbol(symbol) or symbol.replace("-", "/"))
    return qs.order_by("-created_at")


def group_detail(*, viewer: Any, group_id: Any) -> PositionGroup | None:
    qs = group_list(viewer=viewer).prefetch_related(
        Prefetch(
            "pyramids",
            queryset=Pyramid.objects.prefetch_related(
                Prefetch("orders", queryset=DCAOrder.objects.order_by("dca_level"))
            ),
        ),
        "exit_orders",
        "fills",
        "events",
    )
    return qs.filter(pk=group_id).first()


def group_pnl(*, group: PositionGroup, price: Decimal | None) -> dict[str, Any]:
    """Realized and unrealized PnL in quote and %, fees included (exit fees not yet paid are not guessed)."""
    realized = group.realized_pnl
    unrealized = None
    unrealized_pct = None
    if price is not None and group.filled_quantity > 0 and group.avg_entry_price:
        unrealized = (price - group.avg_entry_price) * group.filled_quantity
        unrealized_pct = (price / group.avg_entry_price - 1) * 100
    invested = group.total_cost + (group.avg_entry_price or Decimal("0")) * group.sold_quantity
    realized_pct = (realized / invested * 100) if invested and group.sold_quantity else None

    def s(v: Decimal | None) -> str | None:
        return None if v is None else f"{v.quantize(Decimal('1e-8')).normalize():f}"

    return {
        "price": s(price),
        "realized": s(realized),
        "realized_percent": s(realized_pct),
        "unrealized": s(unrealized),
        "unrealized_percent": s(unrealized_pct),
        "total": s(realized + (unrealized or Decimal("0"))),
    }


def _price_key(config_id: Any, symbol: str) -> str:
    return f"positions:last:{config_id}:{symbol}"


def last_price_remember(*, config_id: Any, symbol: str, price: Decimal) -> None:
    """Kept by the exit checks (every 15 s) so that reads never call an exchange."""
    cache.set(_price_key(config_id, symbol), str(price), 300)


def last_prices(*, groups: list[PositionGroup]) -> dict[str, Decimal]:
    keys = {_price_key(g.exchange_config_id, g.symbol): g.symbol for g in groups}
    found = cache.get_many(list(keys))
    return {keys[k]: Decimal(v) for k, v in found.items()}


def resting_entry_notional(*, user_id: Any) -> dict[str, Decimal]:
    """Capital locked in resting entry legs per symbol: price × unfilled quantity of the user's legs open
    on an exchange (docs/performance.md)."""
    # Summed by PostgreSQL per symbol: a few rows, not one per resting leg (thousands for a big account).
    rows = (
        DCAOrder.objects.filter(group__user_id=user_id, status__in=[OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED])
        .values("group__symbol")
        .order_by()
        .annotate(
            locked=Sum(
                ExpressionWrapper(
                    Coalesce(F("price"), Value(Decimal("0"))) * (F("quantity") - F("filled_quantity")),
                    output_field=DecimalField(max_digits=38, decimal_places=18),
                )
            )
        )
    )
    return {row["group__symbol"]: row["locked"] for row in rows}


def leg_and_pyramid_pnl(*, group: PositionGroup, price: Decimal | None) -> dict[str, dict[str, Any]]:
    """PnL per entry leg and per pyramid, fees included (docs/engine.md#position-arithmetic).

    A leg's cost is its fills' quote cost (plus quote fees) over the base it actually received; it realizes
    through its own per-leg take-profits; what it still holds is valued at `price`. Group-level closes
    (aggregate TP, exits, stops) are realized on the group, not split across legs.
    """
    base, quote = base_quote(group.symbol)
    zero = Decimal("0")
    legs: dict[str, dict[str, Any]] = {}
    pyramids: dict[int, dict[str, Decimal]] = {}
    for pyramid in group.pyramids.all():
        totals = pyramids.setdefault(pyramid.index, {"realized": zero, "unrealized": zero, "cost": zero})
        for leg in pyramid.orders.all():
            bought = position_totals([as_fill_data(f) for f in leg.fills.all()], base=base, quote=quote)
            net, cost, unit = bought.held, bought.cost, bought.avg_entry
            realized = sold = zero
            for tp in leg.tp_orders.all():
                for fill in tp.fills.all():
                    proceeds = net_proceeds(as_fill_data(fill), base=base, quote=quote)
                    realized += proceeds - (unit or zero) * fill.quantity
                    sold += fill.quantity
            remaining = max(net - sold, zero) if group.is_open else zero
            unrealized = (price - unit) * remaining if price is not None and unit is not None else None
            legs[str(leg.pk)] = {
                "cost": _fmt(cost),
                "held": _fmt(remaining),
                "avg_cost": _fmt(unit),
                "realized": _fmt(realized),
                "unrealized": _fmt(unrealized),
                "unrealized_percent": _fmt((price / unit - 1) * 100)
                if price is not None and unrealized is not None and unit
                else None,
            }
            totals["realized"] += realized
            totals["unrealized"] += unrealized or zero
            totals["cost"] += cost
    return {"legs": legs, "pyramids": {str(k): {n: _fmt(v) for n, v in t.items()} for k, t in pyramids.items()}}


def _fmt(value: Decimal | None) -> str | None:
    return None if value is None else f"{value.quantize(Decimal('1e-8')).normalize():f}"
