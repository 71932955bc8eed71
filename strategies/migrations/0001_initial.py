# Strategy instances and their signals (docs/strategies.md).

import django.db.models.deletion
import django.utils.timezone
import strategies.models
import uuid
from decimal import Decimal
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('exchanges', '0002_candles'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='StrategyInstance',
            fields=[
                ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('kind', models.CharField(choices=[('rsi', 'RSI'), ('macd', 'MACD'), ('bollinger', 'Bollinger Bands'), ('volume', 'Volume spike'), ('stochastic', 'Stochastic')], max_length=16)),
                ('params', models.JSONField(blank=True, default=dict, help_text='Validated, with defaults filled in.')),
                ('symbols', models.JSONField(default=list, help_text="Unified symbols, e.g. ['BTC/USDT'].")),
                ('timeframes', models.JSONField(default=strategies.models._default_timeframes)),
                ('confirm_timeframe', models.CharField(blank=True, default='', max_length=8)),
                ('capital_usd', models.DecimalField(decimal_places=18, default=Decimal('200'), help_text='Its capital, for the daily loss limit.', max_digits=38)),
                ('correlation_guard', models.BooleanField(default=False)),
                ('max_correlation', models.DecimalField(decimal_places=4, default=Decimal('0.7'), max_digits=6)),
                ('enabled', models.BooleanField(default=True)),
                ('disabled_reason', models.CharField(blank=True, default='', max_length=300)),
                ('disabled_at', models.DateTimeField(blank=True, null=True)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('updated_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('exchange_config', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='strategies', to='exchanges.exchangeconfig')),
                ('user', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='strategies', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'ordering': ['created_at'],
                'indexes': [models.Index(fields=['enabled'], name='strategy_enabled')],
            },
        ),
        migrations.CreateModel(
            name='StrategySignal',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('symbol', models.CharField(max_length=64)),
                ('timeframe', models.CharField(max_length=8)),
                ('candle_open', models.DateTimeField()),
                ('action', models.CharField(choices=[('entry', 'Entry'), ('exit', 'Exit')], max_length=8)),
                ('price', models.DecimalField(decimal_places=18, max_digits=38)),
                ('http_status', models.PositiveSmallIntegerField(default=0)),
                ('outcome', models.CharField(blank=True, default='', help_text='classification or status', max_length=32)),
                ('reason', models.CharField(blank=True, default='', max_length=300)),
                ('signal_id', models.UUIDField(blank=True, null=True)),
                ('group_id', models.UUIDField(blank=True, db_index=True, null=True)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('instance', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='signals', to='strategies.strategyinstance')),
            ],
            options={
                'ordering': ['-created_at'],
                'constraints': [models.UniqueConstraint(fields=('instance', 'symbol', 'timeframe', 'candle_open', 'action'), name='strategy_signal_once')],
            },
        ),
    ]
