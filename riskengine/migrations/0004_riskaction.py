import uuid

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("riskengine", "0003_queuedsignal_to_positions"),
        ("positions", "0006_group_risk_timer"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="RiskAction",
            fields=[
                ("id", models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                (
                    "kind",
                    models.CharField(choices=[("offset", "Offset"), ("none", "Nothing done")], max_length=8),
                ),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("decided", "Decided (nothing to execute)"),
                            ("executing", "Executing (intents committed, orders being sent)"),
                            ("done", "Done (every order settled)"),
                            ("aborted", "Aborted (a group changed before anything was sent)"),
                        ],
                        default="decided",
                        max_length=12,
                    ),
                ),
                ("trigger", models.CharField(default="beat", help_text="beat, fill or run_now", max_length=16)),
                ("reason", models.TextField()),
                (
                    "plan",
                    models.JSONField(blank=True, help_text="The plan as decided (decimals as strings).", null=True),
                ),
                (
                    "orders",
                    models.JSONField(
                        blank=True,
                        default=dict,
                        help_text="The orders of an offset: {group id: exit order id} (winners' sells).",
                    ),
                ),
                (
                    "realized",
                    models.JSONField(blank=True, help_text="{loser, winners: {group id: amount}, net}", null=True),
                ),
                ("repeats", models.PositiveIntegerField(default=1, help_text="Cycles folded into this row.")),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now)),
                ("last_seen_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "loser_group",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="risk_actions",
                        to="positions.positiongroup",
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="risk_actions",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at"],
                "indexes": [
                    models.Index(fields=["user", "-created_at"], name="risk_action_user_recent"),
                    models.Index(
                        condition=models.Q(("status", "executing")), fields=["status"], name="risk_action_open"
                    ),
                ],
            },
        ),
    ]
