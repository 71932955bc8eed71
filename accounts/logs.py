"""Write system and audit logs; scrub secrets before anything is stored or printed.

Public: `log_debug/log_info/log_warning/log_error/log_critical(category, message, *, user, details, ip)`,
`audit(*, user, action, resource, resource_id, details, ip)`, `scrub(value)`, `SecretScrubFilter`.
"""

from __future__ import annotations

import logging
import re
import uuid
from typing import Any

from django.db import DatabaseError, transaction

from .choices import LogCategory, LogLevel

logger = logging.getLogger("tradingsite")

SECRET_KEY_PATTERN = re.compile(r"(key|secret|password|passwd|token|passphrase|signature|authorization)", re.I)
# Values that look like credentials: long runs of base64/hex-ish characters, JWTs, bearer tokens.
SECRET_VALUE_PATTERNS = [
    re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),  # JWT
    re.compile(r"(?i)bearer\s+[A-Za-z0-9._~+/=-]{16,}"),
    re.compile(r"(?<![A-Za-z0-9])[A-Za-z0-9+_=-]{32,}(?![A-Za-z0-9])"),
]
# Ids are not secrets: UUIDs and 64-hex digests (idempotency keys) stay readable in logs.
_NOT_SECRET = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
REDACTED = "[redacted]"
_SAFE_KEYS = {"client_order_id", "idempotency_key", "key_version", "api_key_masked"}


def _redact(match: re.Match[str]) -> str:
    return match.group(0) if _NOT_SECRET.fullmatch(match.group(0)) else REDACTED


def _scrub_text(text: str) -> str:
    for pattern in SECRET_VALUE_PATTERNS:
        text = pattern.sub(_redact, text)
    return text


def scrub(value: Any, *, key: str | None = None) -> Any:
    """A copy of `value` with secret-named keys and secret-looking strings redacted."""
    if key is not None and key not in _SAFE_KEYS and SECRET_KEY_PATTERN.search(key):
        if value in (None, "", [], {}):
            return value
        return REDACTED
    if isinstance(value, dict):
        return {k: scrub(v, key=str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    if isinstance(value, str):
        return _scrub_text(value)
    if isinstance(value, int | float | bool) or value is None:
        return value
    return _scrub_text(str(value))


class SecretScrubFilter(logging.Filter):
    """Applied to every log handler: the rendered message never carries a secret."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string must not drop the record
            message = str(record.msg)
        record.msg = _scrub_text(message)
        record.args = ()
        return True


def _user_id(user: Any) -> Any:
    """A user, or a user's id (the webhook path knows only the id), as the foreign key value."""
    return user if isinstance(user, uuid.UUID) else getattr(user, "pk", None)


def log_row(level: str, category: str, message: str, *, user=None, details=None, ip=None) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Log `message` (scrubbed) and return the `SystemLog` row to store, by attribute name: for a caller
    that writes its rows itself (the webhook intake writes it with the rest of its statement)."""
    clean_message = _scrub_text(message)
    logger.log(getattr(logging, level), "[%s] %s", category, clean_message)
    return {
        "id": uuid.uuid4(),
        "level": level,
        "category": LogCategory(category),
        "user_id": _user_id(user),
        "message": clean_message,
        "details": scrub(details or {}),
        "ip_address": ip,
    }


def _write(level: str, category: str, message: str, *, user=None, details=None, ip=None) -> None:  # type: ignore[no-untyped-def]
    # Not at the top: the LOGGING setting's SecretScrubFilter imports this module while Django configures
    # logging, before the app registry is ready to import models.
    from .models import SystemLog

    row = log_row(level, category, message, user=user, details=details, ip=ip)
    try:
        # A savepoint: a failing log write must never roll back the caller's transaction.
        with transaction.atomic():
            SystemLog.objects.create(**row)
    except DatabaseError:
        logger.exception("could not store system log")


def log_debug(category: str, message: str, **kw: Any) -> None:
    _write(LogLevel.DEBUG, category, message, **kw)


def log_info(category: str, message: str, **kw: Any) -> None:
    _write(LogLevel.INFO, category, message, **kw)


def log_warning(category: str, message: str, **kw: Any) -> None:
    _write(LogLevel.WARNING, category, message, **kw)


def log_error(category: str, message: str, **kw: Any) -> None:
    _write(LogLevel.ERROR, category, message, **kw)


def log_critical(category: str, message: str, **kw: Any) -> None:
    _write(LogLevel.CRITICAL, category, message, **kw)


def audit(
    *,
    user: Any,
    action: str,
    resource: str,
    resource_id: Any = "",
    details: dict[str, Any] | None = None,
    ip: str | None = None,
) -> None:
    """Record who did what to which resource. Runs inside the caller's transaction on purpose:
    an audited change and its audit row commit or roll back together."""
    from .models import AuditLog  # not at the top: see `_write`

    AuditLog.objects.create(
        user=user if getattr(user, "pk", None) else None,
        action=action,
        resource=resource,
        resource_id=str(resource_id or ""),
        details=scrub(details or {}),
        ip_address=ip,
    )
