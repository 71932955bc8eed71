"""The one place a group's status changes: allowed transitions, row lock, audit, event.

Which changes are allowed is the state machine in `positions.rules.lifecycle`
(docs/engine.md#group-states, docs/engine.md#transitions); this module applies one under the group's row lock.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.logs import audit

from ..choices import GroupStatus as S
from ..events import publish_group
from ..hooks import GROUP_CLOSED, GROUP_FAILED, engine_event_emit
from ..models import GroupEvent, PositionGroup
from ..rules.lifecycle import transition_allowed
from .queue import queue_promote_after_commit


class TransitionError(Exception):
    """The requested status change is not allowed from the group's current status."""


def group_event(group: PositionGroup, kind: str, message: str, details: dict[str, Any] | None = None) -> None:
    GroupEvent.objects.create(group=group, kind=kind, message=message, details=details or {})


def group_transition(
    *,
    group_id: Any,
    to: str,
    reason: str = "",
    actor: Any = None,
    details: dict[str, Any] | None = None,
    locked: PositionGroup | None = None,
) -> PositionGroup:
    """Move a group to `to` under a row lock; a no-op when it is already there."""
    with transaction.atomic():
        group = locked or PositionGroup.objects.select_for_update().get(pk=group_id)
        current = group.status
        if current == to:
            return group
        if not transition_allowed(current, to):
            raise TransitionError(f"group {group.pk}: {current} → {to} is not allowed")
        now = timezone.now()
        group.status = to
        fields = ["status", "updated_at"]
        if to == S.LIVE and group.live_at is None:
            group.live_at = now
            fields.append("live_at")
        if to == S.ACTIVE:
            group.filled_at = now
            fields.append("filled_at")
        if to in (S.CLOSED, S.FAILED):
            group.closed_at = now
            fields.append("closed_at")
        if to == S.FAILED:
            group.failure_reason = reason[:2000]
            fields.append("failure_reason")
        group.save(update_fields=fields)
        audit(
            user=actor,
            action="group_transition",
            resource="position_group",
            resource_id=group.pk,
            details={"from": current, "to": to, "reason": reason, **(details or {})},
        )
        group_event(group, "status", f"{current} → {to}" + (f": {reason}" if reason else ""))
        publish_group(group)
        if to in (S.CLOSED, S.FAILED):
            _on_slot_freed(group)
            engine_event_emit(
                kind=GROUP_CLOSED if to == S.CLOSED else GROUP_FAILED,
                user_id=group.user_id,
                group_id=group.pk,
                data={
                    "symbol": group.symbol,
                    "timeframe": group.timeframe,
                    "side": group.side,
                    "close_reason": group.close_reason,
                    "reason": reason[:300],
                    "realized_pnl": str(group.realized_pnl),
                    "avg_entry_price": str(group.avg_entry_price) if group.avg_entry_price is not None else None,
                    "sold_quantity": str(group.sold_quantity),
                },
            )
    return group


def _on_slot_freed(group: PositionGroup) -> None:
    """A closed group frees its pool slot at once: let the queue promote after commit."""
    queue_promote_after_commit(user_id=group.user_id)
