"""The waiting queue now belongs to `positions` (its migration 0004 renamed the table): only the model
state goes here."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("riskengine", "0002_redundant_indexes"),
        ("positions", "0004_queuedsignal_from_riskengine"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(database_operations=[], state_operations=[migrations.DeleteModel("QueuedSignal")]),
    ]
