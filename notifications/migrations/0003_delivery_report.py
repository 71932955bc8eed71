import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("notifications", "0002_entry_placed_event"),
    ]

    operations = [
        migrations.AddField(
            model_name="delivery",
            name="report",
            field=models.ForeignKey(
                blank=True,
                help_text="The report whose chart goes with the message (a file where the channel takes one).",
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="deliveries",
                to="notifications.report",
            ),
        ),
    ]
