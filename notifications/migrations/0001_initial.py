# Generated for notifications: channels, the delivery log, stored daily reports.

import uuid

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models

import notifications.models


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="NotificationChannel",
            fields=[
                ("id", models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                (
                    "kind",
                    models.CharField(
                        choices=[("email", "Email"), ("telegram", "Telegram"), ("discord", "Discord"), ("slack", "Slack")],
                        max_length=16,
                    ),
                ),
                ("enabled", models.BooleanField(default=False)),
                (
                    "events",
                    models.JSONField(
                        default=notifications.models._all_events, help_text="The event types this channel receives."
                    ),
                ),
                (
                    "address",
                    models.CharField(
                        blank=True, help_text="Email: where to send (the account's by default).", max_length=254
                    ),
                ),
                (
                    "chat_id",
                    models.CharField(blank=True, help_text="Telegram: the chat that receives and commands.", max_length=64),
                ),
                ("secret_encrypted", models.TextField(blank=True, editable=False)),
                ("secret_last4", models.CharField(blank=True, editable=False, max_length=4)),
                (
                    "inbound_token",
                    models.CharField(
                        blank=True,
                        editable=False,
                        help_text="Telegram: the secret Telegram sends with each update.",
                        max_length=64,
                    ),
                ),
                ("consecutive_failures", models.PositiveSmallIntegerField(default=0)),
                ("disabled_reason", models.TextField(blank=True)),
                ("last_success_at", models.DateTimeField(blank=True, null=True)),
                ("last_failure_at", models.DateTimeField(blank=True, null=True)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="notification_channels",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["user", "kind"],
                "constraints": [models.UniqueConstraint(fields=("user", "kind"), name="one_channel_per_kind")],
            },
        ),
        migrations.CreateModel(
            name="Delivery",
            fields=[
                ("id", models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                (
                    "event_type",
                    models.CharField(
                        choices=[
                            ("entry_filled", "Entry or DCA leg filled"),
                            ("pyramid", "Pyramid filled"),
                            ("take_profit", "Take-profit"),
                            ("stop_exit", "Stop or trailing exit"),
                            ("exit_signal", "Exit signal or manual close"),
                            ("risk_offset", "Risk offset"),
                            ("guard_triggered", "Guard triggered"),
                            ("order_rejected", "Order rejected"),
                            ("group_failed", "Group failed"),
                            ("sequence_anomaly", "Sequence anomaly"),
                            ("strategy_disabled", "Strategy auto-disabled"),
                            ("daily_report", "Daily report"),
                            ("health_change", "Health change"),
                            ("low_balance", "Low balance"),
                            ("test", "Test message"),
                        ],
                        max_length=32,
                    ),
                ),
                ("text", models.TextField()),
                (
                    "status",
                    models.CharField(
                        choices=[("pending", "Pending"), ("sent", "Sent"), ("failed", "Failed"), ("skipped", "Skipped")],
                        default="pending",
                        max_length=16,
                    ),
                ),
                ("attempts", models.PositiveSmallIntegerField(default=0)),
                ("error", models.TextField(blank=True)),
                (
                    "occurred_at",
                    models.DateTimeField(default=django.utils.timezone.now, help_text="When the event was committed."),
                ),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("sent_at", models.DateTimeField(blank=True, null=True)),
                (
                    "channel",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="deliveries",
                        to="notifications.notificationchannel",
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="deliveries",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "verbose_name_plural": "deliveries",
                "ordering": ["-created_at"],
                "indexes": [
                    models.Index(fields=["user", "-created_at"], name="delivery_user_recent"),
                    models.Index(fields=["channel", "-created_at"], name="delivery_channel_recent"),
                ],
            },
        ),
        migrations.CreateModel(
            name="Report",
            fields=[
                ("id", models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                (
                    "kind",
                    models.CharField(
                        choices=[("performance", "Daily performance"), ("portfolio", "Portfolio report")], max_length=16
                    ),
                ),
                ("day", models.DateField()),
                ("data", models.JSONField(default=dict)),
                ("chart_png", models.BinaryField(blank=True, editable=False, null=True)),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="reports", to=settings.AUTH_USER_MODEL
                    ),
                ),
            ],
            options={
                "ordering": ["-day", "kind"],
                "constraints": [models.UniqueConstraint(fields=("user", "kind", "day"), name="one_report_per_day")],
            },
        ),
    ]
