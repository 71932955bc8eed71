"""The model registry (docs/ml.md#registry): every trained filter model with its scores; at most one
deployed per (symbol, timeframe)."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class ModelStatus(models.TextChoices):
    CANDIDATE = "candidate", "Candidate"
    DEPLOYED = "deployed", "Deployed"
    RETIRED = "retired", "Retired"


class FilterModel(models.Model):
    """One trained XGBoost entry filter: what it was trained on, its walk-forward and holdout scores, and
    the booster itself (xgboost's UBJSON bytes, kept in the row so that a backup holds it and every
    process reads it from the database; a model is a few hundred KB). Written only by
    `analytics.ml.services`; never deleted by them, so an earlier model can be deployed again."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    exchange_name = models.CharField(max_length=64, help_text="Whose stored candles it was trained on and reads.")
    symbol = models.CharField(max_length=64, help_text="Unified symbol, e.g. BTC/USDT.")
    timeframe = models.CharField(max_length=8)
    horizon = models.PositiveIntegerField(help_text="Candles ahead the label looks.")
    features = models.JSONField(default=list)
    params = models.JSONField(default=dict, blank=True, help_text="Booster and split parameters.")
    folds = models.JSONField(default=list, blank=True, help_text="Walk-forward folds: windows and scores.")
    holdout = models.JSONField(default=dict, blank=True, help_text="Score on the final out-of-sample window.")
    score = models.FloatField(help_text="Holdout AUC: what deploy-if-better compares.")
    candles = models.PositiveIntegerField(default=0)
    rows = models.PositiveIntegerField(default=0, help_text="Labelled rows after the warm-up.")
    first_ms = models.BigIntegerField(default=0)
    last_ms = models.BigIntegerField(default=0)
    booster = models.BinaryField()
    device = models.CharField(max_length=8, default="cpu")
    training_seconds = models.FloatField(default=0)
    status = models.CharField(max_length=16, choices=ModelStatus.choices, default=ModelStatus.CANDIDATE)
    status_reason = models.CharField(max_length=300, blank=True, default="")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="filter_models"
    )
    trained_at = models.DateTimeField(default=timezone.now)
    deployed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-trained_at"]
        indexes = [models.Index(fields=["symbol", "timeframe", "status"], name="filtermodel_series_status")]
        constraints = [
            models.UniqueConstraint(
                fields=["symbol", "timeframe"],
                condition=models.Q(status="deployed"),
                name="filtermodel_one_deployed",
            )
        ]

    def __str__(self) -> str:
        return f"{self.symbol} {self.timeframe} h{self.horizon} AUC {self.score:.3f} ({self.status})"
