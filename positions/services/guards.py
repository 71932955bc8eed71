"""Guards (docs/engine.md#guards): pause and flatten (a user's, or everyone's), the daily-loss reset, stop
averaging a group, and the guard state the API shows. Every change is audited and announced
(`guard.changed`) after commit; the webhook intake reads the same state in its one read statement
(`positions.services.intake`) and decides with `positions.rules.guards`."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import F, Max, Sum
from django.utils import timezone

from accounts.logs import audit, log_warning

from .. import jobs
from ..choices import FINAL_GROUP_STATUSES, FINAL_ORDER_STATUSES, GroupStatus, OrderStatus
from ..config import effective_config
from ..events import OPERATORS_GROUP, event, publish_events
from ..grid import capital_for_pyramid
from ..models import DCAOrder, EngineConfig, PositionGroup, Pyramid, TradingGuard
from ..rules.guards import GuardRefusal, GuardSettings, GuardState, guard_settings, new_group_refusal
from . import orders
from .state import group_event

ZERO = Decimal("0")
CLOSABLE = (GroupStatus.WAITING, GroupStatus.LIVE, GroupStatus.PARTIALLY_FILLED, GroupStatus.ACTIVE)
# The engine config keys of the guards (`rules.guards.GuardSettings`), as `PUT /api/guards` takes them.
GUARD_KEYS = (
    "pause_blocks_pyramids",
    "max_total_exposure_usd",
    "exposure_action",
    "daily_loss_limit_usd",
    "cooldown_minutes_after_loss",
    "max_alert_lag_seconds",
)


class GuardRefusedError(Exception):
    """The change cannot be made (the group is not open, ...); the message says why."""


def _guard_row(user: Any) -> TradingGuard:
    """The user's guard row (``None``: the system-wide one), locked, created when missing."""
    if user is None:
        row = TradingGuard.objects.select_for_update().filter(user__isnull=True).order_by("pk").first()
        return row or TradingGuard.objects.create(user=None)
    row, _ = TradingGuard.objects.select_for_update().get_or_create(user=user)
    return row


def _changed(user: Any, data: dict[str, Any]) -> None:
    if user is None:
        publish_events([((OPERATORS_GROUP,), {"type": "guard.changed", "data": {"scope": "system", **data}})])
    else:
        publish_events([event(user.pk, "guard.changed", {"scope": "user", **data})])


def guard_pause_set(*, user: Any, paused: bool, actor: Any, reason: str = "", ip: str | None = None) -> TradingGuard:
    """Pause or resume new groups for `user` (``None``: everyone, an operator's switch)."""
    with transaction.atomic():
        row = _guard_row(user)
        row.paused = paused
        row.paused_at = timezone.now() if paused else None
        row.paused_reason = reason[:200] if paused else ""
        row.save()
        audit(
            user=actor,
            action="guard_pause" if paused else "guard_resume",
            resource="trading_guard",
            resource_id=row.pk,
            details={"scope": "system" if user is None else "user", "reason": reason},
            ip=ip,
        )
        _changed(user, {"paused": paused, "reason": row.paused_reason})
    return row


def guard_daily_loss_reset(*, user: Any, actor: Any, ip: str | None = None) -> TradingGuard:
    """An operator's reset of the daily loss limit: losses realized before now no longer count today."""
    with transaction.atomic():
        row = _guard_row(user)
        row.daily_loss_reset_at = timezone.now()
        row.save()
        audit(user=actor, action="guard_daily_loss_reset", resource="trading_guard", resource_id=row.pk, ip=ip)
        _changed(user, {"daily_loss_reset_at": row.daily_loss_reset_at.isoformat()})
    return row


def guard_flatten(*, user: Any, actor: Any, ip: str | None = None) -> list[str]:
    """Close every open group of `user` (``None``: of everyone) at market and pause. The closes run in
    the worker (`positions.close_group`, the exit path); returns the groups asked to close."""
    with transaction.atomic():
        guard_pause_set(user=user, paused=True, actor=actor, reason="flatten", ip=ip)
        groups = PositionGroup.objects.filter(status__in=CLOSABLE)
        if user is not None:
            groups = groups.filter(user=user)
        ids = [str(pk) for pk in groups.values_list("pk", flat=True)]
        for group_id in ids:
            jobs.enqueue_after_commit("positions.close_group", group_id, "manual")
        audit(
            user=actor,
            action="guard_flatten",
            resource="user" if user is not None else "system",
            resource_id=getattr(user, "pk", None),
            details={"groups": len(ids)},
            ip=ip,
        )
    log_warning("TRADING", f"Flatten: closing {len(ids)} group(s) at market and pausing", user=user)
    return ids


def group_stop_averaging(*, group: PositionGroup, actor: Any, ip: str | None = None) -> int:
    """Cancel the group's unfilled entry legs; what is held and its take-profits stay. Returns how many."""
    if group.status in FINAL_GROUP_STATUSES or group.status == GroupStatus.CLOSING:
        raise GuardRefusedError(f"the group is {group.status}")
    legs = list(DCAOrder.objects.filter(group=group, filled_quantity=0).exclude(status__in=FINAL_ORDER_STATUSES))
    cancelled = 0
    for leg in legs:
        if orders.order_cancel(order_id=leg.pk) == orders.SETTLED:
            cancelled += 1
    audit(
        user=actor,
        action="group_stop_averaging",
        resource="position_group",
        resource_id=group.pk,
        details={"legs": cancelled},
        ip=ip,
    )
    group_event(group, "stop_averaging", f"averaging stopped: {cancelled} unfilled leg(s) cancelled")
    _changed(group.user, {"group_id": str(group.pk), "stop_averaging": cancelled})
    return cancelled


def _day_start(now: datetime) -> datetime:
    return now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


def guard_state_read(*, user: Any, symbol: str | None = None, now: datetime | None = None) -> GuardState:
    """The guard state as the intake reads it (the same amounts, through the ORM)."""
    now = now or timezone.now()
    row = TradingGuard.objects.filter(user=user).first()
    system = TradingGuard.objects.filter(user__isnull=True, paused=True).exists()
    start = _day_start(now)
    if row is not None and row.daily_loss_reset_at is not None and row.daily_loss_reset_at > start:
        start = row.daily_loss_reset_at
    realized = PositionGroup.objects.filter(user=user, status=GroupStatus.CLOSED, closed_at__gte=start).aggregate(
        total=Sum("realized_pnl")
    )["total"]
    open_groups = PositionGroup.objects.filter(user=user).exclude(status__in=FINAL_GROUP_STATUSES)
    filled = open_groups.aggregate(total=Sum("total_cost"))["total"] or ZERO
    resting = (
        DCAOrder.objects.filter(
            group__in=open_groups,
            status__in=[OrderStatus.PENDING, OrderStatus.UNKNOWN, OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED],
        ).aggregate(total=Sum((F("quantity") - F("filled_quantity")) * F("price")))["total"]
        or ZERO
    )
    # A pyramid whose legs are not written yet (its group just opened or promoted) counts its capital.
    planned = (
        Pyramid.objects.filter(group__in=open_groups, orders__isnull=True).aggregate(total=Sum("capital_usd"))["total"]
        or ZERO
    )
    last_loss = None
    if symbol:
        last_loss = PositionGroup.objects.filter(
            user=user, symbol=symbol, status=GroupStatus.CLOSED, realized_pnl__lt=0
        ).aggregate(at=Max("closed_at"))["at"]
    return GuardState(
        user_paused=bool(row and row.paused),
        system_paused=system,
        exposure_usd=filled + resting + planned,
        realized_today=realized or ZERO,
        last_loss_close_at=last_loss,
    )


def _s(value: Decimal | None) -> str | None:
    return None if value is None else f"{value.normalize():f}"


def _limits(settings: GuardSettings) -> dict[str, Any]:
    return {
        "pause_blocks_pyramids": settings.pause_blocks_pyramids,
        "max_total_exposure_usd": _s(settings.max_total_exposure_usd),
        "exposure_action": settings.exposure_action,
        "daily_loss_limit_usd": _s(settings.daily_loss_limit_usd),
        "cooldown_minutes_after_loss": settings.cooldown_minutes_after_loss,
        "max_alert_lag_seconds": settings.max_alert_lag_seconds,
    }


def _blocking(refusal: GuardRefusal | None) -> dict[str, str] | None:
    return None if refusal is None else {"guard": refusal.guard, "reason": refusal.reason}


def _override_status(*, user: Any, stored: dict[str, Any], scope: str, now: datetime) -> dict[str, Any]:
    """One override scope (`SYMBOL` or `SYMBOL:TIMEFRAME`): its effective guard limits and which guard
    stops a new group there now (its cooldown is its symbol's)."""
    symbol, _, timeframe = scope.partition(":")
    merged, grid = effective_config(stored, symbol=symbol, timeframe=timeframe)
    settings = guard_settings(merged)
    state = guard_state_read(user=user, symbol=symbol, now=now)
    refusal = new_group_refusal(state, settings, symbol=symbol, capital=capital_for_pyramid(grid, 0), now=now)
    given = (stored.get("overrides") or {}).get(scope) or {}
    return {
        "scope": scope,
        "symbol": symbol,
        "timeframe": timeframe or None,
        **_limits(settings),
        "overridden": sorted(key for key in given if key in GUARD_KEYS),
        "blocking": _blocking(refusal),
    }


def guard_status(*, user: Any) -> dict[str, Any]:
    """The user's guard state and settings, and which guard blocks new entries now (`GET /api/guards`);
    `overrides`: the same for each symbol (or symbol:timeframe) override of the user's config."""
    stored = EngineConfig.objects.filter(user=user).values_list("data", flat=True).first() or {}
    now = timezone.now()
    config, grid = effective_config({k: v for k, v in stored.items() if k != "overrides"}, symbol="", timeframe="")
    settings = guard_settings(config)
    state = guard_state_read(user=user, now=now)
    row = TradingGuard.objects.filter(user=user).first()
    # What stops a new group of the default capital now (a symbol's cooldown is in its override's row).
    refusal = new_group_refusal(state, settings, symbol="", capital=capital_for_pyramid(grid, 0), now=now)
    scopes = stored.get("overrides") or {}
    return {
        "paused": state.user_paused,
        "paused_reason": row.paused_reason if row else "",
        "system_paused": state.system_paused,
        **_limits(settings),
        "exposure_usd": _s(state.exposure_usd),
        "realized_today": _s(state.realized_today),
        "loss_today": _s(max(ZERO, -(state.realized_today or ZERO))),
        "daily_loss_reset_at": row.daily_loss_reset_at.isoformat() if row and row.daily_loss_reset_at else None,
        "blocking": _blocking(refusal),
        "overrides": [_override_status(user=user, stored=stored, scope=scope, now=now) for scope in sorted(scopes)],
    }
