# The candle store (docs/market-data.md): candles, their quality findings, backfills.

import django.utils.timezone
import uuid
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('exchanges', '0001_initial'),
    ]

    operations = [
        migrations.CreateModel(
            name='Candle',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('exchange_name', models.CharField(max_length=64)),
                ('symbol', models.CharField(help_text='Unified symbol, e.g. BTC/USDT.', max_length=64)),
                ('timeframe', models.CharField(max_length=8)),
                ('open_time', models.DateTimeField()),
                ('open', models.DecimalField(decimal_places=18, max_digits=38)),
                ('high', models.DecimalField(decimal_places=18, max_digits=38)),
                ('low', models.DecimalField(decimal_places=18, max_digits=38)),
                ('close', models.DecimalField(decimal_places=18, max_digits=38)),
                ('volume', models.DecimalField(decimal_places=18, max_digits=38)),
                ('quarantined', models.BooleanField(default=False)),
                ('quality_note', models.CharField(blank=True, default='', max_length=200)),
            ],
            options={
                'ordering': ['exchange_name', 'symbol', 'timeframe', 'open_time'],
                'constraints': [models.UniqueConstraint(fields=('exchange_name', 'symbol', 'timeframe', 'open_time'), name='candle_key')],
            },
        ),
        migrations.CreateModel(
            name='CandleBackfill',
            fields=[
                ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('exchange_name', models.CharField(max_length=64)),
                ('symbol', models.CharField(max_length=64)),
                ('timeframe', models.CharField(max_length=8)),
                ('since', models.DateTimeField()),
                ('until', models.DateTimeField()),
                ('cursor', models.DateTimeField(help_text='The open time the next page starts at.')),
                ('fetched', models.PositiveIntegerField(default=0)),
                ('status', models.CharField(default='running', help_text='running, done or failed.', max_length=16)),
                ('error', models.TextField(blank=True, default='')),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('updated_at', models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                'ordering': ['-created_at'],
            },
        ),
        migrations.CreateModel(
            name='CandleIssue',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('exchange_name', models.CharField(max_length=64)),
                ('symbol', models.CharField(max_length=64)),
                ('timeframe', models.CharField(max_length=8)),
                ('kind', models.CharField(help_text='gap, duplicate, ohlc, non_positive, outlier or stale.', max_length=16)),
                ('open_time', models.DateTimeField(blank=True, null=True)),
                ('detail', models.CharField(blank=True, default='', max_length=300)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
            ],
            options={
                'ordering': ['-created_at'],
                'indexes': [models.Index(fields=['exchange_name', 'symbol', 'timeframe', 'kind'], name='candle_issue_series_kind')],
            },
        ),
    ]
