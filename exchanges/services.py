"""Writes for exchanges: credentials, modes, validation, paper accounts, the demo setup.

Also ``adapter_for(config)``, the one way the rest of the engine gets an ``ExchangeAdapter``. Market
rules are stored and refreshed by ``exchanges.rules``.
Every change to a config is atomic and audited; no transaction is held across a network call.
"""

from __future__ import annotations

import json
import logging
import secrets
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError
from django.utils import timezone

from accounts.logs import audit, log_warning, scrub

from . import crypto, rules, selectors
from .adapters import factory
from .adapters.base import ExchangeAdapter
from .adapters.factory import supported_exchange_names
from .adapters.paper import initial_state
from .choices import SIMULATOR, ExchangeMode
from .crypto import DecryptionError
from .exceptions import AuthenticationFailedError, ExchangeError
from .models import ExchangeConfig, PaperAccount

# Market rules are written by their owner, `exchanges.rules`; these names stay here for callers that
# knew them as services (the positions tests, benchmarks, seed_demo).
from .rules import market_rules_refresh as market_rules_refresh
from .rules import market_rules_refresh_all as market_rules_refresh_all
from .rules import market_rules_store as market_rules_store

logger = logging.getLogger(__name__)

MAX_SECRET_LENGTH = 512
DEMO_BALANCES = {"USDT": "10000", "BTC": "1"}


# ------------------------------------------------------------------------------------ exchange names


def exchange_name_normalize(raw: str) -> str:
    """``" Binance "`` → ``binance``; ``ValidationError`` on ``exchange`` for names we cannot trade on."""
    name = (raw or "").strip().lower()
    if name not in supported_exchange_names():
        shown = (raw or "")[:40]
        raise ValidationError(
            {"exchange": [f"Unknown exchange {shown!r}: use a ccxt exchange id such as 'binance', or 'simulator'."]}
        )
    return name


def _check_mode(mode: str, confirm_live: bool) -> ExchangeMode:
    if mode not in ExchangeMode.values:
        raise ValidationError({"mode": [f"{str(mode)[:20]!r} is not a mode: use paper, testnet or live."]})
    if mode == ExchangeMode.LIVE and not confirm_live:
        raise ValidationError(
            {"confirm_live": ["Live mode trades real money: send confirm_live: true to switch it on explicitly."]}
        )
    return ExchangeMode(mode)


def _check_secret(name: str, value: str | None, *, required: bool) -> None:
    if value is None or value == "":
        if required:
            raise ValidationError({name: ["This field may not be blank."]})
        return
    if len(value) > MAX_SECRET_LENGTH:
        raise ValidationError({name: [f"Ensure this field has no more than {MAX_SECRET_LENGTH} characters."]})
    if not value.isascii() or not value.isprintable() or any(char.isspace() for char in value):
        raise ValidationError({name: ["Must be printable ASCII without spaces (as the exchange issued it)."]})


def _details(config: ExchangeConfig, **extra: Any) -> dict[str, Any]:
    return {"exchange": config.exchange_name, "mode": config.mode, "api_key_masked": config.api_key_masked, **extra}


# ----------------------------------------------------------------------------------------- configs


def exchange_config_store(
    *,
    user: Any,
    exchange_name: str,
    mode: str,
    api_key: str,
    api_secret: str,
    password: str | None = None,
    confirm_live: bool = False,
    actor: Any = None,
    ip: str | None = None,
) -> tuple[ExchangeConfig, bool]:
    """Store (create or replace) the user's encrypted key pair for an exchange; returns ``(config, created)``.

    Replacing keys resets the validation result; ``live`` needs ``confirm_live``.
    """
    name = exchange_name_normalize(exchange_name)
    chosen = _check_mode(mode, confirm_live)
    _check_secret("api_key", api_key, required=True)
    _check_secret("api_secret", api_secret, required=True)
    _check_secret("password", password, required=False)
    for attempt in range(2):
        try:
            with transaction.atomic():
                config = ExchangeConfig.objects.select_for_update().filter(user=user, exchange_name=name).first()
                created = config is None
                now = timezone.now()
                if config is None:
                    config = ExchangeConfig(user=user, exchange_name=name, created_at=now)
                config.mode = chosen
                config.set_credentials(api_key=api_key, api_secret=api_secret, password=password or None)
                config.is_validated = False
                config.last_validated = None
                config.validation_message = ""
                config.live_confirmed_at = now if chosen == ExchangeMode.LIVE else None
                config.updated_at = now
                config.save()
                audit(
                    user=actor or user,
                    action="exchange_keys_store" if created else "exchange_keys_replace",
                    resource="exchange_config",
                    resource_id=config.pk,
                    details=_details(config, extra_credential=bool(password)),
                    ip=ip,
                )
            return config, created
        except IntegrityError:
            if attempt:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


def exchange_config_update(
    *,
    config: ExchangeConfig,
    actor: Any,
    mode: str | None = None,
    confirm_live: bool = False,
    is_enabled: bool | None = None,
    api_key: str | None = None,
    api_secret: str | None = None,
    password: str | None = None,
    ip: str | None = None,
) -> ExchangeConfig:
    """Change what is given and keep the rest (the admin form: blank secrets keep the stored ones)."""
    if mode is not None and mode != config.mode:
        _check_mode(mode, confirm_live)
    _check_secret("api_key", api_key, required=False)
    _check_secret("api_secret", api_secret, required=False)
    _check_secret("password", password, required=False)
    with transaction.atomic():
        locked = ExchangeConfig.objects.select_for_update().get(pk=config.pk)
        changed: list[str] = []
        if mode is not None and mode != locked.mode:
            changed.append("mode")
            locked.mode = mode
            locked.live_confirmed_at = timezone.now() if mode == ExchangeMode.LIVE else None
        if is_enabled is not None and is_enabled != locked.is_enabled:
            changed.append("is_enabled")
            locked.is_enabled = is_enabled
        if api_key or api_secret or password:
            current = locked.credentials()
            locked.set_credentials(
                api_key=api_key or current.api_key,
                api_secret=api_secret or current.api_secret,
                password=password or current.password,
            )
            changed.append("credentials")
        if not changed:
            return locked
        if "mode" in changed or "credentials" in changed:
            locked.is_validated = False
            locked.validation_message = "Changed; validate again."
        locked.updated_at = timezone.now()
        locked.save()
        audit(
            user=actor,
            action="exchange_config_update",
            resource="exchange_config",
            resource_id=locked.pk,
            details=_details(locked, changed=changed, is_enabled=locked.is_enabled),
            ip=ip,
        )
    return locked


def exchange_config_set_mode(
    *, config: ExchangeConfig, mode: str, confirm_live: bool = False, actor: Any, ip: str | None = None
) -> ExchangeConfig:
    """Switch paper / testnet / live (``live`` needs ``confirm_live``); the validation result is reset."""
    chosen = _check_mode(mode, confirm_live)
    with transaction.atomic():
        locked = ExchangeConfig.objects.select_for_update().get(pk=config.pk)
        previous = locked.mode
        if previous == chosen:
            if chosen == ExchangeMode.LIVE and locked.live_confirmed_at is None:
                locked.live_confirmed_at = timezone.now()
                locked.save(update_fields=["live_confirmed_at"])
            return locked
        locked.mode = chosen
        locked.live_confirmed_at = timezone.now() if chosen == ExchangeMode.LIVE else None
        locked.is_validated = False
        locked.validation_message = f"Mode changed from {previous} to {chosen}; validate again."
        locked.updated_at = timezone.now()
        locked.save(update_fields=["mode", "live_confirmed_at", "is_validated", "validation_message", "updated_at"])
        audit(
            user=actor,
            action="exchange_mode_change",
            resource="exchange_config",
            resource_id=locked.pk,
            details=_details(locked, previous_mode=previous),
            ip=ip,
        )
    return locked


def exchange_config_set_enabled(
    *, config: ExchangeConfig, enabled: bool, actor: Any, ip: str | None = None
) -> ExchangeConfig:
    """Enable or disable a config (disabled configs are ignored by signals and periodic tasks)."""
    return exchange_config_update(config=config, actor=actor, is_enabled=enabled, ip=ip)


class ExchangeConfigInUseError(Exception):
    """The config still has trading history (groups, orders) that refers to it."""


def exchange_config_delete(*, config: ExchangeConfig, actor: Any, ip: str | None = None) -> None:
    """Remove a config and its encrypted keys (and its paper account).

    Raises ``ExchangeConfigInUseError`` (nothing deleted) while position groups or orders refer to it:
    disable it instead, or close them first.
    """
    try:
        with transaction.atomic():
            locked = ExchangeConfig.objects.select_for_update().get(pk=config.pk)
            audit(
                user=actor,
                action="exchange_keys_delete",
                resource="exchange_config",
                resource_id=locked.pk,
                details=_details(locked),
                ip=ip,
            )
            locked.delete()
    except ProtectedError:
        raise ExchangeConfigInUseError(
            f"The {config.exchange_name} config has position groups or orders that refer to it; "
            "disable it instead (or close them first)."
        ) from None


def exchange_config_validate(*, config: ExchangeConfig, actor: Any = None, ip: str | None = None) -> ExchangeConfig:
    """Make an authenticated call with the stored keys and store the outcome.

    A refused key pair sets ``is_validated`` false with the reason; nothing else about the config
    changes. API and admin calls (``actor`` given) are always audited; periodic ones when the outcome
    flips.
    """
    fingerprint = (config.api_key_encrypted, config.api_secret_encrypted, config.password_encrypted, config.mode)
    adapter: ExchangeAdapter | None = None
    try:
        adapter = adapter_for(config)
        ok, message = adapter.validate()
    except ExchangeError as exc:
        ok, message = False, str(exc)
    finally:
        if adapter is not None:
            adapter.close()
    message = str(scrub(message))[:1000]
    with transaction.atomic():
        locked = ExchangeConfig.objects.select_for_update().get(pk=config.pk)
        current = (locked.api_key_encrypted, locked.api_secret_encrypted, locked.password_encrypted, locked.mode)
        if current != fingerprint:
            return locked  # keys or mode changed while we were checking: this result is about old ones
        flipped = locked.is_validated != ok
        locked.is_validated = ok
        locked.last_validated = timezone.now()
        locked.validation_message = message
        locked.save(update_fields=["is_validated", "last_validated", "validation_message"])
        if actor is not None or flipped:
            audit(
                user=actor,
                action="exchange_keys_validate",
                resource="exchange_config",
                resource_id=locked.pk,
                details=_details(locked, is_validated=ok, message=message),
                ip=ip,
            )
    if not ok and flipped:
        log_warning(
            "SECURITY",
            f"{locked.exchange_name} keys of {locked.user_id} failed validation: {message}",
            user=locked.user,
            details={"exchange": locked.exchange_name, "mode": locked.mode},
        )
    return locked


def exchange_configs_validate_all() -> dict[str, int]:
    """Validate every enabled config (the ``exchanges.validate_all`` task)."""
    counts = {"validated": 0, "failed": 0}
    for config in selectors.exchange_configs_enabled():
        result = exchange_config_validate(config=config)
        counts["validated" if result.is_validated else "failed"] += 1
    return counts


# ----------------------------------------------------------------------------------------- adapters


def public_adapter(exchange_name: str) -> ExchangeAdapter:
    """Market data and market rules of an exchange, without credentials."""
    return factory.public_adapter(exchange_name, rules=rules.STORE)


def adapter_for(config: ExchangeConfig) -> ExchangeAdapter:
    """The adapter of a config: paper → local fills on real (or simulator) prices; ``simulator`` → ccxt's
    binance client pointed at ``SIMULATOR_URL``; testnet → the exchange's sandbox; live → the exchange.
    Its market rules come from ``exchanges.rules`` (``STORE``)."""
    try:
        credentials = config.credentials()
    except DecryptionError as exc:
        raise AuthenticationFailedError(
            f"The stored {config.exchange_name} keys cannot be decrypted ({exc}); store them again.",
            exchange=config.exchange_name,
        ) from None
    credentialed = factory.ccxt_adapter(
        exchange_name=config.exchange_name,
        credentials=credentials,
        sandbox=config.mode == ExchangeMode.TESTNET,
        circuit_name=f"config:{config.pk}",
        account_label=str(config.pk),
        rules=rules.STORE,
    )
    if config.mode == ExchangeMode.PAPER:
        return factory.paper_adapter(
            config_id=config.pk, exchange_name=config.exchange_name, key_checker=credentialed, rules=rules.STORE
        )
    return credentialed


# ------------------------------------------------------------------------------------ paper accounts


def paper_account_reset(
    *, config: ExchangeConfig, balances: dict[str, str] | None = None, actor: Any, ip: str | None = None
) -> PaperAccount:
    """Start a paper account over: given (or default) balances, no orders."""
    with transaction.atomic():
        account, _ = PaperAccount.objects.select_for_update().get_or_create(config=config)
        account.state = initial_state(balances)
        account.updated_at = timezone.now()
        account.save()
        audit(
            user=actor,
            action="paper_account_reset",
            resource="exchange_config",
            resource_id=config.pk,
            details={"exchange": config.exchange_name, "balances": balances or {}},
            ip=ip,
        )
    return account


# ------------------------------------------------------------------------------------------- demo


def simulator_account_register(*, api_key: str, api_secret: str, balances: dict[str, str]) -> bool:
    """Create the account on the running simulator unless it already knows the key; False if unreachable."""
    base = str(settings.SIMULATOR_URL).rstrip("/")
    try:
        query = urllib.parse.urlencode({"api_key": api_key})
        with urllib.request.urlopen(f"{base}/_sim/balances?{query}", timeout=3):
            return True  # known already: keep its balances and orders
    except urllib.error.HTTPError:
        pass  # unknown key: create it below
    except (urllib.error.URLError, OSError) as exc:
        log_warning("SYSTEM", f"simulator not reachable at {base} ({exc}); demo account not registered")
        return False
    body = json.dumps({"api_key": api_key, "api_secret": api_secret, "balances": balances}).encode()
    request = urllib.request.Request(
        f"{base}/_sim/accounts", data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=3):
            return True
    except (urllib.error.URLError, OSError) as exc:
        log_warning("SYSTEM", f"simulator at {base} refused the demo account ({exc})")
        return False


def demo_setup(*, user: Any) -> ExchangeConfig:
    """The demo trader's ``simulator`` config (testnet mode, generated keys), registered with the simulator.

    Idempotent: an existing config keeps its keys and is only registered again (the simulator keeps
    accounts in memory, so call this after every simulator start). Registration happens after commit;
    an unreachable simulator is a warning, not an error.
    """
    config = selectors.exchange_config_get(user=user, exchange_name=SIMULATOR)
    if config is None:
        api_key = "demo" + secrets.token_hex(16)
        api_secret = secrets.token_hex(32)
        config, _ = exchange_config_store(
            user=user, exchange_name=SIMULATOR, mode=ExchangeMode.TESTNET, api_key=api_key, api_secret=api_secret
        )
    else:
        credentials = config.credentials()
        api_key, api_secret = credentials.api_key, credentials.api_secret
    transaction.on_commit(
        lambda: simulator_account_register(api_key=api_key, api_secret=api_secret, balances=dict(DEMO_BALANCES))
    )
    return config


# ---------------------------------------------------------------------------------- key rotation

ENCRYPTED_FIELDS = (
    ("api_key_encrypted", "api_key"),
    ("api_secret_encrypted", "api_secret"),
    ("password_encrypted", "password"),
)


def encryption_key_rotate() -> dict[str, Any]:
    """Re-encrypt every stored secret with the first ENCRYPTION_KEYS entry, all in one transaction.

    Any value that cannot be decrypted aborts the whole rotation (``DecryptionError``) and changes nothing.
    """
    key_id = crypto.primary_key_id()
    secrets_done = configs_done = from_old = 0
    with transaction.atomic():
        for config in ExchangeConfig.objects.select_for_update().order_by("pk"):
            changed: list[str] = []
            for column, context_name in ENCRYPTED_FIELDS:
                ciphertext = getattr(config, column)
                if not ciphertext:
                    continue
                context = config.encryption_context(context_name)
                try:
                    plain = crypto.decrypt(ciphertext, context=context)
                except crypto.DecryptionError as exc:
                    raise crypto.DecryptionError(f"config {config.pk} {context_name}: {exc}") from None
                if crypto.needs_rotation(ciphertext):
                    from_old += 1
                setattr(config, column, crypto.encrypt(plain, context=context))
                changed.append(column)
                secrets_done += 1
            if changed:
                config.save(update_fields=changed)
                configs_done += 1
        audit(
            user=None,
            action="encryption_key_rotate",
            resource="exchange_config",
            details={"key_version": key_id, "secrets": secrets_done, "from_old_keys": from_old},
        )
    return {"key_id": key_id, "secrets": secrets_done, "configs": configs_done, "from_old_keys": from_old}
