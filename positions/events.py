"""Live events to the owner's websocket group, sent only after the transaction commits."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from typing import Any

from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger(__name__)

OPERATORS_GROUP = "operators"


def user_group_name(user_id: Any) -> str:
    return f"user_{str(user_id).replace('-', '')}"


class _EventSender:
    """One long-lived event loop per process that sends live events in batches.

    `async_to_sync(group_send)` per event starts a thread, a loop and a Redis connection every time
    (≈4.5 ms). Here callers only append to a list; the loop is woken once per burst and sends what has
    gathered. A caller never blocks on Redis. Recreated after a fork (celery prefork children).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pid = 0
        self._pending: list[tuple[tuple[str, ...], dict[str, Any]]] = []
        self._woken = False

    def _running_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None or self._pid != os.getpid() or self._loop.is_closed():
            self._loop = asyncio.new_event_loop()
            self._pid = os.getpid()
            self._pending, self._woken = [], False
            threading.Thread(target=self._loop.run_forever, name="live-events", daemon=True).start()
        return self._loop

    def send(self, groups: tuple[str, ...], event: dict[str, Any]) -> None:
        with self._lock:
            loop = self._running_loop()
            self._pending.append((groups, event))
            if self._woken:
                return
            self._woken = True
        loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:  # on the loop
        with self._lock:
            batch, self._pending, self._woken = self._pending, [], False
        task = asyncio.ensure_future(_send_batch(batch))
        task.add_done_callback(_log_failure)


_events = _EventSender()

Event = tuple[tuple[str, ...], dict[str, Any]]  # (channel groups, event)


class LoopBatcher:
    """Sends events from the running event loop, gathered over `window_s` into one message per group.

    The webhook's ASGI route runs the intake on its event loop and hands the events its transaction
    committed to one of these: no thread hand-off per event.

    A burst of alerts makes events for many users but the operators' group gets every one of them:
    gathering them for a few milliseconds turns one publish per alert into one per burst.
    """

    def __init__(self, window_s: float = 0.02) -> None:
        self.window_s = window_s
        self._pending: list[Event] = []
        self._scheduled_on: asyncio.AbstractEventLoop | None = None

    def add(self, events: list[Event]) -> None:
        """Queue `events`; call from the event loop's thread."""
        if not events:
            return
        self._pending.extend(events)
        loop = asyncio.get_running_loop()
        # A flush scheduled on another loop (one that has ended: tests run one loop per call) never comes.
        if self._scheduled_on is not loop:
            self._scheduled_on = loop
            loop.call_later(self.window_s, self._flush)

    def _flush(self) -> None:
        batch, self._pending, self._scheduled_on = self._pending, [], None
        task = asyncio.ensure_future(_send_batch(batch))
        task.add_done_callback(_log_failure)


async def _send_batch(batch: list[Event]) -> None:
    """One channel message per group for the whole batch (a webhook alone makes two or three events,
    and every event goes to the owner's group and the operators' group), sent in one go where the layer
    can (`tradingsite.layers.PubSubChannelLayer.group_send_many`)."""
    layer = get_channel_layer()
    if layer is None:
        return
    per_group: dict[str, list[dict[str, Any]]] = {}
    for groups, event in batch:
        for name in groups:
            per_group.setdefault(name, []).append(event)
    messages: dict[str, dict[str, Any]] = {
        name: {"type": "relay", "event": events[0]} if len(events) == 1 else {"type": "relay_many", "events": events}
        for name, events in per_group.items()
    }
    try:
        send_many = getattr(layer, "group_send_many", None)
        if send_many is not None:
            await send_many(messages)
            return
        for name, message in messages.items():
            await layer.group_send(name, message)
    except Exception as exc:  # a dead channel layer must never break trading
        logger.warning("could not publish a live event: %s", exc)


def _log_failure(task: asyncio.Future[None]) -> None:
    if not task.cancelled() and task.exception() is not None:  # a dead channel layer must never break trading
        logger.warning("could not publish a live event: %s", task.exception())


def event(user_id: Any, event_type: str, data: dict[str, Any]) -> Event:
    """An event for the owner's group and the operators' group."""
    return (user_group_name(user_id), OPERATORS_GROUP), {"type": event_type, "data": data}


def publish_events(events: list[Event]) -> None:
    """Send `events` once the current transaction commits (at once when none is open)."""
    if not events:
        return

    def send() -> None:
        for groups, event in events:
            _events.send(groups, event)

    transaction.on_commit(send)


def publish(user_id: Any, event_type: str, data: dict[str, Any]) -> None:
    """Queue an event for after commit (immediately when no transaction is open)."""
    publish_events([event(user_id, event_type, data)])


def group_event(group) -> Event:  # type: ignore[no-untyped-def]
    return event(
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


def publish_group(group) -> None:  # type: ignore[no-untyped-def]
    publish_events([group_event(group)])


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


def signal_event(
    *,
    signal_id: Any,
    user_id: Any,
    symbol: str,
    action: str,
    classification: str,
    status: str,
    reason: str,
    group_id: Any,
) -> Event:
    """`signal.received`: a stored signal's outcome."""
    return event(
        user_id,
        "signal.received",
        {
            "id": str(signal_id),
            "symbol": symbol,
            "action": action,
            "classification": classification,
            "status": status,
            "reason": reason,
            "group_id": str(group_id) if group_id else None,
        },
    )
