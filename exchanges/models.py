"""Exchange credentials (encrypted), cached market rules, and the state of paper-trading accounts."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TypedDict

from django.conf import settings
from django.db import models
from django.utils import timezone

from . import crypto
from .choices import ExchangeMode
from .precision import MarketRules


class _DecimalSize(TypedDict):
    max_digits: int
    decimal_places: int


MONEY: _DecimalSize = {"max_digits": 38, "decimal_places": 18}


@dataclass(frozen=True)
class Credentials:
    """Decrypted API credentials; the repr shows only the masked key."""

    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)
    password: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        return f"Credentials(api_key={crypto.mask_secret(self.api_key)!r})"


class ExchangeConfig(models.Model):
    """One user's API key pair for one exchange, with its trading mode and last validation result.

    The key, secret and optional password (passphrase) are stored only as AES-256-GCM ciphertext bound
    to this row and field (see ``exchanges.crypto``); read them with :meth:`credentials`, change them
    through ``exchanges.services``. For ``exchange_name == "simulator"`` every mode talks to
    ``settings.SIMULATOR_URL``.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="exchange_configs")
    exchange_name = models.CharField(max_length=64, help_text="A ccxt exchange id, or 'simulator'.")
    mode = models.CharField(max_length=8, choices=ExchangeMode.choices, default=ExchangeMode.PAPER)
    api_key_encrypted = models.TextField(editable=False)
    api_secret_encrypted = models.TextField(editable=False)
    password_encrypted = models.TextField(blank=True, default="", editable=False)
    api_key_last4 = models.CharField(max_length=4, blank=True, default="", editable=False)
    is_enabled = models.BooleanField(default=True)
    is_validated = models.BooleanField(default=False)
    last_validated = models.DateTimeField(null=True, blank=True)
    validation_message = models.TextField(blank=True, default="")
    live_confirmed_at = models.DateTimeField(
        null=True, blank=True, help_text="When the user explicitly confirmed live trading (null unless live)."
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["user", "exchange_name"]
        constraints = [models.UniqueConstraint(fields=["user", "exchange_name"], name="exchange_config_user_exchange")]

    def __str__(self) -> str:
        return f"{self.exchange_name} ({self.mode}) of {self.user_id}"

    def encryption_context(self, field_name: str) -> str:
        """Associated data of one encrypted field: a ciphertext only decrypts in its own row and field."""
        return f"exchanges.ExchangeConfig:{self.pk}:{field_name}"

    @property
    def api_key_masked(self) -> str:
        """``****A4B1``: what the UI, API and admin may show of the API key."""
        return f"****{self.api_key_last4}" if self.api_key_last4 else "****"

    @property
    def has_password(self) -> bool:
        return bool(self.password_encrypted)

    def credentials(self) -> Credentials:
        """Decrypt the key pair (raises ``exchanges.crypto.DecryptionError``)."""
        password = None
        if self.password_encrypted:
            password = crypto.decrypt(self.password_encrypted, context=self.encryption_context("password"))
        return Credentials(
            api_key=crypto.decrypt(self.api_key_encrypted, context=self.encryption_context("api_key")),
            api_secret=crypto.decrypt(self.api_secret_encrypted, context=self.encryption_context("api_secret")),
            password=password,
        )

    def set_credentials(self, *, api_key: str, api_secret: str, password: str | None) -> None:
        """Encrypt new credentials into this (unsaved) instance; services save it."""
        self.api_key_encrypted = crypto.encrypt(api_key, context=self.encryption_context("api_key"))
        self.api_secret_encrypted = crypto.encrypt(api_secret, context=self.encryption_context("api_secret"))
        self.password_encrypted = (
            crypto.encrypt(password, context=self.encryption_context("password")) if password else ""
        )
        self.api_key_last4 = api_key[-4:] if len(api_key) > 8 else ""


def _plain(value: Decimal | None) -> Decimal | None:
    """Drop the column's trailing zeros without switching to exponent form (10.000 -> 10, not 1E+1)."""
    if value is None:
        return None
    normalized = value.normalize()
    exponent = normalized.as_tuple().exponent
    return normalized.quantize(Decimal(1)) if isinstance(exponent, int) and exponent > 0 else normalized


class MarketRule(models.Model):
    """The trading rules of one market on one exchange (tick, step, minimums), refreshed from the exchange."""

    exchange_name = models.CharField(max_length=64)
    symbol = models.CharField(max_length=64, help_text="Unified symbol, e.g. BTC/USDT.")
    exchange_symbol = models.CharField(max_length=64, help_text="The exchange's own id, e.g. BTCUSDT.")
    compact_symbol = models.CharField(max_length=64, db_index=True, help_text="BASEQUOTE upper-case, for lookups.")
    base = models.CharField(max_length=32)
    quote = models.CharField(max_length=32)
    tick_size = models.DecimalField(**MONEY)
    step_size = models.DecimalField(**MONEY)
    min_qty = models.DecimalField(**MONEY)
    max_qty = models.DecimalField(**MONEY, null=True, blank=True)
    min_notional = models.DecimalField(**MONEY)
    max_notional = models.DecimalField(**MONEY, null=True, blank=True)
    min_price = models.DecimalField(**MONEY, null=True, blank=True)
    max_price = models.DecimalField(**MONEY, null=True, blank=True)
    status = models.CharField(max_length=32, default="TRADING")
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["exchange_name", "symbol"]
        constraints = [models.UniqueConstraint(fields=["exchange_name", "symbol"], name="market_rule_exchange_symbol")]
        indexes = [models.Index(fields=["exchange_name", "exchange_symbol"])]

    def __str__(self) -> str:
        return f"{self.exchange_name} {self.symbol}"

    def to_rules(self) -> MarketRules:
        """The pure-Python rules that ``exchanges.precision`` works with."""

        return MarketRules(
            symbol=self.symbol,
            exchange_symbol=self.exchange_symbol,
            base=self.base,
            quote=self.quote,
            tick_size=_plain(self.tick_size),  # type: ignore[arg-type]
            step_size=_plain(self.step_size),  # type: ignore[arg-type]
            min_qty=_plain(self.min_qty),  # type: ignore[arg-type]
            max_qty=_plain(self.max_qty),
            min_notional=_plain(self.min_notional),  # type: ignore[arg-type]
            max_notional=_plain(self.max_notional),
            min_price=_plain(self.min_price),
            max_price=_plain(self.max_price),
            status=self.status,
        )


class PaperAccount(models.Model):
    """Balances and orders of one paper-mode config, matched locally by the simulator's engine.

    ``state`` is the engine's account as JSON (balances, orders with fills, id sequences); every
    operation loads it under a row lock, applies the operation, and stores it back, so it survives
    worker restarts and concurrent workers never interleave.
    """

    config = models.OneToOneField(
        ExchangeConfig, on_delete=models.CASCADE, primary_key=True, related_name="paper_account"
    )
    state = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"paper account of {self.config}"


class Candle(models.Model):
    """One closed candle of one market and timeframe (docs/market-data.md#store), unique per key.

    Written only by ``exchanges.candles.services`` (file import, backfill, live sync). A candle that
    fails a data-quality check is kept, ``quarantined``, with the reason: it is reported and never
    traded on (``exchanges.candles.selectors`` leaves it out unless asked).
    """

    id = models.BigAutoField(primary_key=True)
    exchange_name = models.CharField(max_length=64)
    symbol = models.CharField(max_length=64, help_text="Unified symbol, e.g. BTC/USDT.")
    timeframe = models.CharField(max_length=8)
    open_time = models.DateTimeField()
    open = models.DecimalField(**MONEY)
    high = models.DecimalField(**MONEY)
    low = models.DecimalField(**MONEY)
    close = models.DecimalField(**MONEY)
    volume = models.DecimalField(**MONEY)
    quarantined = models.BooleanField(default=False)
    quality_note = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        ordering = ["exchange_name", "symbol", "timeframe", "open_time"]
        constraints = [
            # Its index (exchange, symbol, timeframe, open_time) is the one every range read walks.
            models.UniqueConstraint(fields=["exchange_name", "symbol", "timeframe", "open_time"], name="candle_key")
        ]

    def __str__(self) -> str:
        return f"{self.exchange_name} {self.symbol} {self.timeframe} {self.open_time:%Y-%m-%d %H:%M}"


class CandleIssue(models.Model):
    """A data-quality finding on a candle series (gap, duplicate, quarantined candle, stale feed)."""

    id = models.BigAutoField(primary_key=True)
    exchange_name = models.CharField(max_length=64)
    symbol = models.CharField(max_length=64)
    timeframe = models.CharField(max_length=8)
    kind = models.CharField(max_length=16, help_text="gap, duplicate, ohlc, non_positive, outlier or stale.")
    open_time = models.DateTimeField(null=True, blank=True)
    detail = models.CharField(max_length=300, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["exchange_name", "symbol", "timeframe", "kind"], name="candle_issue_series_kind")
        ]

    def __str__(self) -> str:
        return f"{self.kind} in {self.exchange_name} {self.symbol} {self.timeframe}"


class CandleBackfill(models.Model):
    """A backfill of one series through the exchange adapter: where it has got to (``cursor``), so a
    run stopped by an outage resumes there, and its progress for the API and admin."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    exchange_name = models.CharField(max_length=64)
    symbol = models.CharField(max_length=64)
    timeframe = models.CharField(max_length=8)
    since = models.DateTimeField()
    until = models.DateTimeField()
    cursor = models.DateTimeField(help_text="The open time the next page starts at.")
    fetched = models.PositiveIntegerField(default=0)
    status = models.CharField(max_length=16, default="running", help_text="running, done or failed.")
    error = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"backfill {self.exchange_name} {self.symbol} {self.timeframe} ({self.status})"

    @property
    def progress(self) -> int:
        """0-100: how much of [since, until] is fetched."""
        span = (self.until - self.since).total_seconds()
        if span <= 0 or self.status == "done":
            return 100
        return max(0, min(100, int((self.cursor - self.since).total_seconds() * 100 / span)))
