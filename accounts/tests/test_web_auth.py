"""The allauth web flows: sign-up as trader, log-in (audited, session tracked), log-out, password reset."""

import pytest
from django.core import mail

from accounts.models import AuditLog, User, UserSession
from accounts.tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def test_signup_creates_trader_and_enforces_policy(client):
    weak = client.post(
        "/accounts/signup/",
        {"email": "w@example.com", "username": "weak", "password1": "weakpass", "password2": "weakpass"},
    )
    assert weak.status_code == 200 and b"uppercase" in weak.content
    assert not User.objects.exists()
    ok = client.post(
        "/accounts/signup/",
        {"email": "s@example.com", "username": "signup", "password1": "Strong123", "password2": "Strong123"},
    )
    assert ok.status_code == 302
    assert User.objects.get(email="s@example.com").role == "trader"


def test_login_page_login_logout(client):
    user = UserFactory(email="web@example.com")
    page = client.get("/accounts/login/")
    assert page.status_code == 200 and b"app.css" in page.content
    response = client.post("/accounts/login/", {"login": "web@example.com", "password": PASSWORD})
    assert response.status_code == 302
    assert client.get("/").status_code == 200
    assert UserSession.objects.filter(user=user, kind="web", ended_at__isnull=True).exists()
    client.post("/accounts/logout/")
    assert UserSession.objects.get(user=user, kind="web").ended_at is not None
    assert {"login", "logout"} <= set(AuditLog.objects.filter(user=user).values_list("action", flat=True))
    assert client.get("/").status_code == 302


def test_failed_web_login_audited(client):
    UserFactory(email="web@example.com")
    client.post("/accounts/login/", {"login": "web@example.com", "password": "Nope12345"})
    assert AuditLog.objects.filter(action="login_failed").exists()


def test_password_reset_email(client):
    UserFactory(email="web@example.com")
    client.post("/accounts/password/reset/", {"email": "web@example.com"})
    assert len(mail.outbox) == 1 and "/accounts/password/reset/key/" in mail.outbox[0].body


def test_totp_mfa_setup_page_and_admin_console(client):
    user = UserFactory(email="mfa@example.com", role="admin", is_staff=True, is_superuser=True)
    client.force_login(user)
    index = client.get("/accounts/2fa/")
    assert index.status_code == 200
    activate = client.get("/accounts/2fa/totp/activate/")
    assert activate.status_code in (200, 302)  # allauth may ask to re-authenticate first
    for path in (
        "/admin/accounts/user/",
        "/admin/accounts/systemlog/",
        "/admin/accounts/auditlog/",
        "/admin/django_celery_beat/periodictask/",
        f"/admin/accounts/user/{user.pk}/change/",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
    page = client.get(f"/admin/accounts/user/{user.pk}/change/").content.decode()
    assert user.webhook_secret not in page and f"****{user.webhook_secret[-4:]}" in page
