"""Engine events for the apps above `positions`, announced after commit (docs/architecture.md#direction).

`positions` must not import the apps that react to what it does (notifications, reports). They register
a subscriber here at start-up (their `AppConfig.ready`); services call `engine_event_emit` inside their
transaction and every subscriber is called once it commits, never for a rolled-back change.

The webhook intake commits on its own connection (`core.sql`, on the event loop under daphne), so it does
not use `engine_event_emit`: its few events (a guard's refusal, a sequence anomaly) ride on its result,
and the caller hands them to `engine_events_announce` once the transaction has committed, which queues
them for a thread of the process. The webhook's answer never waits for a subscriber.

A subscriber must be quick (enqueue a task, no network call) and must not raise: one that fails is
logged and the others still run; the trading path never sees its error.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import close_old_connections, transaction

logger = logging.getLogger(__name__)

# Kinds of engine event (docs/processes.md#notifications lists what each carries).
ORDER_PLACED = "order_placed"
ORDER_FILLED = "order_filled"
ORDER_REJECTED = "order_rejected"
GROUP_CLOSED = "group_closed"
GROUP_FAILED = "group_failed"
GUARD_REFUSED = "guard_refused"
SEQUENCE_ANOMALY = "sequence_anomaly"
RISK_OFFSET = "risk_offset"
STRATEGY_DISABLED = "strategy_disabled"  # a strategy instance turned itself off (strategies, by its health)
KINDS = (
    ORDER_PLACED,
    ORDER_FILLED,
    ORDER_REJECTED,
    GROUP_CLOSED,
    GROUP_FAILED,
    GUARD_REFUSED,
    SEQUENCE_ANOMALY,
    RISK_OFFSET,
    STRATEGY_DISABLED,
)


@dataclass(frozen=True)
class EngineEvent:
    """What happened, for whom, as plain JSON-safe data (Decimals as strings)."""

    kind: str
    user_id: str
    group_id: str
    data: dict[str, Any] = field(default_factory=dict)


Subscriber = Callable[[EngineEvent], None]
_subscribers: list[Subscriber] = []


def engine_event_subscribe(subscriber: Subscriber) -> None:
    """Call `subscriber` with every engine event after its transaction commits (once per subscriber)."""
    if subscriber not in _subscribers:
        _subscribers.append(subscriber)


def engine_event_unsubscribe(subscriber: Subscriber) -> None:
    if subscriber in _subscribers:
        _subscribers.remove(subscriber)


def engine_event_emit(*, kind: str, user_id: Any, group_id: Any, data: dict[str, Any]) -> None:
    """Announce an event to the subscribers once the current transaction commits (at once outside one)."""
    if not _subscribers:
        return
    event = EngineEvent(kind=kind, user_id=str(user_id), group_id=str(group_id), data=data)
    transaction.on_commit(lambda: _deliver(event))


def engine_events_announce(events: Iterable[EngineEvent]) -> None:
    """Announce events whose transaction has already committed (the webhook intake's): they are queued
    for this process's announcer thread and this returns at once."""
    events = list(events)
    if events and _subscribers:
        _announcer.put(events)


class _Announcer:
    """One daemon thread per process that calls the subscribers for `engine_events_announce` (made again
    after a fork)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pid = 0
        self._queue: queue.SimpleQueue[list[EngineEvent]] = queue.SimpleQueue()

    def put(self, events: list[EngineEvent]) -> None:
        with self._lock:
            if self._pid != os.getpid():
                self._pid = os.getpid()
                self._queue = queue.SimpleQueue()
                threading.Thread(target=self._run, args=(self._queue,), name="engine-events", daemon=True).start()
            self._queue.put(events)

    @staticmethod
    def _run(pending: queue.SimpleQueue[list[EngineEvent]]) -> None:
        while True:
            events = pending.get()
            for event in events:
                _deliver(event)
            close_old_connections()  # a subscriber that read the database must not hold a stale connection


_announcer = _Announcer()


def _deliver(event: EngineEvent) -> None:
    for subscriber in list(_subscribers):
        try:
            subscriber(event)
        except Exception:  # a subscriber's failure must never reach the trading path
            logger.exception("engine event subscriber %r failed on %s", subscriber, event.kind)


def order_event_data(*, order: Any, group: Any, fills: list[Any] | None = None) -> dict[str, Any]:
    """The plain data of an order event: pair, side, what the order was for, price, quantity, the group's PnL.

    With `fills`, price and quantity are those of these fills (their quantity-weighted average price).
    """
    purpose = getattr(order, "purpose", "")
    kind = purpose or ("entry" if getattr(order, "dca_level", 0) == 0 else "dca")
    data: dict[str, Any] = {
        "symbol": order.symbol,
        "side": order.side,
        "order_kind": kind,
        "order_type": order.order_type,
        "client_order_id": order.client_order_id,
        "status": order.status,
        "price": str(order.price) if order.price is not None else None,
        "quantity": str(order.quantity),
        "timeframe": group.timeframe,
        "avg_entry_price": str(group.avg_entry_price) if group.avg_entry_price is not None else None,
        "realized_pnl": str(group.realized_pnl),
        "pyramid": getattr(order, "pyramid_level", None),
        "level": getattr(order, "dca_level", None),
        "error": (order.last_error or "")[:300],
    }
    if fills:
        quantity = sum((fill.quantity for fill in fills), start=fills[0].quantity * 0)
        notional = sum((fill.price * fill.quantity for fill in fills), start=fills[0].quantity * 0)
        data["quantity"] = str(quantity)
        data["price"] = str((notional / quantity).quantize(fills[0].price)) if quantity else str(fills[0].price)
        data["executed_at"] = max(fill.executed_at for fill in fills).isoformat()
    return data
