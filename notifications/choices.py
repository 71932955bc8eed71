"""Channels, event types and delivery statuses of notifications (docs/processes.md#notifications)."""

from __future__ import annotations

from django.db import models


class ChannelKind(models.TextChoices):
    EMAIL = "email", "Email"
    TELEGRAM = "telegram", "Telegram"
    DISCORD = "discord", "Discord"
    SLACK = "slack", "Slack"


class EventType(models.TextChoices):
    ENTRY_PLACED = "entry_placed", "Entry placed (resting)"
    ENTRY_FILLED = "entry_filled", "Entry or DCA leg filled"
    PYRAMID = "pyramid", "Pyramid filled"
    TAKE_PROFIT = "take_profit", "Take-profit"
    STOP_EXIT = "stop_exit", "Stop or trailing exit"
    EXIT_SIGNAL = "exit_signal", "Exit signal or manual close"
    RISK_OFFSET = "risk_offset", "Risk offset"
    GUARD_TRIGGERED = "guard_triggered", "Guard triggered"
    ORDER_REJECTED = "order_rejected", "Order rejected"
    GROUP_FAILED = "group_failed", "Group failed"
    SEQUENCE_ANOMALY = "sequence_anomaly", "Sequence anomaly"
    STRATEGY_DISABLED = "strategy_disabled", "Strategy auto-disabled"
    DAILY_REPORT = "daily_report", "Daily report"
    HEALTH_CHANGE = "health_change", "Health change"
    LOW_BALANCE = "low_balance", "Low balance"
    TEST = "test", "Test message"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"
