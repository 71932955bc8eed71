from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("positions", "0005_signal_pending_trigger"),
    ]

    operations = [
        migrations.AddField(
            model_name="positiongroup",
            name="risk_timer_started_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="positiongroup",
            name="risk_timer_pyramids",
            field=models.PositiveSmallIntegerField(default=0),
        ),
    ]
