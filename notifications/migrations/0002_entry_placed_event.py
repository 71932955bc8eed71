from django.db import migrations, models


def switch_on_entry_placed(apps, schema_editor):
    """Channels made before the event existed take it where they take entry fills (their default)."""
    channel_model = apps.get_model("notifications", "NotificationChannel")
    for channel in channel_model.objects.all():
        if "entry_filled" in channel.events and "entry_placed" not in channel.events:
            channel.events = [*channel.events, "entry_placed"]
            channel.save(update_fields=["events"])


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="delivery",
            name="event_type",
            field=models.CharField(
                choices=[
                    ("entry_placed", "Entry placed (resting)"),
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
        migrations.RunPython(switch_on_entry_placed, migrations.RunPython.noop),
    ]
