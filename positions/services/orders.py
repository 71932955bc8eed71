"""Crash-safe order placement and order state bookkeeping.

The rules (docs/engine.md#order-placement, docs/engine.md#send-lock):
- an order row with its deterministic client order id is committed before any exchange call;
- `submit_attempts` is incremented and committed before each send, so after a crash a row that
  may have reached the exchange is looked up by client id first, never blindly resent;
- an unknown outcome (timeout or 5xx on placement) is resolved by the adapter's resolver; what is
  still unknown stays `unknown` for the next retry or for reconciliation;
- only temporary errors are retried; permanent ones reject the order with the exchange's reason;
- one process at a time looks an intent up and sends or cancels it (`_send_lock`); another one that
  gets there meanwhile (a retried task, a redelivered task, the fill monitor, reconciliation) backs
  off with RETRY instead of finding nothing yet and sending the same order a second time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from datetime import timedelta
from decimal import Decimal
from typing import Any, cast

from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.logs import log_error, log_warning
from core.locks import advisory_lock_try
from exchanges.adapters.types import OrderRequest, OrderState, OrderType, Side
from exchanges.exceptions import (
    CircuitOpenError,
    ExchangeError,
    OrderNotFoundError,
    PermanentExchangeError,
    TemporaryExchangeError,
    UnknownOutcomeError,
)
from exchanges.services import adapter_for

from .. import ledger
from ..choices import (
    FINAL_ORDER_STATUSES,
    RESTING_ORDER_STATUSES,
    OrderStatus,
)
from ..events import publish_order
from ..hooks import ORDER_FILLED, ORDER_PLACED, ORDER_REJECTED, engine_event_emit, order_event_data
from ..ledger import Order
from ..models import DCAOrder, Fill, PositionGroup
from .fees import fee_quote_values
from .positions import group_recompute
from .takeprofit import on_fills

logger = logging.getLogger(__name__)

STATE_MAP = {
    "open": OrderStatus.OPEN,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "expired": OrderStatus.CANCELED,
    "rejected": OrderStatus.REJECTED,
}

# Submit outcomes.
PLACED, SETTLED, RETRY, UNKNOWN, REJECTED = "placed", "settled", "retry", "unknown", "rejected"

# Namespace (first key) of the advisory locks taken by `_send_lock`.
SEND_LOCK_NAMESPACE = 0x5E4D


def order_request(order: Order) -> OrderRequest:
    return OrderRequest(
        symbol=order.symbol,
        # the model's choices are these values, and OrderRequest checks them again
        side=cast(Side, order.side),
        type=cast(OrderType, order.order_type),
        quantity=order.quantity,
        price=order.price,
        client_order_id=order.client_order_id,
    )


def _send_lock(order_id: Any) -> contextlib.AbstractContextManager[bool]:
    """Whether this process may look the order intent up and send or cancel it now (never waits).

    Without it two senders of one intent can both look it up, both find nothing (the other's request has
    not landed yet) and both send it: a second order when the first one filled at once, or a "duplicate
    client order id" answer booked as a rejection of an order that exists.
    """
    return advisory_lock_try(SEND_LOCK_NAMESPACE, order_id)


def order_submit(*, order_id: Any, adapter: Any = None) -> str:
    """Send one committed order intent (or find it on the exchange if it may already be there).

    RETRY, without any exchange call, while another process is sending or cancelling the same intent.
    """
    with _send_lock(order_id) as ours:
        if not ours:
            return RETRY
        return _submit(order_id=order_id, adapter=adapter)


def _submit(*, order_id: Any, adapter: Any) -> str:
    with transaction.atomic():
        order = ledger.order_get(order_id=order_id, lock=True, related=("exchange_config",))
        if order.status not in (OrderStatus.PENDING, OrderStatus.UNKNOWN):
            return SETTLED
        may_exist = order.submit_attempts > 0 or order.status == OrderStatus.UNKNOWN
        order.submit_attempts += 1
        order.submitted_at = timezone.now()
        order.save(update_fields=["submit_attempts", "submitted_at", "updated_at"])
    adapter = adapter or adapter_for(order.exchange_config)
    try:
        state: OrderState | None = None
        if may_exist:
            try:
                state = adapter.fetch_order(order.symbol, client_order_id=order.client_order_id)
            except OrderNotFoundError:
                state = None  # confirmed absent: sending with the same id is safe
        if state is None:
            state = adapter.place_order_safely(order_request(order))
    except UnknownOutcomeError as exc:
        _mark(order_id, status=OrderStatus.UNKNOWN, error=str(exc))
        log_warning(
            "ORDER",
            f"Order {order.client_order_id} outcome unknown; will look it up",
            user=_user_of(order),
            details={"client_order_id": order.client_order_id},
        )
        return UNKNOWN
    except (TemporaryExchangeError, CircuitOpenError) as exc:
        _mark(order_id, error=str(exc))
        return RETRY
    except PermanentExchangeError as exc:
        _mark(order_id, status=OrderStatus.REJECTED, error=str(exc))
        order.status, order.last_error = OrderStatus.REJECTED, str(exc)
        data = order_event_data(order=order, group=order.group, fills=None)
        engine_event_emit(kind=ORDER_REJECTED, user_id=order.group.user_id, group_id=order.group_id, data=data)
        log_error(
            "ORDER",
            f"Order {order.client_order_id} rejected: {exc}",
            user=_user_of(order),
            details={"client_order_id": order.client_order_id, "symbol": order.symbol},
        )
        return REJECTED
    order_apply_state(order_id=order_id, state=state, adapter=adapter)
    return PLACED


def _user_of(order: Order) -> Any:
    return order.exchange_config.user if hasattr(order, "exchange_config") else None


def _mark(order_id: Any, *, status: str | None = None, error: str = "") -> None:
    with transaction.atomic():
        order = ledger.order_get(order_id=order_id, lock=True, related=("group",))
        fields = ["last_error", "updated_at"]
        order.last_error = error[:2000]
        if status is not None and order.status not in FINAL_ORDER_STATUSES:
            order.status = status
            fields.append("status")
            if status in (OrderStatus.CANCELED,):
                order.canceled_at = timezone.now()
                fields.append("canceled_at")
        order.save(update_fields=fields)
        publish_order(order)


def order_apply_state(*, order_id: Any, state: OrderState, adapter: Any = None) -> Order:
    """Record what the exchange says about an order: ids, status, fills (once each), group totals."""
    state = _with_own_trades(order_id, state, adapter)
    # A fee in a third asset (BNB) is valued now, outside the transaction (a ticker request); never raises.
    fee_values = fee_quote_values(order_id=order_id, fills=state.fills, symbol=state.symbol, adapter=adapter)
    with transaction.atomic():
        order = ledger.order_get(order_id=order_id, lock=True, related=("group",))
        group = PositionGroup.objects.select_for_update().get(pk=order.group_id)
        new_status = STATE_MAP.get(state.status, OrderStatus.OPEN)
        fields = {"updated_at"}
        if state.exchange_order_id and order.exchange_order_id != state.exchange_order_id:
            order.exchange_order_id = str(state.exchange_order_id)
            fields.add("exchange_order_id")
        placed = order.acknowledged_at is None
        if placed:
            order.acknowledged_at = timezone.now()
            fields.add("acknowledged_at")
        new_fills = _record_fills(order, group, state, fee_values)
        filled = max(order.filled_quantity, state.filled_quantity or Decimal("0"))
        if filled != order.filled_quantity:
            order.filled_quantity = filled
            fields.add("filled_quantity")
        if state.average_price:
            order.filled_price = state.average_price
            fields.add("filled_price")
        if state.fee is not None and state.fee != order.fee:
            order.fee, order.fee_asset = state.fee, state.fee_asset or order.fee_asset
            fields |= {"fee", "fee_asset"}
        # Statuses never go backwards (a late 'open' answer must not undo a fill we have seen).
        moves = order.status not in FINAL_ORDER_STATUSES or new_status == OrderStatus.FILLED
        if moves and new_status != order.status:
            order.status = new_status
            fields.add("status")
            if new_status == OrderStatus.FILLED:
                order.filled_at = timezone.now()
                fields.add("filled_at")
            if new_status == OrderStatus.CANCELED:
                order.canceled_at = timezone.now()
                fields.add("canceled_at")
        order.save(update_fields=sorted(fields))
        publish_order(order)
        if placed and isinstance(order, DCAOrder) and order.dca_level == 0 and order.status == OrderStatus.OPEN:
            # An entry that rests on the book (one that filled at once is told by its fill).
            data = order_event_data(order=order, group=group, fills=None)
            engine_event_emit(kind=ORDER_PLACED, user_id=group.user_id, group_id=group.pk, data=data)
        if new_fills or "status" in fields:
            group_recompute(group=group)
            if new_fills:
                on_fills(order=order, group=group, fills=new_fills)
                data = order_event_data(order=order, group=group, fills=new_fills)
                engine_event_emit(kind=ORDER_FILLED, user_id=group.user_id, group_id=group.pk, data=data)
    return order


def _with_own_trades(order_id: Any, state: OrderState, adapter: Any) -> OrderState:
    """The state with every fill of the order itemized: trade id, price, time and the fee the exchange took.

    Outside the placement answer Binance reports an order's fills only as totals (GET order, open orders,
    cancel): no fee. Booking that as one fill without its fee overstates a buy by the base-asset fee, and
    the TPs and exits that follow would sell more than is held. So the order's own trades are fetched;
    while they cannot all be had, nothing new is booked and the order stays watched (not final) for the
    next pass.
    """
    zero = Decimal("0")
    total = state.filled_quantity or zero
    itemized = sum((fill.quantity for fill in state.fills), zero)
    if total <= itemized:
        return state
    order = ledger.order_get(order_id=order_id, related=("exchange_config",))
    recorded = ledger.order_recorded_quantity(order=order)
    if total <= recorded:
        return state  # nothing new to book
    exchange_order_id = str(state.exchange_order_id or order.exchange_order_id or "")
    trades: list[Any] = []
    problem = "the exchange did not report its order id"
    if exchange_order_id:
        try:
            adapter = adapter or adapter_for(order.exchange_config)
            since = order.created_at - timedelta(minutes=5)  # clock skew between us and the exchange
            trades = [
                trade
                for trade in adapter.fetch_my_trades(order.symbol, since=since)
                if str(trade.exchange_order_id) == exchange_order_id
            ]
            problem = f"{len(trades)} trades found for {total} filled"
        except ExchangeError as exc:
            problem = str(exc)
    if sum((trade.quantity for trade in trades), zero) >= total:
        return dataclasses.replace(state, fills=tuple(trades))
    logger.warning("order %s: fills of %s not itemized yet (%s)", order.client_order_id, total, problem)
    known = max(recorded, itemized)
    return dataclasses.replace(
        state,
        status="partially_filled" if known > 0 else "open",
        filled_quantity=known,
        average_price=None,
        fee=None,  # type: ignore[arg-type]
    )


def _record_fills(
    order: Order, group: PositionGroup, state: OrderState, fee_values: dict[str, Decimal | None]
) -> list[Fill]:
    """Book each itemized fill once (`_with_own_trades` has made sure every fill is itemized), a fee in a
    third asset with the quote value `fee_quote_values` found for it (docs/engine.md#position-arithmetic)."""
    created: list[Fill] = []
    fills = list(state.fills)
    kwargs = ledger.fill_owner(order)
    for fill in fills:
        created += _create_fill(
            group,
            kwargs,
            trade_id=str(fill.trade_id),
            side=order.side,
            price=fill.price,
            quantity=fill.quantity,
            fee=fill.fee or Decimal("0"),
            fee_asset=fill.fee_asset or "",
            fee_quote_value=fee_values.get(str(fill.trade_id)),
            # a placement answer's fills carry no time of their own: they happened when it was accepted
            executed_at=fill.timestamp or state.timestamp or timezone.now(),
        )
    return created


def _create_fill(group: PositionGroup, owner: dict[str, Order], **values: Any) -> list[Fill]:
    try:
        with transaction.atomic():
            return [Fill.objects.create(group=group, **owner, **values)]
    except IntegrityError:
        return []  # this trade is already in the ledger


def order_cancel(*, order_id: Any, adapter: Any = None) -> str:
    """Cancel an order wherever it is: never sent → locally; maybe sent → look up, then cancel.

    RETRY while another process is sending the same intent (its lookup would not see it yet).
    """
    with _send_lock(order_id) as ours:
        if not ours:
            return RETRY
        return _cancel(order_id=order_id, adapter=adapter)


def _cancel(*, order_id: Any, adapter: Any) -> str:
    with transaction.atomic():
        order = ledger.order_get(order_id=order_id, lock=True, related=("exchange_config",))
        if order.status in FINAL_ORDER_STATUSES:
            return SETTLED
        if order.status == OrderStatus.PENDING and order.submit_attempts == 0:
            order.status, order.canceled_at = OrderStatus.CANCELED, timezone.now()
            order.save(update_fields=["status", "canceled_at", "updated_at"])
            publish_order(order)
            return SETTLED
    adapter = adapter or adapter_for(order.exchange_config)
    try:
        if order.status in (OrderStatus.PENDING, OrderStatus.UNKNOWN) or not order.exchange_order_id:
            try:
                state = adapter.fetch_order(order.symbol, client_order_id=order.client_order_id)
            except OrderNotFoundError:
                _mark(order_id, status=OrderStatus.CANCELED, error="never reached the exchange")
                return SETTLED
            order_apply_state(order_id=order_id, state=state, adapter=adapter)
            if STATE_MAP.get(state.status) not in RESTING_ORDER_STATUSES:
                return SETTLED
        try:
            state = adapter.cancel_order(
                order.symbol, exchange_order_id=order.exchange_order_id or None, client_order_id=order.client_order_id
            )
        except OrderNotFoundError:
            # Filled or cancelled meanwhile: the lookup says which.
            state = adapter.fetch_order(order.symbol, client_order_id=order.client_order_id)
    except ExchangeError as exc:
        _mark(order_id, error=f"cancel failed: {exc}")
        return RETRY
    order_apply_state(order_id=order_id, state=state, adapter=adapter)
    return SETTLED


def order_sync(*, order_id: Any, adapter: Any = None) -> str:
    """Refresh one order from the exchange (used for orders that left the open list)."""
    order = ledger.order_get(order_id=order_id, related=("exchange_config",))
    if order.status in FINAL_ORDER_STATUSES:
        return SETTLED
    if order.status == OrderStatus.PENDING and order.submit_attempts == 0:
        return SETTLED
    adapter = adapter or adapter_for(order.exchange_config)
    try:
        state = adapter.fetch_order(order.symbol, client_order_id=order.client_order_id)
    except OrderNotFoundError:
        if order.status == OrderStatus.UNKNOWN or order.status == OrderStatus.PENDING:
            return order_submit(order_id=order_id, adapter=adapter)
        _mark(order_id, error="not found on the exchange")
        return RETRY
    except ExchangeError as exc:
        _mark(order_id, error=str(exc))
        return RETRY
    order_apply_state(order_id=order_id, state=state, adapter=adapter)
    return PLACED
