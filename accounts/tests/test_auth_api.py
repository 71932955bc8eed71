"""Every auth flow over HTTP with the bodies of the OpenAPI schema (/api/schema/)."""

import re

import pytest
from django.core import mail

from accounts.models import AuditLog, User, UserSession
from accounts.tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def register(client, **overrides):
    body = {"email": "New@Example.com", "username": "newbie", "password": "Vault9Keeper", **overrides}
    return client.post("/api/auth/register", body, format="json")


def test_register_returns_user_and_tokens_as_trader(api_client):
    response = register(api_client)
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["user"]["email"] == "new@example.com"
    assert body["user"]["role"] == "trader"
    assert body["token"] and body["refresh"]
    # The access token works on a protected endpoint.
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {body['token']}")
    account = api_client.get("/api/account").json()
    assert account["email"] == "new@example.com"
    assert account["webhook_url"].endswith(f"/api/webhook/{account['id']}")
    assert len(account["webhook_secret"]) >= 22  # ≥128 bits of URL-safe base64
    assert AuditLog.objects.filter(action="register", user__email="new@example.com").exists()


@pytest.mark.parametrize(
    ("password", "reason"),
    [("short1A", "at least 8"), ("alllowercase1", "uppercase"), ("NoDigitsHere", "digit")],
)
def test_register_password_policy_names_the_field(api_client, password, reason):
    response = register(api_client, password=password)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid"
    assert any(reason in message for message in body["fields"]["password"])
    assert not User.objects.exists()  # nothing stored from a rejected registration


def test_register_cannot_choose_a_role_or_send_unknown_fields(api_client):
    response = register(api_client, role="admin")
    assert response.status_code == 400
    assert response.json()["fields"]["role"] == ["Unknown field."]
    assert not User.objects.exists()


def test_register_duplicate_email_and_username(api_client):
    UserFactory(email="new@example.com", username="other")
    response = register(api_client)
    assert response.status_code == 400
    assert "email" in response.json()["fields"]
    response = register(api_client, email="x@example.com", username="other")
    assert "username" in response.json()["fields"]


@pytest.mark.parametrize(
    ("body", "content_type", "status"),
    [
        ("{not json", "application/json", 400),
        ('["a list"]', "application/json", 400),
        ('{"email": 5, "username": [], "password": {}}', "application/json", 400),
        ("email=a", "application/xml", 415),
    ],
)
def test_register_bad_bodies_are_4xx_with_contract_body(api_client, body, content_type, status):
    response = api_client.generic("POST", "/api/auth/register", body, content_type=content_type)
    assert response.status_code == status
    assert set(response.json()) == {"error", "detail", "fields"}
    assert not User.objects.exists()


def test_login_logout_refresh_cycle(api_client):
    user = UserFactory(email="t@example.com")
    response = api_client.post("/api/auth/login", {"email": "T@example.com", "password": PASSWORD}, format="json")
    assert response.status_code == 200, response.content
    tokens = response.json()
    assert tokens["user"]["id"] == str(user.pk)
    assert UserSession.objects.filter(user=user, kind="api", ended_at__isnull=True).count() == 1

    refreshed = api_client.post("/api/auth/refresh", {"refresh": tokens["refresh"]}, format="json")
    assert refreshed.status_code == 200 and refreshed.json()["token"]

    out = api_client.post("/api/auth/logout", {"refresh": tokens["refresh"]}, format="json")
    assert out.json() == {"success": True}
    again = api_client.post("/api/auth/refresh", {"refresh": tokens["refresh"]}, format="json")
    assert again.status_code == 401
    assert again.json()["error"] == "token_invalid"
    assert UserSession.objects.get(user=user, kind="api").ended_at is not None
    actions = set(AuditLog.objects.filter(user=user).values_list("action", flat=True))
    assert {"login", "logout"} <= actions


def test_wrong_password_is_401_audited_and_rate_limited(api_client):
    UserFactory(email="t@example.com")
    for _ in range(5):
        response = api_client.post(
            "/api/auth/login", {"email": "t@example.com", "password": "Wrong1234"}, format="json"
        )
        assert response.status_code == 401
        assert response.json()["error"] == "invalid_credentials"
    blocked = api_client.post("/api/auth/login", {"email": "t@example.com", "password": PASSWORD}, format="json")
    assert blocked.status_code == 429
    assert AuditLog.objects.filter(action="login_failed").count() == 5
    # The password never reaches the audit trail.
    assert "Wrong1234" not in str(list(AuditLog.objects.values_list("details", flat=True)))


def test_forgot_and_reset_password_single_use(api_client):
    user = UserFactory(email="t@example.com")
    unknown = api_client.post("/api/auth/forgot-password", {"email": "nobody@example.com"}, format="json")
    assert unknown.json() == {"success": True}
    assert len(mail.outbox) == 0

    assert api_client.post("/api/auth/forgot-password", {"email": "t@example.com"}, format="json").json() == {
        "success": True
    }
    assert len(mail.outbox) == 1
    token = re.search(r"\n([A-Za-z0-9_-]{40,})\n", mail.outbox[0].body).group(1)

    weak = api_client.post("/api/auth/reset-password", {"token": token, "new_password": "weak"}, format="json")
    assert weak.status_code == 400 and "new_password" in weak.json()["fields"]

    ok = api_client.post("/api/auth/reset-password", {"token": token, "new_password": "Brandnew42"}, format="json")
    assert ok.json() == {"success": True}
    user.refresh_from_db()
    assert user.check_password("Brandnew42")
    reused = api_client.post("/api/auth/reset-password", {"token": token, "new_password": "Another42X"}, format="json")
    assert reused.status_code == 400 and "token" in reused.json()["fields"]
    assert AuditLog.objects.filter(user=user, action="password_reset").count() == 1


def test_webhook_secret_regenerates(auth_client):
    before = auth_client.get("/api/account").json()["webhook_secret"]
    after = auth_client.post("/api/account/webhook-secret").json()["webhook_secret"]
    assert before != after
    auth_client.user.refresh_from_db()
    assert auth_client.user.webhook_secret == after


def test_unauthenticated_and_unknown_routes_use_the_error_body(api_client):
    response = api_client.get("/api/account")
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"
    missing = api_client.get("/api/no-such-thing")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    wrong_method = api_client.get("/api/auth/login")
    assert wrong_method.status_code == 405 and wrong_method.json()["error"] == "method_not_allowed"
