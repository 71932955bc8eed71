"""Strategy instances (a user's strategy on symbols and timeframes) and the signals they emitted."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.utils import timezone

from .choices import SignalAction, StrategyKind


def _default_timeframes() -> list[str]:
    return ["15m"]


class StrategyInstance(models.Model):
    """One user's built-in strategy (`kind` with its `params`) run on `symbols` × `timeframes` of one
    exchange config, optionally confirmed by a higher timeframe. Its signals enter the webhook's intake
    (docs/strategies.md#live). Disabled by the user, an operator, or its health (`disabled_reason`);
    re-enabling is always manual. Written only by `strategies.services`."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="strategies")
    exchange_config = models.ForeignKey("exchanges.ExchangeConfig", on_delete=models.CASCADE, related_name="strategies")
    kind = models.CharField(max_length=16, choices=StrategyKind.choices)
    params = models.JSONField(default=dict, blank=True, help_text="Validated, with defaults filled in.")
    symbols = models.JSONField(default=list, help_text="Unified symbols, e.g. ['BTC/USDT'].")
    timeframes = models.JSONField(default=_default_timeframes)
    confirm_timeframe = models.CharField(max_length=8, blank=True, default="")
    capital_usd = models.DecimalField(
        max_digits=38, decimal_places=18, default=Decimal("200"), help_text="Its capital, for the daily loss limit."
    )
    correlation_guard = models.BooleanField(default=False)
    max_correlation = models.DecimalField(max_digits=6, decimal_places=4, default=Decimal("0.7"))
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=300, blank=True, default="")
    disabled_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at"]
        indexes = [models.Index(fields=["enabled"], name="strategy_enabled")]

    def __str__(self) -> str:
        return f"{self.kind} of {self.user_id} on {', '.join(self.symbols)}"


class StrategySignal(models.Model):
    """A signal an instance emitted at one candle close, and what the intake answered. Unique per
    instance, series, candle and action: evaluating the same close twice sends nothing twice."""

    id = models.BigAutoField(primary_key=True)
    instance = models.ForeignKey(StrategyInstance, on_delete=models.CASCADE, related_name="signals")
    symbol = models.CharField(max_length=64)
    timeframe = models.CharField(max_length=8)
    candle_open = models.DateTimeField()
    action = models.CharField(max_length=8, choices=SignalAction.choices)
    price = models.DecimalField(max_digits=38, decimal_places=18)
    http_status = models.PositiveSmallIntegerField(default=0)
    outcome = models.CharField(max_length=32, blank=True, default="", help_text="classification or status")
    reason = models.CharField(max_length=300, blank=True, default="")
    signal_id = models.UUIDField(null=True, blank=True)
    group_id = models.UUIDField(null=True, blank=True, db_index=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["instance", "symbol", "timeframe", "candle_open", "action"], name="strategy_signal_once"
            )
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.symbol} {self.timeframe} at {self.candle_open:%Y-%m-%d %H:%M}"
