"""What the risk engine decided, cycle by cycle (docs/engine.md#risk-engine)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class RiskActionKind(models.TextChoices):
    OFFSET = "offset", "Offset"
    NONE = "none", "Nothing done"


class RiskActionStatus(models.TextChoices):
    DECIDED = "decided", "Decided (nothing to execute)"
    EXECUTING = "executing", "Executing (intents committed, orders being sent)"
    DONE = "done", "Done (every order settled)"
    ABORTED = "aborted", "Aborted (a group changed before anything was sent)"


class RiskAction(models.Model):
    """One risk cycle's decision for one user: an offset with its planned and realized amounts, or
    "nothing done" with the reason. A cycle whose reason equals the user's latest action's updates that
    row (`repeats`, `last_seen_at`) instead of adding one."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="risk_actions")
    kind = models.CharField(max_length=8, choices=RiskActionKind.choices)
    status = models.CharField(max_length=12, choices=RiskActionStatus.choices, default=RiskActionStatus.DECIDED)
    trigger = models.CharField(max_length=16, default="beat", help_text="beat, fill or run_now")
    reason = models.TextField()
    plan = models.JSONField(null=True, blank=True, help_text="The plan as decided (decimals as strings).")
    orders = models.JSONField(
        default=dict, blank=True, help_text="The orders of an offset: {group id: exit order id} (winners' sells)."
    )
    realized = models.JSONField(null=True, blank=True, help_text="{loser, winners: {group id: amount}, net}")
    loser_group = models.ForeignKey(
        "positions.PositionGroup", null=True, blank=True, on_delete=models.SET_NULL, related_name="risk_actions"
    )
    repeats = models.PositiveIntegerField(default=1, help_text="Cycles folded into this row.")
    created_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["user", "-created_at"], name="risk_action_user_recent"),
            models.Index(fields=["status"], name="risk_action_open", condition=models.Q(status="executing")),
        ]

    def __str__(self) -> str:
        return f"{self.kind} ({self.status}) {self.reason[:60]}"
