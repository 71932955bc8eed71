"""Audit every login, logout and failed login, and track web sessions."""

from __future__ import annotations

from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.dispatch import receiver

from .logs import audit, log_warning
from .middleware import client_ip
from .services import session_end, session_start


@receiver(user_logged_in)
def _logged_in(sender, request, user, **kwargs):  # type: ignore[no-untyped-def]
    ip = client_ip(request) if request is not None else None
    if request is not None and getattr(request, "session", None) is not None:
        if not request.session.session_key:
            request.session.save()
        session_start(
            user=user,
            session_key=request.session.session_key,
            kind="web",
            ip=ip,
            user_agent=request.META.get("HTTP_USER_AGENT", ""),
            expires_at=request.session.get_expiry_date(),
        )
    audit(user=user, action="login", resource="user", resource_id=user.pk, details={"via": "web"}, ip=ip)


@receiver(user_logged_out)
def _logged_out(sender, request, user, **kwargs):  # type: ignore[no-untyped-def]
    if user is None:
        return
    if request is not None and getattr(request, "session", None) is not None and request.session.session_key:
        session_end(session_key=request.session.session_key)
    audit(
        user=user,
        action="logout",
        resource="user",
        resource_id=user.pk,
        details={"via": "web"},
        ip=client_ip(request) if request is not None else None,
    )


@receiver(user_login_failed)
def _login_failed(sender, credentials, request=None, **kwargs):  # type: ignore[no-untyped-def]
    identifier = str(credentials.get("email") or credentials.get("username") or "")[:254]
    ip = client_ip(request) if request is not None else None
    audit(user=None, action="login_failed", resource="user", resource_id="", details={"identifier": identifier}, ip=ip)
    log_warning("SECURITY", "Failed login", details={"identifier": identifier}, ip=ip)
