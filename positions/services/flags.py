"""Operator flags on a group (risk engine block / skip once)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from accounts.logs import audit

from ..models import PositionGroup


def group_set_risk_flags(
    *, group_id: Any, blocked: bool | None = None, skip_once: bool | None = None, actor: Any = None
) -> PositionGroup:
    with transaction.atomic():
        group = PositionGroup.objects.select_for_update().get(pk=group_id)
        fields = ["updated_at"]
        if blocked is not None:
            group.risk_blocked = blocked
            fields.append("risk_blocked")
        if skip_once is not None:
            group.risk_skip_once = skip_once
            fields.append("risk_skip_once")
        group.save(update_fields=fields)
        audit(
            user=actor,
            action="risk_flags",
            resource="position_group",
            resource_id=group.pk,
            details={"blocked": blocked, "skip_once": skip_once},
        )
    return group
