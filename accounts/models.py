"""Users, their sessions, and the two logs (system events and the audit trail)."""

from __future__ import annotations

import secrets
import uuid

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.utils import timezone

from .choices import ROLE_RANK, LogCategory, LogLevel, Role


def new_webhook_secret() -> str:
    """256 random bits, URL-safe: well above the 128-bit minimum, pasteable into TradingView."""
    return secrets.token_urlsafe(32)


class UserManager(BaseUserManager["User"]):
    use_in_migrations = True

    def create_user(self, email: str, username: str, password: str | None = None, **extra) -> User:  # type: ignore[no-untyped-def]
        if not email:
            raise ValueError("email is required")
        user = self.model(email=self.normalize_email(email).lower(), username=username, **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, username: str, password: str | None = None, **extra) -> User:  # type: ignore[no-untyped-def]
        extra.setdefault("role", Role.ADMIN)
        extra.setdefault("is_staff", True)
        extra.setdefault("is_superuser", True)
        return self.create_user(email, username, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A person using the engine: logs in by email, trades with a role, receives webhooks by secret."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    email = models.EmailField(unique=True)
    username = models.CharField(max_length=150, unique=True)
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.TRADER)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False, help_text="Can log into the admin (ops console).")
    created_at = models.DateTimeField(default=timezone.now)
    webhook_secret = models.CharField(max_length=64, default=new_webhook_secret)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["username"]

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return self.email

    def has_role(self, role: str) -> bool:
        """True if this user's role is `role` or higher (admin > manager > trader > viewer)."""
        if self.is_superuser:
            return True
        return ROLE_RANK[Role(self.role)] >= ROLE_RANK[Role(role)]

    @property
    def sees_everything(self) -> bool:
        return self.has_role(Role.MANAGER)


class UserSession(models.Model):
    """One login session (web session or API refresh token) with where it came from."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sessions")
    session_key = models.CharField(max_length=255, unique=True)
    kind = models.CharField(max_length=8, choices=[("web", "Web"), ("api", "API")], default="web")
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=512, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.user} {self.kind} session from {self.ip_address or '?'}"


class PasswordResetToken(models.Model):
    """A single-use, expiring API password reset token; only its hash is stored."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="reset_tokens")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"reset token for {self.user} (expires {self.expires_at:%Y-%m-%d %H:%M})"


class SystemLog(models.Model):
    """An operational event: what the engine did or saw, with structured details (secrets scrubbed)."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    timestamp = models.DateTimeField(default=timezone.now, db_index=True)
    level = models.CharField(max_length=8, choices=LogLevel.choices, default=LogLevel.INFO, db_index=True)
    category = models.CharField(max_length=16, choices=LogCategory.choices, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="system_logs"
    )
    message = models.TextField()
    details = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-timestamp"]
        indexes = [models.Index(fields=["category", "-timestamp"]), models.Index(fields=["user", "-timestamp"])]

    def __str__(self) -> str:
        return f"[{self.level}] {self.category}: {self.message[:80]}"


class AuditLog(models.Model):
    """Who did what to which resource, from where. Append-only."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    timestamp = models.DateTimeField(default=timezone.now, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="audit_logs"
    )
    action = models.CharField(max_length=64, db_index=True)
    resource = models.CharField(max_length=64)
    resource_id = models.CharField(max_length=64, blank=True)
    details = models.JSONField(default=dict, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        ordering = ["-timestamp"]
        indexes = [models.Index(fields=["user", "-timestamp"]), models.Index(fields=["resource", "resource_id"])]

    def __str__(self) -> str:
        return f"{self.user or 'system'} {self.action} {self.resource}:{self.resource_id}"
