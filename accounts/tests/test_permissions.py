"""Each role × each protected endpoint: who may call what."""

import pytest

from accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

ROLES = ["viewer", "trader", "manager", "admin"]

# (method, path, body, minimum role)
ENDPOINTS = [
    ("get", "/api/account", None, "viewer"),
    ("post", "/api/account/webhook-secret", None, "viewer"),
    ("get", "/api/logs/system", None, "viewer"),
    ("get", "/api/logs/audit", None, "viewer"),
    ("delete", "/api/logs/system/30", None, "admin"),
    ("post", "/api/logs/export", {"kind": "audit", "format": "json"}, "admin"),
]

RANK = {role: index for index, role in enumerate(ROLES)}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(("method", "path", "body", "minimum"), ENDPOINTS)
def test_permission_matrix(api_client, role, method, path, body, minimum):
    user = UserFactory(role=role)
    api_client.force_authenticate(user)
    response = getattr(api_client, method)(path, body, format="json")
    if RANK[role] >= RANK[minimum]:
        assert response.status_code < 400, (role, path, response.status_code)
    else:
        assert response.status_code == 403, (role, path, response.status_code)
        assert response.json()["error"] == "permission_denied"


@pytest.mark.parametrize(("method", "path", "body", "minimum"), ENDPOINTS)
def test_anonymous_is_refused_everywhere(api_client, method, path, body, minimum):
    response = getattr(api_client, method)(path, body, format="json")
    assert response.status_code == 401
