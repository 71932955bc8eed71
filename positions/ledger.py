"""The order ledger: the one way to find an order and to walk a group's, a user's or an account's orders.

Every order we send is a row committed before the exchange hears of it (docs/engine.md#order-placement):
an entry leg of a pyramid's grid (`DCAOrder`) or an exit (`ExitOrder`: per-leg and pyramid
take-profits, closes, stops). Code outside this module never asks which table an order lives in: it
finds orders here (`order_get`, `order_find`), walks them here (`orders_list`, `orders_of_group`,
`orders_watched`, ...) and reads their fills here (`group_fills`, `order_fills`,
`pyramid_entry_fills`, as plain `positions.rules.position.FillData`).

Design (docs/architecture.md#order-ledger): one selector module hiding two tables, not one table with
a kind. The two kinds differ in what they carry and in what points at them: an entry leg has its grid
level, expected price and TP percent and is unique per (pyramid, level); an exit has a purpose and a
slippage reference and points at the leg or pyramid it takes profit for; a fill belongs to exactly one
of the two (a check constraint); the API, the admin and the tests read both shapes by name. One table
would mean nullable columns for each kind's fields, conditional constraints, a data migration of every
order and fill, and every reader of `dca_orders` / `exit_orders` / `tp_orders` changed, for no
behaviour gained: the trouble with the two-table probes (`for model in (DCAOrder, ExitOrder)`) was
that they were written in a dozen places, not the schema. So the probes live here, once. The cost:
a walk over both kinds is two small indexed queries instead of one, and `order_table` keeps a cached
answer to which table an id is in (an order never changes table).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db.models import Q, QuerySet

from exchanges.client_ids import intent_id_from_client_order_id

from .choices import FINAL_ORDER_STATUSES, OrderStatus
from .models import DCAOrder, ExitOrder, Fill
from .rules.position import FillData

Order = DCAOrder | ExitOrder
OrderTable = type[DCAOrder] | type[ExitOrder]
TABLES: tuple[OrderTable, ...] = (DCAOrder, ExitOrder)

# Orders the exchange may hold: resting, outcome unknown, or sent at least once without an answer.
MAY_BE_ON_EXCHANGE = Q(status__in=[OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED, OrderStatus.UNKNOWN]) | Q(
    status=OrderStatus.PENDING, submit_attempts__gt=0
)
FILL_FIELDS = ("side", "price", "quantity", "fee", "fee_asset", "fee_quote_value")


# ------------------------------------------------------------------------------------------------ one order


def order_table(order_id: Any) -> OrderTable:
    """Which table an order intent lives in; an unknown id raises `ExitOrder.DoesNotExist`."""
    return _order_table(str(order_id))


@functools.lru_cache(maxsize=50_000)
def _order_table(order_id: str) -> OrderTable:
    # An order never changes table, so the answer is kept; an unknown id raises (and is not kept).
    if DCAOrder.objects.filter(pk=order_id).exists():
        return DCAOrder
    if ExitOrder.objects.filter(pk=order_id).exists():
        return ExitOrder
    raise ExitOrder.DoesNotExist(f"no order intent {order_id}")


def order_get(*, order_id: Any, lock: bool = False, related: Sequence[str] = ()) -> Order:
    """One order by id; `lock` takes its row lock (inside the caller's transaction)."""
    queryset: QuerySet[Any] = order_table(order_id).objects.all()
    if lock:
        queryset = queryset.select_for_update()
    if related:
        queryset = queryset.select_related(*related)
    order: Order = queryset.get(pk=order_id)
    return order


def order_find(
    *,
    client_order_id: str | None = None,
    exchange_order_id: str | None = None,
    config_id: Any = None,
    related: Sequence[str] = ("group",),
) -> Order | None:
    """The order an exchange reports, by our client order id or by the exchange's id (or None).

    A client order id is our intent's UUID encoded (`exchanges.client_ids`), so it is decoded and
    looked up by primary key; an exchange order id is unique only per account, hence `config_id`.
    """
    if client_order_id:
        intent = intent_id_from_client_order_id(client_order_id)
        if intent is not None:
            for table in TABLES:
                found = table.objects.filter(pk=intent).select_related(*related).first()
                if found is not None:
                    return found
        return _first(Q(client_order_id=client_order_id), related)
    if exchange_order_id:
        where = Q(exchange_order_id=exchange_order_id)
        if config_id is not None:
            where &= Q(exchange_config_id=config_id)
        return _first(where, related)
    return None


def _first(where: Q, related: Sequence[str]) -> Order | None:
    for table in TABLES:
        found = table.objects.filter(where).select_related(*related).first()
        if found is not None:
            return found
    return None


def order_status(*, order_id: Any) -> str:
    status: str = order_table(order_id).objects.values_list("status", flat=True).get(pk=order_id)
    return status


def is_entry_leg(order: Order) -> bool:
    return isinstance(order, DCAOrder)


# ------------------------------------------------------------------------------------------------ walks


def _where(
    *,
    group_id: Any = None,
    user_id: Any = None,
    config_id: Any = None,
    statuses: Iterable[str] | None = None,
    exclude_statuses: Iterable[str] | None = None,
    where: Q | None = None,
) -> tuple[Q, Q | None]:
    q = where if where is not None else Q()
    if group_id is not None:
        q &= Q(group_id=group_id)
    if user_id is not None:
        q &= Q(group__user_id=user_id)
    if config_id is not None:
        q &= Q(exchange_config_id=config_id)
    if statuses is not None:
        q &= Q(status__in=list(statuses))
    excluded = Q(status__in=list(exclude_statuses)) if exclude_statuses is not None else None
    return q, excluded


def _querysets(related: Sequence[str] = (), **filters: Any) -> list[QuerySet[Any]]:
    q, excluded = _where(**filters)
    querysets: list[QuerySet[Any]] = []
    for table in TABLES:
        queryset: QuerySet[Any] = table.objects.filter(q)
        if excluded is not None:
            queryset = queryset.exclude(excluded)
        if related:
            queryset = queryset.select_related(*related)
        querysets.append(queryset)
    return querysets


def orders_list(
    *,
    group_id: Any = None,
    user_id: Any = None,
    config_id: Any = None,
    statuses: Iterable[str] | None = None,
    exclude_statuses: Iterable[str] | None = None,
    where: Q | None = None,
    related: Sequence[str] = (),
) -> list[Order]:
    """Orders of both kinds matching every filter given: entry legs first, then exits."""
    found: list[Order] = []
    for queryset in _querysets(
        related,
        group_id=group_id,
        user_id=user_id,
        config_id=config_id,
        statuses=statuses,
        exclude_statuses=exclude_statuses,
        where=where,
    ):
        found += list(queryset)
    return found


def orders_count(
    *,
    group_id: Any = None,
    user_id: Any = None,
    config_id: Any = None,
    statuses: Iterable[str] | None = None,
    exclude_statuses: Iterable[str] | None = None,
    where: Q | None = None,
) -> int:
    querysets = _querysets(
        group_id=group_id,
        user_id=user_id,
        config_id=config_id,
        statuses=statuses,
        exclude_statuses=exclude_statuses,
        where=where,
    )
    return sum(queryset.count() for queryset in querysets)


def orders_exist(
    *,
    group_id: Any = None,
    config_id: Any = None,
    statuses: Iterable[str] | None = None,
    exclude_statuses: Iterable[str] | None = None,
    where: Q | None = None,
) -> bool:
    querysets = _querysets(
        group_id=group_id, config_id=config_id, statuses=statuses, exclude_statuses=exclude_statuses, where=where
    )
    return any(queryset.exists() for queryset in querysets)


def orders_of_group(*, group_id: Any, unsettled: bool = False) -> list[Order]:
    """A group's orders (entry legs, then exits); `unsettled`: only those not filled, cancelled, rejected
    or failed yet."""
    return orders_list(group_id=group_id, exclude_statuses=FINAL_ORDER_STATUSES if unsettled else None)


def group_has_unsettled_orders(*, group_id: Any) -> bool:
    return orders_exist(group_id=group_id, exclude_statuses=FINAL_ORDER_STATUSES)


def orders_watched(*, config_id: Any) -> list[Order]:
    """An account's orders the fill monitor and reconciliation ask the exchange about."""
    return orders_list(config_id=config_id, where=MAY_BE_ON_EXCHANGE)


def configs_with_watched_orders() -> set[Any]:
    """The exchange configs with at least one watched order."""
    ids: set[Any] = set()
    for table in TABLES:
        ids |= set(table.objects.filter(MAY_BE_ON_EXCHANGE).values_list("exchange_config_id", flat=True))
    return ids


def orders_unsent(*, config_id: Any, created_before: datetime) -> list[Order]:
    """Intents committed before `created_before` and never sent (a crash between commit and send)."""
    return orders_list(
        config_id=config_id,
        where=Q(status=OrderStatus.PENDING, submit_attempts=0, created_at__lt=created_before),
        related=("group",),
    )


def client_order_ids(*, config_id: Any, statuses: Iterable[str]) -> set[str]:
    ids: set[str] = set()
    for queryset in _querysets(config_id=config_id, statuses=statuses):
        ids |= set(queryset.values_list("client_order_id", flat=True))
    return ids


# ------------------------------------------------------------------------------------------------ fills


def fill_owner(order: Order) -> dict[str, Order]:
    """The keyword that attaches a new `Fill` row to its order."""
    return {"dca_order": order} if isinstance(order, DCAOrder) else {"exit_order": order}


def as_fill_data(fill: Fill) -> FillData:
    """A fill row (e.g. one already prefetched) as the rules' plain data."""
    return FillData(
        side=fill.side,
        price=fill.price,
        quantity=fill.quantity,
        fee=fill.fee,
        fee_asset=fill.fee_asset,
        fee_quote_value=fill.fee_quote_value,
    )


def _fill_data(fills: QuerySet[Fill]) -> list[FillData]:
    return [FillData(**row) for row in fills.order_by("executed_at", "pk").values(*FILL_FIELDS)]


def group_fills(*, group_id: Any) -> list[FillData]:
    """A group's fills in the order they executed (the input of `position_totals`)."""
    return _fill_data(Fill.objects.filter(group_id=group_id))


def order_fills(*, order: Order) -> list[FillData]:
    return _fill_data(Fill.objects.filter(**fill_owner(order)))


def order_trade_ids(*, order: Order) -> set[str]:
    """The exchange trade ids of the fills already booked for an order."""
    return set(Fill.objects.filter(**fill_owner(order)).values_list("trade_id", flat=True))


def order_recorded_quantity(*, order: Order) -> Decimal:
    """The base quantity of the fills already booked for an order."""
    quantities = Fill.objects.filter(**fill_owner(order)).values_list("quantity", flat=True)
    return sum(quantities, Decimal("0"))


def pyramid_entry_fills(*, pyramid_id: Any) -> list[FillData]:
    """The buy fills of one pyramid's entry legs (its own average for `pyramid_aggregate`)."""
    return _fill_data(Fill.objects.filter(dca_order__pyramid_id=pyramid_id, side="buy"))
