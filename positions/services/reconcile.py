"""Bring the database and the exchanges back into agreement after a crash (docs/engine.md#reconciliation).

Matching is by client order id (our intent row's UUID, encoded). It adopts fills that happened while we
were down, marks orders cancelled on the exchange, cancels exchange orders of closed groups, finishes
interrupted work (unsent intents, half-closed groups, signals whose task was lost) and reports what it
cannot explain. It never places an order twice: anything that may have been sent is looked up before it
is sent again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.utils import timezone

from accounts.logs import log_info, log_warning
from exchanges.exceptions import ExchangeError, OrderNotFoundError
from exchanges.models import ExchangeConfig
from exchanges.services import adapter_for

from .. import ledger
from ..choices import (
    FINAL_GROUP_STATUSES,
    FINAL_ORDER_STATUSES,
    RESTING_ORDER_STATUSES,
    GroupStatus,
    OrderStatus,
    ProcessingStatus,
)
from ..models import PositionGroup, Pyramid, WebhookSignal
from . import orders
from .exits import group_close_continue
from .processing import RetryLaterError, pyramid_submit, signal_process

STALE_INTENT = timedelta(seconds=30)


@dataclass
class ReconcileReport:
    configs: int = 0
    exchange_open: int = 0
    adopted: int = 0
    cancelled_orphans: int = 0
    resubmitted: int = 0
    closes_resumed: int = 0
    pyramids_resumed: int = 0
    signals_resumed: int = 0
    unexplained: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


def reconcile(*, user: Any = None) -> ReconcileReport:
    report = ReconcileReport()
    configs = ExchangeConfig.objects.filter(is_enabled=True)
    if user is not None:
        configs = configs.filter(user=user)
    for config in configs:
        report.configs += 1
        try:
            _reconcile_config(config, report)
        except ExchangeError as exc:
            report.errors.append(f"{config.exchange_name} ({config.user}): {exc}")
    level = log_warning if report.unexplained or report.errors else log_info
    level(
        "ORDER",
        "Reconciliation: "
        + ", ".join(f"{k} {v if isinstance(v, int) else len(v)}" for k, v in report.as_dict().items()),
        user=user,
        details=report.as_dict(),
    )
    return report


def _reconcile_config(config: ExchangeConfig, report: ReconcileReport) -> None:
    adapter = adapter_for(config)
    # 1. Everything the exchange holds open, in one request.
    open_states = adapter.fetch_open_orders(None)
    report.exchange_open += len(open_states)
    seen: set[str] = set()
    for state in open_states:
        order = ledger.order_find(client_order_id=state.client_order_id) if state.client_order_id else None
        if order is None or order.exchange_config_id != config.pk:
            report.unexplained.append(
                f"{config.exchange_name} {state.symbol} open order "
                f"{state.exchange_order_id} ({state.client_order_id}) is not ours"
            )
            continue
        seen.add(order.client_order_id)
        if order.group.status in FINAL_GROUP_STATUSES:
            # Whatever our row says, a closed group must have nothing working on the exchange.
            try:
                final = adapter.cancel_order(
                    state.symbol, exchange_order_id=state.exchange_order_id, client_order_id=state.client_order_id
                )
            except OrderNotFoundError:
                final = adapter.fetch_order(state.symbol, client_order_id=state.client_order_id)
            orders.order_apply_state(order_id=order.pk, state=final)
            report.cancelled_orphans += 1
            if final.filled_quantity:
                report.unexplained.append(
                    f"{order.symbol} order {order.client_order_id} of closed group "
                    f"{order.group_id} had filled {final.filled_quantity}"
                )
            continue
        if (
            order.status != orders.STATE_MAP.get(state.status)
            or order.filled_quantity != state.filled_quantity
            or not order.exchange_order_id
        ):
            orders.order_apply_state(order_id=order.pk, state=state)
            report.adopted += 1
    # 2. Every order we think is working or may have been sent, but the exchange does not list as open.
    for order in ledger.orders_watched(config_id=config.pk):
        if order.client_order_id in seen:
            continue
        before = (order.status, order.filled_quantity)
        outcome = orders.order_sync(order_id=order.pk, adapter=adapter)
        order.refresh_from_db()
        if (order.status, order.filled_quantity) != before:
            report.adopted += 1
        if outcome == orders.PLACED and before[0] in (OrderStatus.PENDING, OrderStatus.UNKNOWN):
            report.resubmitted += int(order.submit_attempts > 1)
    # 3. Intents committed but never sent (a crash between commit and send).
    stale = timezone.now() - STALE_INTENT
    for order in ledger.orders_unsent(config_id=config.pk, created_before=stale):
        if order.group.status in FINAL_GROUP_STATUSES:
            orders.order_cancel(order_id=order.pk, adapter=adapter)
        elif orders.order_submit(order_id=order.pk, adapter=adapter) == orders.PLACED:
            report.resubmitted += 1
    # 4. Interrupted work on groups.
    for group in PositionGroup.objects.filter(exchange_config=config, status=GroupStatus.CLOSING):
        group_close_continue(group_id=group.pk)
        report.closes_resumed += 1
    open_groups = PositionGroup.objects.filter(exchange_config=config).exclude(
        status__in=[*FINAL_GROUP_STATUSES, GroupStatus.CLOSING]
    )
    for pyramid in Pyramid.objects.filter(group__in=open_groups, submitted_at__isnull=True, created_at__lt=stale):
        try:
            pyramid_submit(pyramid_id=pyramid.pk)
        except RetryLaterError:
            pass
        report.pyramids_resumed += 1
    # 5. Signals accepted but never processed: their task died with a worker. (The Redis broker loses a
    #    message that a worker took off the queue and was killed before recording as unacknowledged; an
    #    exit signal lost that way would leave its position open for good.) Processing is idempotent.
    stale_signals = WebhookSignal.objects.filter(
        exchange_config=config, processing_status=ProcessingStatus.PENDING, received_at__lt=stale
    )
    for signal_id in stale_signals.order_by("received_at").values_list("pk", flat=True):
        try:
            signal_process(signal_id=signal_id)
        except RetryLaterError:
            pass
        report.signals_resumed += 1


def orders_out_of_sync(*, config: ExchangeConfig) -> dict[str, list[str | None]]:
    """For tests and the admin: differences between the exchange's open orders and ours."""
    adapter = adapter_for(config)
    exchange_open = {s.client_order_id for s in adapter.fetch_open_orders(None)}
    ours = ledger.client_order_ids(config_id=config.pk, statuses=RESTING_ORDER_STATUSES)
    final = ledger.client_order_ids(config_id=config.pk, statuses=FINAL_ORDER_STATUSES)
    return {
        # key=str: an exchange order may have no client order id (None)
        "only_on_exchange": sorted(exchange_open - ours, key=str),
        "only_in_db": sorted(ours - exchange_open, key=str),
        "final_in_db_but_open": sorted(exchange_open & final, key=str),
    }
