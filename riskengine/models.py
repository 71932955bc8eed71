"""The waiting queue: new-group signals that found the execution pool full."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class QueuedSignal(models.Model):
    """A new-group entry waiting for a pool slot. One per group identity; a newer entry replaces it."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(  # indexed by `one_queued_signal_per_identity`
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="queued_signals", db_index=False
    )
    exchange_config = models.ForeignKey(
        "exchanges.ExchangeConfig", on_delete=models.CASCADE, related_name="queued_signals"
    )
    signal = models.ForeignKey("positions.WebhookSignal", on_delete=models.CASCADE, related_name="queue_entries")
    symbol = models.CharField(max_length=32)
    timeframe = models.CharField(max_length=8)
    side = models.CharField(max_length=8, default="long")
    entry_price = models.DecimalField(max_digits=38, decimal_places=18)
    replacement_count = models.PositiveIntegerField(default=0)
    queued_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["queued_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "exchange_config", "symbol", "timeframe", "side"], name="one_queued_signal_per_identity"
            ),
        ]

    def __str__(self) -> str:
        return f"queued {self.symbol} {self.timeframe} @ {self.entry_price} (x{self.replacement_count})"
