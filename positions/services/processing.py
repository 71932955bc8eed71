"""Turning accepted signals into orders: a pyramid's grid, and exits (celery calls these)."""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.logs import log_error, log_info, log_warning
from exchanges.client_ids import client_order_id_for
from exchanges.exceptions import ExchangeError, PermanentExchangeError
from exchanges.services import adapter_for

from ..choices import ExitPurpose, GroupStatus, OrderType, ProcessingStatus, SignalClassification
from ..config import effective_config, engine_setting
from ..grid import GridError, compute_grid
from ..models import DCAOrder, PositionGroup, Pyramid, WebhookSignal
from ..rules.pool import queue_expired
from . import orders
from .exits import group_close
from .state import group_event, group_transition


class RetryLaterError(Exception):
    """Something temporary (exchange down, rules not loaded): the task retries with backoff."""


NO_MARKET_RULES = "no_market_rules"
# The group event that marks a new group waiting for its market's rules (docs/engine.md#group-states);
# `market_rules_waiting_retry` looks for it.
WAITING_FOR_MARKET_RULES = "waiting_for_market_rules"


def signal_process(*, signal_id: Any) -> str:
    signal = WebhookSignal.objects.select_related("group").get(pk=signal_id)
    if signal.processing_status != ProcessingStatus.PENDING:
        return "already processed"
    if signal.classification == SignalClassification.EXIT and signal.group_id:
        group_close(group_id=signal.group_id, purpose=ExitPurpose.EXIT_SIGNAL)
        outcome = "exit started"
    else:
        pyramid = Pyramid.objects.filter(signal=signal).select_related("group").first()
        outcome = "nothing to do" if pyramid is None else pyramid_submit(pyramid_id=pyramid.pk)
    WebhookSignal.objects.filter(pk=signal_id).update(
        processing_status=ProcessingStatus.DONE, processed_at=timezone.now()
    )
    return outcome


def _fail_group(group: PositionGroup, reason: str) -> None:
    log_error("TRADING", f"{group.symbol}: {reason}", user=group.user, details={"group_id": str(group.pk)})
    group_transition(group_id=group.pk, to=GroupStatus.FAILED, reason=reason)


def pyramid_orders_create(*, pyramid: Pyramid) -> list[DCAOrder]:
    """Compute the pyramid's grid and commit one order intent per leg (once, even when retried)."""
    group = pyramid.group
    adapter = adapter_for(group.exchange_config)
    try:
        rules = adapter.market_rules(group.symbol)
    except PermanentExchangeError as exc:
        raise GridError(NO_MARKET_RULES, str(exc)) from exc
    except ExchangeError as exc:
        raise RetryLaterError(str(exc)) from exc
    _, grid = effective_config(group.config, symbol=group.symbol, timeframe=group.timeframe)
    grid = dataclasses.replace(
        grid, pyramid_capitals={**dict(grid.pyramid_capitals), pyramid.index: pyramid.capital_usd}
    )
    legs = compute_grid(config=grid, pyramid_index=pyramid.index, entry_price=pyramid.entry_price, rules=rules)
    with transaction.atomic():
        locked = PositionGroup.objects.select_for_update().get(pk=group.pk)
        existing = list(pyramid.orders.all())
        if existing:
            return existing
        if locked.status in (GroupStatus.CLOSING, GroupStatus.CLOSED, GroupStatus.FAILED):
            return []  # closed meanwhile (an exit while the group waited for its rules): nothing to order
        if not group.exchange_symbol:
            PositionGroup.objects.filter(pk=group.pk).update(exchange_symbol=rules.exchange_symbol)
        created = []
        for leg in legs:
            order_id = uuid.uuid4()
            market = leg.level == 0 and pyramid.entry_order_type == OrderType.MARKET
            created.append(
                DCAOrder.objects.create(
                    id=order_id,
                    group=group,
                    exchange_config_id=group.exchange_config_id,
                    pyramid=pyramid,
                    symbol=group.symbol,
                    side="buy",
                    order_type=OrderType.MARKET if market else OrderType.LIMIT,
                    price=None if market else leg.price,
                    quantity=leg.quantity,
                    client_order_id=client_order_id_for(order_id),
                    pyramid_level=pyramid.index,
                    dca_level=leg.level,
                    expected_price=leg.price,
                    tp_percent=leg.tp_percent,
                    tp_price=leg.tp_price,
                )
            )
        group_event(
            group,
            "grid",
            f"Pyramid {pyramid.index}: {len(created)} legs from {pyramid.entry_price}",
            {
                "legs": [
                    {"level": o.dca_level, "price": str(o.expected_price), "quantity": str(o.quantity)} for o in created
                ]
            },
        )
    return created


def pyramid_submit(*, pyramid_id: Any) -> str:
    """Place every unsent leg of a pyramid; returns a summary. Raises RetryLaterError for temporary trouble."""
    pyramid = Pyramid.objects.select_related("group", "group__exchange_config", "group__user").get(pk=pyramid_id)
    group = pyramid.group
    if group.status in (GroupStatus.CLOSING, GroupStatus.CLOSED, GroupStatus.FAILED):
        return f"group is {group.status}"
    try:
        legs = pyramid_orders_create(pyramid=pyramid)
    except GridError as exc:
        if pyramid.index == 0 and exc.code == NO_MARKET_RULES:
            return _wait_for_market_rules(group, exc.reason)
        reason = f"no market rules for {group.symbol}: {exc.reason}" if exc.code == NO_MARKET_RULES else exc.reason
        if pyramid.index == 0:
            _fail_group(group, reason)
        else:
            log_error(
                "TRADING",
                f"Pyramid {pyramid.index} of {group.symbol} rejected: {reason}",
                user=group.user,
                details={"group_id": str(group.pk)},
            )
            group_event(group, "pyramid_rejected", reason)
        return f"rejected: {reason}"
    if not legs:
        return "group closed before its orders were placed"
    adapter = adapter_for(group.exchange_config)
    outcomes: dict[str, str] = {}
    for leg in sorted(legs, key=lambda o: o.dca_level):
        outcomes[str(leg.pk)] = orders.order_submit(order_id=leg.pk, adapter=adapter)
        if leg.dca_level == 0 and outcomes[str(leg.pk)] == orders.REJECTED:
            return _entry_rejected(pyramid, legs)
    pending = [o for o in outcomes.values() if o in (orders.RETRY, orders.UNKNOWN)]
    placed = [o for o in outcomes.values() if o in (orders.PLACED, orders.SETTLED)]
    with transaction.atomic():
        locked = PositionGroup.objects.select_for_update().get(pk=group.pk)
        if placed and locked.status == GroupStatus.WAITING:
            group_transition(group_id=group.pk, to=GroupStatus.LIVE, locked=locked)
        if not pending:
            Pyramid.objects.filter(pk=pyramid.pk, submitted_at__isnull=True).update(submitted_at=timezone.now())
    if pending:
        raise RetryLaterError(f"{len(pending)} of {len(legs)} orders not confirmed yet")
    log_info(
        "ORDER",
        f"{group.symbol} pyramid {pyramid.index}: {len(placed)} orders placed",
        user=group.user,
        details={"group_id": str(group.pk)},
    )
    return f"{len(placed)} orders placed"


def _wait_for_market_rules(group: PositionGroup, message: str) -> str:
    """Pyramid 0 has no market rules: the group stays `waiting` (keeping its pool slot) with the reason
    recorded once (a `waiting_for_market_rules` event and a log line), or fails once it has waited longer
    than its `queue_max_age_minutes` (docs/engine.md#group-states). Nothing is sent either way."""
    now = timezone.now()
    max_age = engine_setting(group.config, "queue_max_age_minutes")
    expired = queue_expired(queued_at=group.created_at, now=now, max_age_minutes=max_age)
    with transaction.atomic():
        locked = PositionGroup.objects.select_for_update().get(pk=group.pk)
        if locked.status != GroupStatus.WAITING:
            return f"group is {locked.status}"  # an exit or a manual close got there first
        if expired:
            waited = int((now - locked.created_at).total_seconds() // 60)
            reason = f"{NO_MARKET_RULES}: {message}; waited {waited} minutes (queue_max_age_minutes {max_age})"
            log_error("TRADING", f"{group.symbol}: {reason}", user=group.user, details={"group_id": str(group.pk)})
            group_transition(group_id=group.pk, to=GroupStatus.FAILED, reason=reason, locked=locked)
            return f"failed: {reason}"
        first = not locked.events.filter(kind=WAITING_FOR_MARKET_RULES).exists()
        if first:
            group_event(
                locked,
                WAITING_FOR_MARKET_RULES,
                f"No market rules for {group.symbol} yet; the group waits for them: {message}",
                {"error": message, "max_age_minutes": max_age},
            )
    if first:
        log_warning(
            "TRADING",
            f"{group.symbol}: no market rules yet, the group waits for them: {message}",
            user=group.user,
            details={"group_id": str(group.pk)},
        )
    return "waiting for market rules"


def market_rules_waiting_retry() -> dict[str, int]:
    """Every group waiting for its market's rules, asked again (the `positions.retry_market_rules` sweep).

    Per exchange config: the adapter reloads the exchange's markets (`refresh_market_rules`: the rules
    store and this account's client both learn a new listing), then each group goes through the normal
    `pyramid_submit` (intents first, deterministic client order ids); one still without rules keeps
    waiting or, past its maximum age, fails there (docs/engine.md#group-states).
    """
    groups = (
        PositionGroup.objects.filter(status=GroupStatus.WAITING, events__kind=WAITING_FOR_MARKET_RULES)
        .select_related("exchange_config")
        .distinct()
    )
    by_config: dict[Any, list[PositionGroup]] = {}
    for group in groups:
        by_config.setdefault(group.exchange_config_id, []).append(group)
    counts = {"groups": 0, "placed": 0, "waiting": 0, "failed": 0, "refresh_failed": 0}
    for waiting in by_config.values():
        config = waiting[0].exchange_config
        try:
            adapter_for(config).refresh_market_rules()
        except ExchangeError as exc:
            # The groups are still asked below: fallback rules may apply, and the maximum age still counts.
            counts["refresh_failed"] += 1
            log_info(
                "PRECISION",
                f"market rules of {config.exchange_name} not reloaded for waiting groups: {exc}",
                user=config.user_id,
                details={"exchange_config_id": str(config.pk)},
            )
        for group in waiting:
            counts["groups"] += 1
            pyramid = Pyramid.objects.filter(group=group, index=0).first()
            if pyramid is None:
                continue
            try:
                pyramid_submit(pyramid_id=pyramid.pk)
            except RetryLaterError:
                pass  # temporary trouble or orders not all confirmed: the next sweep and their retries go on
            status = PositionGroup.objects.filter(pk=group.pk).values_list("status", flat=True).first()
            if status == GroupStatus.FAILED:
                counts["failed"] += 1
            elif group.dca_orders.exists():
                counts["placed"] += 1
            elif status == GroupStatus.WAITING:
                counts["waiting"] += 1
    return counts


def _entry_rejected(pyramid: Pyramid, legs: list[DCAOrder]) -> str:
    """The entry order was refused: cancel the rest of this pyramid; a first pyramid fails the group."""
    for leg in legs:
        if leg.dca_level != 0:
            orders.order_cancel(order_id=leg.pk)
    entry = DCAOrder.objects.get(pk=legs[0].pk) if legs else None
    reason = f"entry order rejected: {entry.last_error if entry else 'unknown'}"
    group = PositionGroup.objects.get(pk=pyramid.group_id)
    if pyramid.index == 0 and group.filled_quantity == 0:
        _fail_group(group, reason)
    else:
        group_event(group, "pyramid_rejected", reason)
    return reason
