"""Signals, position groups, pyramids, orders and fills: the state of every trade."""

from __future__ import annotations

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from .choices import (
    FINAL_GROUP_STATUSES,
    ExitPurpose,
    GroupStatus,
    OrderSide,
    OrderStatus,
    OrderType,
    ProcessingStatus,
    Side,
    SignalClassification,
    SignalSource,
    SignalStatus,
    TpMode,
)


def PriceField(**kwargs) -> models.DecimalField:  # type: ignore[no-untyped-def]  # noqa: N802
    """The one field type for prices, quantities and money (Decimal: docs/README.md#how-to-read-the-repo)."""
    return models.DecimalField(max_digits=38, decimal_places=18, **kwargs)


ZERO = Decimal("0")


class EngineConfig(models.Model):
    """A user's engine settings (grid, TP, stops, pool, risk) as one validated JSON object.

    Validated by `positions.config`; a group snapshots the effective config when it opens so later
    edits never change a running trade.
    """

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="engine_config")
    data = models.JSONField(default=dict)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"engine config of {self.user}"


class WebhookSignal(models.Model):
    """Every webhook request, accepted or not, with its outcome (the secret is never stored)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Indexed by `signal_idempotency` and (user, -received_at): a third index would only slow every webhook.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="signals",
        db_index=False,
    )
    exchange_config = models.ForeignKey(
        "exchanges.ExchangeConfig", null=True, blank=True, on_delete=models.SET_NULL, related_name="signals"
    )
    group = models.ForeignKey("PositionGroup", null=True, blank=True, on_delete=models.SET_NULL, related_name="signals")
    received_at = models.DateTimeField(default=timezone.now, db_index=True)
    source = models.CharField(max_length=16, choices=SignalSource.choices, default=SignalSource.TRADINGVIEW)
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    body = models.JSONField(null=True, blank=True, help_text="The request body with the secret redacted.")
    raw_excerpt = models.TextField(blank=True, help_text="First bytes of a body that was not valid JSON.")
    # What the signal says, once parsed.
    trade_id = models.CharField(max_length=128, blank=True)
    tv_timestamp = models.CharField(max_length=64, blank=True)
    action = models.CharField(max_length=16, blank=True)
    intent_type = models.CharField(max_length=16, blank=True)
    symbol = models.CharField(max_length=32, blank=True)
    timeframe = models.CharField(max_length=8, blank=True)
    side = models.CharField(max_length=8, choices=Side.choices, blank=True)
    entry_price = PriceField(null=True, blank=True)
    order_size = PriceField(null=True, blank=True)
    # The outcome.
    classification = models.CharField(max_length=16, choices=SignalClassification.choices, blank=True)
    status = models.CharField(max_length=16, choices=SignalStatus.choices)
    http_status = models.PositiveSmallIntegerField()
    reason = models.TextField(blank=True)
    idempotency_key = models.CharField(max_length=64, null=True, blank=True)
    processing_status = models.CharField(max_length=16, choices=ProcessingStatus.choices, blank=True)
    processing_error = models.TextField(blank=True)
    ack_ms = models.FloatField(null=True, blank=True, help_text="Time from request to response, ms.")
    flags = models.JSONField(default=list, blank=True, help_text='e.g. ["sequence_anomaly"] (docs/engine.md#guards)')
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            # 50 copies of one alert arriving at once: the database decides which one counts.
            models.UniqueConstraint(
                fields=["user", "idempotency_key"],
                name="signal_idempotency",
                condition=Q(idempotency_key__isnull=False),
            ),
        ]
        indexes = [
            models.Index(fields=["user", "-received_at"]),
            # The dispatcher's and reconciliation's look-up of signals still to process.
            models.Index(
                fields=["received_at"], name="signal_processing_pending", condition=Q(processing_status="pending")
            ),
        ]

    def __str__(self) -> str:
        return f"{self.action or '?'} {self.symbol or '?'} {self.status} ({self.received_at:%Y-%m-%d %H:%M:%S})"


class PositionGroup(models.Model):
    """One trade: user + exchange config + symbol + timeframe + side, with its pyramids and orders.

    Status changes only through `positions.services.state.group_transition` (allowed-transition map,
    row lock, audit).
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Indexed by (user, status) and `one_open_group_per_identity`.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="position_groups", db_index=False
    )
    exchange_config = models.ForeignKey("exchanges.ExchangeConfig", on_delete=models.PROTECT, related_name="groups")
    symbol = models.CharField(max_length=32)
    exchange_symbol = models.CharField(max_length=32, blank=True)
    timeframe = models.CharField(max_length=8)
    side = models.CharField(max_length=8, choices=Side.choices, default=Side.LONG)
    # Indexed in Meta: a plain index, without the pattern-matching twin `db_index` adds on PostgreSQL.
    status = models.CharField(max_length=20, choices=GroupStatus.choices, default=GroupStatus.WAITING)
    config = models.JSONField(default=dict, help_text="The effective engine config when the group opened.")
    tp_mode = models.CharField(max_length=20, choices=TpMode.choices, default=TpMode.PER_LEG)
    max_pyramids = models.PositiveSmallIntegerField(default=5)
    pyramid_count = models.PositiveSmallIntegerField(default=0)
    last_pyramid_candle = models.DateTimeField(null=True, blank=True)
    # Position, from fills (fees in cost).
    filled_quantity = PriceField(default=ZERO, help_text="Base bought minus base sold, net of base fees.")
    bought_quantity = PriceField(default=ZERO)
    sold_quantity = PriceField(default=ZERO)
    total_cost = PriceField(default=ZERO, help_text="Quote spent on entries, fees included.")
    avg_entry_price = PriceField(null=True, blank=True)
    realized_pnl = PriceField(default=ZERO)
    fees_quote = PriceField(default=ZERO)
    # Exits.
    stop_loss_price = PriceField(null=True, blank=True)
    trailing_active = models.BooleanField(default=False)
    trailing_high = PriceField(null=True, blank=True)
    trailing_stop_price = PriceField(null=True, blank=True)
    close_reason = models.CharField(max_length=20, choices=ExitPurpose.choices, blank=True)
    failure_reason = models.TextField(blank=True)
    # Risk engine operator flags.
    risk_blocked = models.BooleanField(default=False)
    risk_skip_once = models.BooleanField(default=False)
    # The risk engine's eligibility timer (docs/engine.md#risk-engine): when `risk_eligibility` was first
    # met, and the pyramid count then (a later pyramid restarts it with `risk_timer_reset_on_pyramid`).
    risk_timer_started_at = models.DateTimeField(null=True, blank=True)
    risk_timer_pyramids = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    live_at = models.DateTimeField(null=True, blank=True)
    filled_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "exchange_config", "symbol", "timeframe", "side"],
                condition=~Q(status__in=[s.value for s in FINAL_GROUP_STATUSES]),
                name="one_open_group_per_identity",
            ),
        ]
        indexes = [models.Index(fields=["user", "status"]), models.Index(fields=["status"], name="group_status")]

    def __str__(self) -> str:
        return f"{self.symbol} {self.timeframe} {self.side} [{self.status}]"

    @property
    def is_open(self) -> bool:
        return self.status not in FINAL_GROUP_STATUSES


class Pyramid(models.Model):
    """One entry into a group (index 0 is the first), with its own grid from its own entry price."""

    group = models.ForeignKey(  # indexed by `one_pyramid_per_index`
        PositionGroup, on_delete=models.CASCADE, related_name="pyramids", db_index=False
    )
    index = models.PositiveSmallIntegerField()
    signal = models.ForeignKey(WebhookSignal, null=True, blank=True, on_delete=models.SET_NULL, related_name="pyramids")
    entry_price = PriceField()
    capital_usd = PriceField()
    levels = models.JSONField(default=list, help_text="The grid levels used for this pyramid.")
    entry_order_type = models.CharField(max_length=8, choices=OrderType.choices, default=OrderType.LIMIT)
    created_at = models.DateTimeField(default=timezone.now)
    submitted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["group", "index"]
        constraints = [models.UniqueConstraint(fields=["group", "index"], name="one_pyramid_per_index")]

    def __str__(self) -> str:
        return f"pyramid {self.index} of {self.group}"


class ExchangeOrderBase(models.Model):
    """What every order we send shares: the intent (committed before sending) and the exchange's answer."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    group = models.ForeignKey(PositionGroup, on_delete=models.CASCADE)
    exchange_config = models.ForeignKey("exchanges.ExchangeConfig", on_delete=models.PROTECT)
    symbol = models.CharField(max_length=32)
    side = models.CharField(max_length=4, choices=OrderSide.choices)
    order_type = models.CharField(max_length=8, choices=OrderType.choices)
    price = PriceField(null=True, blank=True, help_text="Limit price after precision; null for market.")
    quantity = PriceField()
    client_order_id = models.CharField(max_length=32, unique=True)
    exchange_order_id = models.CharField(max_length=64, blank=True, db_index=True)
    status = models.CharField(max_length=20, choices=OrderStatus.choices, default=OrderStatus.PENDING, db_index=True)
    filled_quantity = PriceField(default=ZERO)
    filled_price = PriceField(null=True, blank=True, help_text="Average fill price.")
    fee = PriceField(default=ZERO)
    fee_asset = models.CharField(max_length=16, blank=True)
    submit_attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    submitted_at = models.DateTimeField(null=True, blank=True)
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    filled_at = models.DateTimeField(null=True, blank=True)
    canceled_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class DCAOrder(ExchangeOrderBase):
    """An entry leg of a pyramid's grid (level 0 is the entry order itself)."""

    group = models.ForeignKey(PositionGroup, on_delete=models.CASCADE, related_name="dca_orders")
    exchange_config = models.ForeignKey("exchanges.ExchangeConfig", on_delete=models.PROTECT, related_name="dca_orders")
    pyramid = models.ForeignKey(Pyramid, on_delete=models.CASCADE, related_name="orders")
    pyramid_level = models.PositiveSmallIntegerField(help_text="The pyramid index.")
    dca_level = models.PositiveSmallIntegerField(help_text="The grid level within the pyramid.")
    expected_price = PriceField(help_text="The grid price before the exchange filled it.")
    tp_percent = PriceField(default=ZERO)
    tp_price = PriceField(null=True, blank=True)

    class Meta:
        ordering = ["group", "pyramid_level", "dca_level"]
        constraints = [
            models.UniqueConstraint(fields=["pyramid", "dca_level"], name="one_order_per_grid_level"),
        ]

    def __str__(self) -> str:
        leg = f"P{self.pyramid_level}L{self.dca_level}"
        return f"{self.symbol} {leg} {self.side} {self.quantity}@{self.price} [{self.status}]"


class ExitOrder(ExchangeOrderBase):
    """A sell that takes profit or closes (per-leg TP, aggregate TP, exit, stop, risk)."""

    group = models.ForeignKey(PositionGroup, on_delete=models.CASCADE, related_name="exit_orders")
    exchange_config = models.ForeignKey(
        "exchanges.ExchangeConfig", on_delete=models.PROTECT, related_name="exit_orders"
    )
    purpose = models.CharField(max_length=20, choices=ExitPurpose.choices)
    leg = models.ForeignKey(DCAOrder, null=True, blank=True, on_delete=models.CASCADE, related_name="tp_orders")
    pyramid = models.ForeignKey(Pyramid, null=True, blank=True, on_delete=models.CASCADE, related_name="tp_orders")
    reference_price = PriceField(null=True, blank=True, help_text="Price seen before a market exit was sent.")
    slippage_percent = PriceField(null=True, blank=True)

    class Meta:
        ordering = ["group", "created_at"]

    def __str__(self) -> str:
        return f"{self.symbol} {self.purpose} {self.side} {self.quantity}@{self.price or 'market'} [{self.status}]"


class Fill(models.Model):
    """One execution reported by the exchange (the fills ledger)."""

    group = models.ForeignKey(PositionGroup, on_delete=models.CASCADE, related_name="fills")
    dca_order = models.ForeignKey(DCAOrder, null=True, blank=True, on_delete=models.CASCADE, related_name="fills")
    exit_order = models.ForeignKey(ExitOrder, null=True, blank=True, on_delete=models.CASCADE, related_name="fills")
    trade_id = models.CharField(max_length=64)
    side = models.CharField(max_length=4, choices=OrderSide.choices)
    price = PriceField()
    quantity = PriceField()
    fee = PriceField(default=ZERO)
    fee_asset = models.CharField(max_length=16, blank=True)
    fee_quote_value = PriceField(
        null=True,
        blank=True,
        help_text="A fee in a third asset (e.g. BNB) valued in the quote asset when booked; null: not valued.",
    )
    executed_at = models.DateTimeField(default=timezone.now)
    recorded_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["executed_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(dca_order__isnull=False, exit_order__isnull=True)
                | Q(dca_order__isnull=True, exit_order__isnull=False),
                name="fill_belongs_to_one_order",
            ),
            models.UniqueConstraint(fields=["group", "trade_id"], name="one_fill_per_trade"),
        ]

    def __str__(self) -> str:
        return f"{self.side} {self.quantity}@{self.price} ({self.trade_id})"


class GroupEvent(models.Model):
    """A human-readable line in a group's history (opened, pyramid added, filled, TP, closed...)."""

    group = models.ForeignKey(PositionGroup, on_delete=models.CASCADE, related_name="events")
    at = models.DateTimeField(default=timezone.now)
    kind = models.CharField(max_length=32)
    message = models.TextField()
    details = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["at"]

    def __str__(self) -> str:
        return f"{self.at:%H:%M:%S} {self.kind}: {self.message}"


class QueuedSignal(models.Model):
    """A new-group signal waiting for a pool slot (docs/engine.md#pool-and-queue). One per group identity;
    a newer signal of the identity replaces it (new price, replacement count + 1)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(  # indexed by `one_queued_signal_per_identity`
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="queued_signals", db_index=False
    )
    exchange_config = models.ForeignKey(
        "exchanges.ExchangeConfig", on_delete=models.CASCADE, related_name="queued_signals"
    )
    signal = models.ForeignKey(WebhookSignal, on_delete=models.CASCADE, related_name="queue_entries")
    symbol = models.CharField(max_length=32)
    timeframe = models.CharField(max_length=8)
    side = models.CharField(max_length=8, default="long")
    entry_price = PriceField()
    replacement_count = models.PositiveIntegerField(default=0)
    queued_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    blocked_reason = models.CharField(
        max_length=300,
        blank=True,
        default="",
        help_text="Why the last promotion passed it over: the guard that still refuses it (empty: none did).",
    )

    class Meta:
        ordering = ["queued_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "exchange_config", "symbol", "timeframe", "side"], name="one_queued_signal_per_identity"
            ),
        ]

    def __str__(self) -> str:
        return f"queued {self.symbol} {self.timeframe} @ {self.entry_price} (x{self.replacement_count})"


class TradingGuard(models.Model):
    """A pause switch and the daily-loss reset of one user, or (`user` null) the system-wide pause an
    operator sets (docs/engine.md#guards). Changed only through `positions.services.guards` (audited)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="trading_guard"
    )
    paused = models.BooleanField(default=False)
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_reason = models.CharField(max_length=200, blank=True)
    daily_loss_reset_at = models.DateTimeField(
        null=True, blank=True, help_text="An operator's reset: realized loss counts from here on this UTC day."
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        who = self.user or "everyone"
        return f"guard of {who}: {'paused' if self.paused else 'running'}"
