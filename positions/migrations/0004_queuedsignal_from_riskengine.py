"""The waiting queue moves from `riskengine` to `positions`, beside the intake that fills it: the table is
renamed, its rows, constraints and indexes stay."""

import uuid

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("exchanges", "0001_initial"),
        ("positions", "0003_redundant_indexes"),
        ("riskengine", "0002_redundant_indexes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    "ALTER TABLE riskengine_queuedsignal RENAME TO positions_queuedsignal",
                    "ALTER TABLE positions_queuedsignal RENAME TO riskengine_queuedsignal",
                ),
            ],
            state_operations=[
                migrations.CreateModel(
                    name="QueuedSignal",
                    fields=[
                        ("id", models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                        ("symbol", models.CharField(max_length=32)),
                        ("timeframe", models.CharField(max_length=8)),
                        ("side", models.CharField(default="long", max_length=8)),
                        ("entry_price", models.DecimalField(decimal_places=18, max_digits=38)),
                        ("replacement_count", models.PositiveIntegerField(default=0)),
                        ("queued_at", models.DateTimeField(default=django.utils.timezone.now)),
                        ("updated_at", models.DateTimeField(auto_now=True)),
                        (
                            "exchange_config",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="queued_signals",
                                to="exchanges.exchangeconfig",
                            ),
                        ),
                        (
                            "signal",
                            models.ForeignKey(
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="queue_entries",
                                to="positions.webhooksignal",
                            ),
                        ),
                        (
                            "user",
                            models.ForeignKey(
                                db_index=False,
                                on_delete=django.db.models.deletion.CASCADE,
                                related_name="queued_signals",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "ordering": ["queued_at"],
                        "constraints": [
                            models.UniqueConstraint(
                                fields=("user", "exchange_config", "symbol", "timeframe", "side"),
                                name="one_queued_signal_per_identity",
                            )
                        ],
                    },
                ),
            ],
        ),
    ]
