"""System and audit logs: scrubbing, visibility, filters, retention, export."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.logs import audit, log_info, log_warning, scrub
from accounts.models import AuditLog, SystemLog
from accounts.services import logs_cleanup
from accounts.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

SECRET = "sk_live_9f8e7d6c5b4a39281706f5e4d3c2b1a0ZZ"


def test_scrub_redacts_secret_keys_and_secret_looking_values():
    cleaned = scrub({"api_secret": "abc", "nested": {"password": "x", "ok": 1}, "note": f"key is {SECRET}"})
    assert cleaned["api_secret"] == "[redacted]"
    assert cleaned["nested"] == {"password": "[redacted]", "ok": 1}
    assert SECRET not in cleaned["note"]


def test_stored_logs_never_hold_secrets(trader):
    log_info("SECURITY", f"connected with {SECRET}", user=trader, details={"passphrase": "hunter2", "token": "t"})
    audit(user=trader, action="keys_store", resource="exchange_config", details={"api_key": SECRET})
    dumped = json.dumps(list(SystemLog.objects.values()), default=str) + json.dumps(
        list(AuditLog.objects.values()), default=str
    )
    assert SECRET not in dumped and "hunter2" not in dumped


def test_users_see_only_their_logs_and_managers_see_all(api_client):
    alice, bob, manager = UserFactory(), UserFactory(), UserFactory(role="manager")
    log_info("TRADING", "alice thing", user=alice)
    log_warning("TRADING", "bob thing", user=bob)
    api_client.force_authenticate(alice)
    messages = [row["message"] for row in api_client.get("/api/logs/system").json()]
    assert messages == ["alice thing"]
    api_client.force_authenticate(manager)
    assert len(api_client.get("/api/logs/system").json()) == 2
    filtered = api_client.get("/api/logs/system", {"level": "warning", "category": "trading"}).json()
    assert [row["message"] for row in filtered] == ["bob thing"]
    by_user = api_client.get("/api/logs/system", {"user_id": str(alice.pk)}).json()
    assert [row["message"] for row in by_user] == ["alice thing"]


def test_bad_filters_are_400_with_field(api_client, trader):
    api_client.force_authenticate(trader)
    response = api_client.get("/api/logs/system", {"level": "LOUD", "limit": "0"})
    assert response.status_code == 400
    assert {"level", "limit"} <= set(response.json()["fields"])


def test_retention_keeps_recent_rows():
    old = SystemLog.objects.create(category="SYSTEM", message="old")
    SystemLog.objects.filter(pk=old.pk).update(timestamp=timezone.now() - timedelta(days=31))
    SystemLog.objects.create(category="SYSTEM", message="new")
    old_audit = AuditLog.objects.create(action="x", resource="y")
    AuditLog.objects.filter(pk=old_audit.pk).update(timestamp=timezone.now() - timedelta(days=91))
    AuditLog.objects.create(action="x", resource="recent")
    assert logs_cleanup(system_days=30, audit_days=90) == {"system": 1, "audit": 1}
    assert list(SystemLog.objects.values_list("message", flat=True)) == ["new"]
    assert list(AuditLog.objects.values_list("resource", flat=True)) == ["recent"]


def test_admin_deletes_by_age_and_exports(api_client):
    admin = UserFactory(role="admin")
    api_client.force_authenticate(admin)
    row = SystemLog.objects.create(category="SYSTEM", message="ancient")
    SystemLog.objects.filter(pk=row.pk).update(timestamp=timezone.now() - timedelta(days=10))
    SystemLog.objects.create(category="SYSTEM", message="fresh")
    assert api_client.delete("/api/logs/system/7").json() == {"success": True, "deleted": 1}

    csv_response = api_client.post("/api/logs/export", {"kind": "system", "format": "csv"}, format="json")
    text = b"".join(csv_response.streaming_content).decode()
    assert text.splitlines()[0].startswith("id,timestamp,level,category")
    assert "fresh" in text and "ancient" not in text
    json_response = api_client.post("/api/logs/export", {"kind": "audit", "format": "json"}, format="json")
    rows = json.loads(b"".join(json_response.streaming_content))
    assert any(r["action"] == "logs_delete" for r in rows)
    bad = api_client.post("/api/logs/export", {"kind": "nope", "format": "xml"}, format="json")
    assert bad.status_code == 400 and {"kind", "format"} <= set(bad.json()["fields"])


def test_role_change_is_audited_from_the_admin(client):
    admin = UserFactory(role="admin", is_staff=True, is_superuser=True)
    target = UserFactory(role="trader")
    client.force_login(admin)
    response = client.post("/admin/accounts/user/", {"action": "make_manager", "_selected_action": [str(target.pk)]})
    assert response.status_code == 302
    target.refresh_from_db()
    assert target.role == "manager" and target.is_staff
    entry = AuditLog.objects.get(action="role_change", resource_id=str(target.pk))
    assert entry.user == admin and entry.details == {"from": "trader", "to": "manager"}
