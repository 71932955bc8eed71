"""The advisor's operator settings (one row) and its stored reviews (docs/advisor.md)."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone

SETTINGS_PK = 1


class ReviewStatus(models.TextChoices):
    RUNNING = "running", "Running"
    OK = "ok", "OK"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


class AdvisorSettings(models.Model):
    """The operator's advisor settings: a single row (primary key 1), edited in the admin so that a change
    needs no restart. The API key is stored only as AES-256-GCM ciphertext (`exchanges.crypto`, bound to
    `encryption_context()`), shown masked, never read back. Written only by `analytics.advisor.services`."""

    id = models.PositiveSmallIntegerField(primary_key=True, default=SETTINGS_PK, editable=False)
    enabled = models.BooleanField(default=False, help_text="Run the daily review (off by default).")
    base_url = models.CharField(
        max_length=300, blank=True, default="", help_text="The API's root, e.g. https://api.openai.com (http or https)."
    )
    api_key_encrypted = models.TextField(blank=True, default="", editable=False)
    api_key_last4 = models.CharField(max_length=4, blank=True, default="", editable=False)
    model = models.CharField(max_length=100, blank=True, default="", help_text="The model name the API expects.")
    monthly_cost_cap_usd = models.DecimalField(
        max_digits=12, decimal_places=4, default=Decimal("10"), help_text="No review starts that would pass it."
    )
    price_input_per_1k_usd = models.DecimalField(
        max_digits=12, decimal_places=6, default=Decimal("0"), help_text="USD per 1000 prompt tokens."
    )
    price_output_per_1k_usd = models.DecimalField(
        max_digits=12, decimal_places=6, default=Decimal("0"), help_text="USD per 1000 completion tokens."
    )
    max_output_tokens = models.PositiveIntegerField(default=800, help_text="The answer's length limit sent to the API.")
    timeout_seconds = models.PositiveSmallIntegerField(default=30)
    may_act = models.BooleanField(default=False, help_text="Let the advisor's suggested actions run (off by default).")
    allowed_actions = models.JSONField(
        default=list, blank=True, help_text='Which action kinds may run when acting is on, e.g. ["retrain"].'
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = "advisor settings"
        verbose_name_plural = "advisor settings"
        constraints = [models.CheckConstraint(condition=models.Q(id=SETTINGS_PK), name="advisorsettings_single_row")]

    def __str__(self) -> str:
        return f"Advisor ({'on' if self.enabled else 'off'}, {self.model or 'no model'})"

    def encryption_context(self) -> str:
        return f"analytics.AdvisorSettings:{self.pk}:api_key"

    @property
    def api_key_masked(self) -> str:
        return f"****{self.api_key_last4}" if self.api_key_encrypted else ""


class AdvisorReview(models.Model):
    """One user's review of one day: the numbers sent (`input`, never a secret), the parsed answer, tokens,
    cost, what was done about its actions, and how it ended (ok / failed with the reason / skipped with the
    reason). One per user and day; written only by `analytics.advisor.services`."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="advisor_reviews")
    day = models.DateField(help_text="The UTC day reviewed.")
    status = models.CharField(max_length=16, choices=ReviewStatus.choices, default=ReviewStatus.RUNNING)
    model = models.CharField(max_length=100, blank=True, default="")
    input = models.JSONField(default=dict, blank=True)
    output = models.JSONField(null=True, blank=True, help_text="The parsed answer: summary, observations, actions.")
    actions_taken = models.JSONField(default=list, blank=True, help_text="Each suggested action and what was done.")
    error = models.TextField(blank=True, default="")
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(
        max_digits=14,
        decimal_places=6,
        default=Decimal("0"),
        help_text="From the API's usage; estimated until then.",
    )
    estimated_cost_usd = models.DecimalField(max_digits=14, decimal_places=6, default=Decimal("0"))
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-day", "-created_at"]
        indexes = [models.Index(fields=["created_at"], name="advisorreview_created")]
        constraints = [models.UniqueConstraint(fields=["user", "day"], name="advisorreview_one_per_user_day")]

    def __str__(self) -> str:
        return f"advisor review {self.day} of {self.user_id} ({self.status})"
