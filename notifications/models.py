"""A user's notification channels, every message sent through them, and the stored daily reports."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from .choices import ChannelKind, DeliveryStatus, EventType


def _all_events() -> list[str]:
    return [value for value in EventType.values if value != EventType.TEST]


class NotificationChannel(models.Model):
    """One channel (email, Telegram, Discord or Slack) of one user: on/off, its event switches, its target.

    The secret part of the target (a bot token, a webhook URL) is stored only as AES-256-GCM ciphertext
    bound to this row (`exchanges.crypto`, as exchange keys are) and shown masked; change it through
    `notifications.services`. A channel that keeps answering 4xx is turned off with the reason.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_channels")
    kind = models.CharField(max_length=16, choices=ChannelKind.choices)
    enabled = models.BooleanField(default=False)
    events = models.JSONField(default=_all_events, help_text="The event types this channel receives.")
    address = models.CharField(max_length=254, blank=True, help_text="Email: where to send (the account's by default).")
    chat_id = models.CharField(max_length=64, blank=True, help_text="Telegram: the chat that receives and commands.")
    secret_encrypted = models.TextField(blank=True, editable=False)
    secret_last4 = models.CharField(max_length=4, blank=True, editable=False)
    inbound_token = models.CharField(
        max_length=64, blank=True, editable=False, help_text="Telegram: the secret Telegram sends with each update."
    )
    consecutive_failures = models.PositiveSmallIntegerField(default=0)
    disabled_reason = models.TextField(blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["user", "kind"]
        constraints = [models.UniqueConstraint(fields=["user", "kind"], name="one_channel_per_kind")]

    def __str__(self) -> str:
        return f"{self.kind} of {self.user_id} ({'on' if self.enabled else 'off'})"

    def encryption_context(self) -> str:
        return f"notifications.NotificationChannel:{self.pk}:secret"

    @property
    def secret_masked(self) -> str:
        return f"****{self.secret_last4}" if self.secret_encrypted else ""


class Delivery(models.Model):
    """One message to one channel: its text, attempts and outcome (the delivery log)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    channel = models.ForeignKey(NotificationChannel, on_delete=models.CASCADE, related_name="deliveries")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="deliveries")
    event_type = models.CharField(max_length=32, choices=EventType.choices)
    text = models.TextField()
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    occurred_at = models.DateTimeField(default=timezone.now, help_text="When the event was committed.")
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    report = models.ForeignKey(
        "Report",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="deliveries",
        help_text="The report whose chart goes with the message (a file where the channel takes one).",
    )

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["user", "-created_at"], name="delivery_user_recent"),
            models.Index(fields=["channel", "-created_at"], name="delivery_channel_recent"),
        ]
        verbose_name_plural = "deliveries"

    def __str__(self) -> str:
        return f"{self.event_type} via {self.channel.kind}: {self.status}"

    @property
    def latency_ms(self) -> float | None:
        if self.sent_at is None:
            return None
        return round((self.sent_at - self.occurred_at).total_seconds() * 1000, 1)


class Report(models.Model):
    """A stored daily report (performance at 01:00 UTC, portfolio at 08:00 UTC) of one user."""

    class Kind(models.TextChoices):
        PERFORMANCE = "performance", "Daily performance"
        PORTFOLIO = "portfolio", "Portfolio report"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reports")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    day = models.DateField()
    data = models.JSONField(default=dict)
    chart_png = models.BinaryField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-day", "kind"]
        constraints = [models.UniqueConstraint(fields=["user", "kind", "day"], name="one_report_per_day")]

    def __str__(self) -> str:
        return f"{self.kind} {self.day} of {self.user_id}"
