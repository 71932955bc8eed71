"""Tokens that die with logout, reset, role change and deactivation; throttles keyed on the real client; a
lockout a stranger cannot extend; JWT errors as sentences (docs/security.md#tokens)."""

from __future__ import annotations

import re

import pytest
from django.core import mail

from accounts.services import user_set_role
from accounts.tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


def _login(client, email="t@example.com", password=PASSWORD, **extra):
    return client.post("/api/auth/login", {"email": email, "password": password}, format="json", **extra)


def _account(client, token):
    return client.get("/api/account", HTTP_AUTHORIZATION=f"Bearer {token}")


def test_logout_revokes_the_access_token_of_the_session(api_client):
    UserFactory(email="t@example.com")
    first, second = _login(api_client).json(), _login(api_client).json()
    assert _account(api_client, first["token"]).status_code == 200
    out = api_client.post(
        "/api/auth/logout", {"refresh": first["refresh"]}, format="json", HTTP_AUTHORIZATION=f"Bearer {first['token']}"
    )
    assert out.status_code == 200
    refused = _account(api_client, first["token"])
    assert refused.status_code == 401
    assert refused.json()["detail"] == "This token was revoked by a logout; log in again."
    # An access token minted from the logged-out refresh token before the logout dies too...
    assert api_client.post("/api/auth/refresh", {"refresh": first["refresh"]}, format="json").status_code == 401
    # ...and the user's other session is untouched.
    assert _account(api_client, second["token"]).status_code == 200


def test_minted_access_tokens_die_with_their_session(api_client):
    UserFactory(email="t@example.com")
    tokens = _login(api_client).json()
    minted = api_client.post("/api/auth/refresh", {"refresh": tokens["refresh"]}, format="json").json()["token"]
    assert _account(api_client, minted).status_code == 200
    api_client.post("/api/auth/logout", {"refresh": tokens["refresh"]}, format="json")  # no bearer header
    assert _account(api_client, minted).status_code == 401


def test_a_password_reset_kills_older_refresh_and_access_tokens(api_client):
    UserFactory(email="t@example.com")
    old = _login(api_client).json()
    api_client.post("/api/auth/forgot-password", {"email": "t@example.com"}, format="json")
    token = re.search(r"\n([A-Za-z0-9_-]{40,})\n", mail.outbox[0].body).group(1)
    reset = api_client.post("/api/auth/reset-password", {"token": token, "new_password": "Brandnew42"}, format="json")
    assert reset.status_code == 200
    refreshed = api_client.post("/api/auth/refresh", {"refresh": old["refresh"]}, format="json")
    assert refreshed.status_code == 401
    assert "log in again" in refreshed.json()["detail"]
    assert _account(api_client, old["token"]).status_code == 401
    fresh = _login(api_client, password="Brandnew42").json()
    assert _account(api_client, fresh["token"]).status_code == 200


def test_a_role_change_kills_older_tokens_and_a_new_login_works_at_once(api_client, django_capture_on_commit_callbacks):
    user = UserFactory(email="t@example.com")
    old = _login(api_client).json()
    with django_capture_on_commit_callbacks(execute=True):
        user_set_role(user=user, role="viewer", actor=None)
    assert _account(api_client, old["token"]).status_code == 401
    assert api_client.post("/api/auth/refresh", {"refresh": old["refresh"]}, format="json").status_code == 401
    new = _login(api_client).json()
    assert _account(api_client, new["token"]).status_code == 200


def test_a_deactivated_users_tokens_are_refused(api_client):
    user = UserFactory(email="t@example.com")
    old = _login(api_client).json()
    user.is_active = False
    user.save(update_fields=["is_active"])
    assert _account(api_client, old["token"]).status_code == 401
    assert api_client.post("/api/auth/refresh", {"refresh": old["refresh"]}, format="json").status_code == 401


@pytest.mark.parametrize("header", ["Bearer not-a-jwt", "Bearer a.b.c", "Bearer " + "x" * 5000])
def test_jwt_errors_answer_a_sentence(api_client, header):
    response = api_client.get("/api/account", HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "{" not in detail and "ErrorDetail" not in detail


def test_forged_forwarded_for_headers_are_still_throttled(api_client, settings):
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"auth": "5/min"}}
    # A different unknown account each time: only the throttle, not the account lockout, can say 429.
    statuses = [
        _login(
            api_client,
            email=f"nobody{index}@example.com",
            password="Wrong1234",
            HTTP_X_FORWARDED_FOR=f"203.0.113.{index}",
        ).status_code
        for index in range(8)
    ]
    assert statuses[:5] == [401] * 5
    assert statuses[5:] == [429] * 3


def test_a_trusted_proxy_forwards_the_client_it_vouches_for(api_client, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"auth": "2/min"}}
    for client in ("198.51.100.1", "198.51.100.2"):
        statuses = [_login(api_client, password="Wrong1234", HTTP_X_FORWARDED_FOR=client).status_code for _ in range(3)]
        assert statuses == [401, 401, 429]  # each client its own budget, keyed on the proxy's word


def test_a_stranger_cannot_lock_the_owner_out(api_client):
    UserFactory(email="t@example.com")
    for _ in range(6):
        _login(api_client, password="Wrong1234", REMOTE_ADDR="192.0.2.66")
    assert _login(api_client, password=PASSWORD, REMOTE_ADDR="192.0.2.66").status_code == 429
    assert _login(api_client, REMOTE_ADDR="192.0.2.10").status_code == 200


def test_log_deletion_bounds_days_old(api_client):
    admin = UserFactory(role="admin")
    api_client.force_authenticate(admin)
    response = api_client.delete("/api/logs/system/99999999999999999999")
    assert response.status_code == 400
    assert "days_old" in response.json()["fields"]
    assert api_client.delete("/api/logs/system/30").status_code == 200
