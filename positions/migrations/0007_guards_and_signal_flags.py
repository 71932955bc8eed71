import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("positions", "0006_group_risk_timer"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="webhooksignal",
            name="flags",
            field=models.JSONField(
                blank=True, default=list, help_text='e.g. ["sequence_anomaly"] (docs/engine.md#guards)'
            ),
        ),
        migrations.CreateModel(
            name="TradingGuard",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("paused", models.BooleanField(default=False)),
                ("paused_at", models.DateTimeField(blank=True, null=True)),
                ("paused_reason", models.CharField(blank=True, max_length=200)),
                (
                    "daily_loss_reset_at",
                    models.DateTimeField(
                        blank=True,
                        help_text="An operator's reset: realized loss counts from here on this UTC day.",
                        null=True,
                    ),
                ),
                ("updated_at", models.DateTimeField(auto_now=True)),
                (
                    "user",
                    models.OneToOneField(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="trading_guard",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
        ),
    ]
