"""Closing a group: cancel what rests, sell what is held at market, book PnL, free the slot.

`group_close` decides (first trigger wins: under the group's row lock only one caller moves it to
`closing`); `group_close_continue` does the work and can be re-run safely after any crash or error.
What to sell and what counts as dust or too much slippage are `positions.rules.exits`
(docs/engine.md#closing-a-group).
"""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from django.db import transaction

from accounts.logs import audit, log_info, log_warning
from exchanges.client_ids import client_order_id_for
from exchanges.exceptions import ExchangeError
from exchanges.services import adapter_for

from .. import jobs, ledger
from ..choices import (
    FINAL_ORDER_STATUSES,
    ExitPurpose,
    GroupStatus,
    OrderStatus,
    OrderType,
)
from ..config import engine_setting
from ..models import ExitOrder, PositionGroup
from ..rules.exits import close_quantity, slippage_over_limit
from ..rules.position import base_quote
from . import orders
from .positions import group_recompute
from .queue import queue_remove
from .state import group_event, group_transition

CLOSE_PURPOSES = (
    ExitPurpose.EXIT_SIGNAL,
    ExitPurpose.MANUAL,
    ExitPurpose.STOP_LOSS,
    ExitPurpose.TRAILING_STOP,
    ExitPurpose.TAKE_PROFIT_AGGREGATE,
    ExitPurpose.RISK,
)
ZERO = Decimal("0")


class CloseRefusedError(Exception):
    """The group cannot be asked to close: it is closing already, closed or failed (the message says so)."""


def group_close_request(*, group: PositionGroup, actor: Any, ip: str | None = None) -> None:
    """A trader's close at market (`POST /api/positions/<id>/close` and the group page): audited, then
    `positions.close_group` in the worker, which runs `group_close` (first trigger wins)."""
    if group.status in (GroupStatus.CLOSING, GroupStatus.CLOSED, GroupStatus.FAILED):
        raise CloseRefusedError(f"The position is already {group.status}.")
    audit(user=actor, action="position_close", resource="position_group", resource_id=group.pk, ip=ip)
    jobs.enqueue_after_commit("positions.close_group", str(group.pk), ExitPurpose.MANUAL.value)


def group_close(*, group_id: Any, purpose: str, actor: Any = None, reason: str = "") -> bool:
    """Start closing a group. Returns False when another trigger got there first."""
    with transaction.atomic():
        group = PositionGroup.objects.select_for_update().get(pk=group_id)
        if group.status in (GroupStatus.CLOSING, GroupStatus.CLOSED, GroupStatus.FAILED):
            return False
        group.close_reason = purpose
        group.save(update_fields=["close_reason", "updated_at"])
        group_transition(
            group_id=group.pk,
            to=GroupStatus.CLOSING,
            locked=group,
            actor=actor,
            reason=reason or ExitPurpose(purpose).label,
        )
        queue_remove(
            user_id=group.user_id,
            exchange_config_id=group.exchange_config_id,
            symbol=group.symbol,
            timeframe=group.timeframe,
            side=group.side,
        )
    group_close_continue(group_id=group_id)
    return True


def group_close_continue(*, group_id: Any) -> str:
    """Idempotent: cancel resting orders, sell the rest at market, close when nothing is left."""
    group = PositionGroup.objects.select_related("exchange_config", "user").get(pk=group_id)
    if group.status != GroupStatus.CLOSING:
        return f"group is {group.status}"
    adapter = adapter_for(group.exchange_config)
    close_order = _close_order(group)
    # 1. Cancel every unsettled entry leg and TP (the close order itself excepted).
    blocked = False
    for order in ledger.orders_of_group(group_id=group.pk, unsettled=True):
        if close_order is not None and order.pk == close_order.pk:
            continue
        if orders.order_cancel(order_id=order.pk, adapter=adapter) == orders.RETRY:
            blocked = True
    if blocked:
        return "waiting for cancels"
    group.refresh_from_db()
    # 2. Sell what is held (one market order; re-used when this runs again).
    if close_order is None and group.filled_quantity > 0:
        close_order = _create_close_order(group, adapter)
    if close_order is not None and close_order.status not in FINAL_ORDER_STATUSES:
        outcome = orders.order_submit(order_id=close_order.pk, adapter=adapter)
        if outcome in (orders.RETRY, orders.UNKNOWN):
            return "close order not confirmed yet"
        close_order.refresh_from_db()
        if close_order.status not in FINAL_ORDER_STATUSES:
            orders.order_sync(order_id=close_order.pk, adapter=adapter)
            close_order.refresh_from_db()
        if close_order.status == OrderStatus.REJECTED:
            log_warning(
                "TRADING",
                f"{group.symbol}: close order rejected: {close_order.last_error}",
                user=group.user,
                details={"group_id": str(group.pk)},
            )
            return "close order rejected"
        if close_order.status != OrderStatus.FILLED:
            return "close order resting"
        _record_slippage(group, close_order)
    return _finish(group_id)


def _close_order(group: PositionGroup) -> ExitOrder | None:
    """The close's market sell still in flight (committed, sent or partly filled), if any.

    A filled one is never it: what it sold is already in the group's holding (its fills are booked with
    its status, under the group's lock), so whatever is still held needs a new sell. An earlier market sell
    of the group, such as a risk offset's partial sale of a winner (purpose `risk`), is filled and settled
    and must not be taken for the close (docs/engine.md#closing-a-group)."""
    return (
        ExitOrder.objects.filter(group=group, purpose__in=CLOSE_PURPOSES, order_type=OrderType.MARKET)
        .exclude(status__in=[OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.FAILED, OrderStatus.FILLED])
        .order_by("-created_at")
        .first()
    )


def _create_close_order(group: PositionGroup, adapter: Any) -> ExitOrder | None:
    rules = adapter.market_rules(group.symbol)
    try:
        reference = adapter.fetch_ticker(group.symbol).last
    except ExchangeError:
        reference = group.avg_entry_price or ZERO
    quantity = close_quantity(held=group.filled_quantity, reference_price=reference or ZERO, rules=rules)
    if quantity is None:
        group_event(
            group,
            "dust",
            f"{group.filled_quantity} {base_quote(group.symbol)[0]} left is below the exchange minimum; "
            "nothing to sell",
        )
        return None
    with transaction.atomic():
        locked = PositionGroup.objects.select_for_update().get(pk=group.pk)
        existing = _close_order(locked)
        if existing is not None:
            return existing
        return market_sell_intent(
            locked, quantity=quantity, purpose=locked.close_reason or ExitPurpose.MANUAL, reference_price=reference
        )


def market_sell_intent(
    locked: PositionGroup, *, quantity: Decimal, purpose: str, reference_price: Decimal | None, pyramid: Any = None
) -> ExitOrder:
    """Commit the intent of a market sell (the caller holds the group's row lock): the row and its
    deterministic client order id exist before anything is sent (`orders.order_submit`)."""
    order_id = uuid.uuid4()
    return ExitOrder.objects.create(
        id=order_id,
        group=locked,
        exchange_config_id=locked.exchange_config_id,
        symbol=locked.symbol,
        side="sell",
        order_type=OrderType.MARKET,
        price=None,
        quantity=quantity,
        client_order_id=client_order_id_for(order_id),
        purpose=purpose,
        pyramid=pyramid,
        reference_price=reference_price,
    )


def _record_slippage(group: PositionGroup, order: ExitOrder) -> None:
    if not order.reference_price or not order.filled_price:
        return
    limit = Decimal(str(engine_setting(group.config, "max_slippage_percent")))
    slippage, over = slippage_over_limit(
        reference=order.reference_price, filled=order.filled_price, limit_percent=limit
    )
    ExitOrder.objects.filter(pk=order.pk).update(slippage_percent=slippage.quantize(Decimal("1e-8")))
    if over:
        log_warning(
            "TRADING",
            f"{group.symbol}: exit slipped {slippage:.3f}% (limit {limit}%)",
            user=group.user,
            details={
                "group_id": str(group.pk),
                "reference": str(order.reference_price),
                "filled": str(order.filled_price),
            },
        )


def _finish(group_id: Any) -> str:
    with transaction.atomic():
        group = PositionGroup.objects.select_for_update().get(pk=group_id)
        if group.status != GroupStatus.CLOSING:
            return f"group is {group.status}"
        if ledger.group_has_unsettled_orders(group_id=group.pk):
            return "orders still open"
        group_recompute(group=group)
        group_transition(
            group_id=group.pk,
            to=GroupStatus.CLOSED,
            locked=group,
            reason=f"realized PnL {group.realized_pnl.normalize():f}",
        )
        log_info(
            "TRADING",
            f"{group.symbol} closed ({group.close_reason}); realized PnL "
            f"{group.realized_pnl.quantize(Decimal('0.00000001'))}",
            user=group.user,
            details={"group_id": str(group.pk)},
        )
    return "closed"
