"""Live events to the owner's websocket group, sent only after the transaction commits."""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

OPERATORS_GROUP = "operators"


def user_group_name(user_id: Any) -> str:
    return f"user_{str(user_id).replace('-', '')}"


def _send(user_id: Any, event_type: str, data: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    message = {"type": "relay", "event": {"type": event_type, "data": data}}
    try:
        async_to_sync(layer.group_send)(user_group_name(user_id), message)
        async_to_sync(layer.group_send)(OPERATORS_GROUP, message)
    except Exception:  # a dead channel layer must never break trading
        logger.warning("could not publish %s", event_type, exc_info=True)


def publish(user_id: Any, event_type: str, data: dict[str, Any]) -> None:
    """Queue an event for after commit (immediately when no transaction is open)."""
    transaction.on_commit(lambda: _send(user_id, event_type, data))


def publish_group(group) -> None:  # type: ignore[no-untyped-def]
    publish(
        group.user_id,
        "group.updated",
        {
            "id": str(group.id),
            "symbol": group.symbol,
            "timeframe": group.timeframe,
            "side": group.side,
            "status": group.status,
            "pyramid_count": group.pyramid_count,
            "filled_quantity": str(group.filled_quantity),
            "avg_entry_price": str(group.avg_entry_price) if group.avg_entry_price is not None else None,
            "realized_pnl": str(group.realized_pnl),
        },
    )


def publish_order(order) -> None:  # type: ignore[no-untyped-def]
    publish(
        order.group.user_id,
        "order.updated",
        {
            "id": str(order.id),
            "group_id": str(order.group_id),
            "client_order_id": order.client_order_id,
            "side": order.side,
            "type": order.order_type,
            "price": str(order.price) if order.price else None,
            "quantity": str(order.quantity),
            "filled_quantity": str(order.filled_quantity),
            "status": order.status,
            "kind": "exit" if hasattr(order, "purpose") else "entry",
        },
    )


def publish_signal(signal) -> None:  # type: ignore[no-untyped-def]
    if signal.user_id is None:
        return
    publish(
        signal.user_id,
        "signal.received",
        {
            "id": str(signal.id),
            "symbol": signal.symbol,
            "action": signal.action,
            "classification": signal.classification,
            "status": signal.status,
            "reason": signal.reason,
            "group_id": str(signal.group_id) if signal.group_id else None,
        },
    )
