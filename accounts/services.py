"""Writes for accounts: registration, roles, webhook secrets, sessions, password resets, log retention."""

from __future__ import annotations

import functools
import hashlib
import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.mail import send_mail
from django.db import transaction
from django.utils import timezone

from .auth import user_tokens_revoke
from .choices import Role
from .logs import audit, log_info
from .models import AuditLog, PasswordResetToken, SystemLog, User, UserSession, new_webhook_secret


def user_register(*, email: str, username: str, password: str, role: str = Role.TRADER, ip: str | None = None) -> User:
    """Create a user; the caller has validated input. Self-registration always yields a trader."""
    validate_password(password)
    with transaction.atomic():
        user = User.objects.create_user(email=email, username=username, password=password, role=role)
        audit(user=user, action="register", resource="user", resource_id=user.pk, details={"role": role}, ip=ip)
    return user


def user_set_role(*, user: User, role: str, actor: User | None, ip: str | None = None) -> User:
    """Change a user's role. Only admins may grant manager/admin (checked by the caller's permission)."""
    role = Role(role)
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        previous = locked.role
        if previous == role:
            return locked
        locked.role = role
        locked.is_staff = role in (Role.MANAGER, Role.ADMIN) or locked.is_superuser
        locked.save(update_fields=["role", "is_staff"])
        # Tokens issued under the old role die with it (accounts.auth).
        transaction.on_commit(functools.partial(user_tokens_revoke, user_id=locked.pk))
        audit(
            user=actor,
            action="role_change",
            resource="user",
            resource_id=locked.pk,
            details={"from": previous, "to": role},
            ip=ip,
        )
    return locked


def webhook_secret_regenerate(*, user: User, ip: str | None = None) -> User:
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        locked.webhook_secret = new_webhook_secret()
        locked.save(update_fields=["webhook_secret"])
        audit(user=locked, action="webhook_secret_regenerate", resource="user", resource_id=locked.pk, ip=ip)
    return locked


def session_start(
    *, user: User, session_key: str, kind: str, ip: str | None, user_agent: str, expires_at: datetime | None
) -> UserSession:
    session, _ = UserSession.objects.update_or_create(
        session_key=session_key,
        defaults={
            "user": user,
            "kind": kind,
            "ip_address": ip,
            "user_agent": (user_agent or "")[:512],
            "expires_at": expires_at,
            "ended_at": None,
        },
    )
    return session


def session_end(*, session_key: str) -> None:
    UserSession.objects.filter(session_key=session_key, ended_at__isnull=True).update(ended_at=timezone.now())


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def password_reset_request(*, email: str, ip: str | None = None) -> None:
    """Email a single-use reset token if the address belongs to an active user; silent otherwise."""
    user = User.objects.filter(email__iexact=email.strip(), is_active=True).first()
    if user is None:
        log_info("SECURITY", "Password reset requested for an unknown address", ip=ip)
        return
    token = secrets.token_urlsafe(32)
    PasswordResetToken.objects.create(
        user=user,
        token_hash=_hash_token(token),
        expires_at=timezone.now() + timedelta(seconds=settings.PASSWORD_RESET_TIMEOUT),
    )
    audit(user=user, action="password_reset_requested", resource="user", resource_id=user.pk, ip=ip)
    send_mail(
        subject="Reset your password",
        message=(
            "Someone asked to reset the password of your trading engine account.\n\n"
            f"Reset token (valid for {settings.PASSWORD_RESET_TIMEOUT // 60} minutes, usable once):\n{token}\n\n"
            "POST it to /api/auth/reset-password with your new password. "
            "If this was not you, ignore this message."
        ),
        from_email=settings.DEFAULT_FROM_EMAIL,
        recipient_list=[user.email],
    )


class ResetTokenInvalidError(Exception):
    """The reset token is unknown, used, or expired."""


def password_reset_confirm(*, token: str, new_password: str, ip: str | None = None) -> User:
    """Set a new password with a reset token; the token is consumed under a row lock."""
    with transaction.atomic():
        row = (
            PasswordResetToken.objects.select_for_update()
            .select_related("user")
            .filter(token_hash=_hash_token(token))
            .first()
        )
        if row is None or row.used_at is not None or row.expires_at <= timezone.now():
            raise ResetTokenInvalidError("The reset token is invalid, already used, or expired.")
        validate_password(new_password, user=row.user)
        row.used_at = timezone.now()
        row.save(update_fields=["used_at"])
        user = row.user
        user.set_password(new_password)
        user.save(update_fields=["password"])
        # Older unused tokens die with this reset.
        PasswordResetToken.objects.filter(user=user, used_at__isnull=True).update(used_at=timezone.now())
        # The password hash in every older token no longer matches; the cut-off says so in the cache
        # as well, for tokens minted without the hash.
        transaction.on_commit(functools.partial(user_tokens_revoke, user_id=user.pk))
        audit(user=user, action="password_reset", resource="user", resource_id=user.pk, ip=ip)
    return user


def logs_cleanup(*, system_days: int | None = None, audit_days: int | None = None) -> dict[str, int]:
    """Delete system logs older than `system_days` and audit logs older than `audit_days`."""
    now = timezone.now()
    system_days = settings.LOG_RETENTION_DAYS["system"] if system_days is None else system_days
    deleted_system, _ = SystemLog.objects.filter(timestamp__lt=now - timedelta(days=system_days)).delete()
    deleted_audit = 0
    if audit_days is not None:
        deleted_audit, _ = AuditLog.objects.filter(timestamp__lt=now - timedelta(days=audit_days)).delete()
    return {"system": deleted_system, "audit": deleted_audit}
