"""The webhook contract (docs/webhook.md): every status code, classification, idempotency, nothing else changed."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from positions.models import PositionGroup, Pyramid, QueuedSignal, WebhookSignal
from positions.tests.conftest import HISTORIC, alert, lag_off, post

pytestmark = pytest.mark.django_db(transaction=True)


def test_new_entry_is_accepted_and_creates_a_waiting_group(client, trader, sim_config):
    response = post(client, trader, alert(trader.webhook_secret))
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["classification"] == "new_entry"
    assert body["status"] == "accepted"
    assert body["message"] == "Position group created and pending execution"
    group = PositionGroup.objects.get(pk=body["group_id"])
    assert (group.symbol, group.timeframe, group.side, group.status) == ("BTC/USDT", "1h", "long", "waiting")
    pyramid = Pyramid.objects.get(group=group)
    assert pyramid.index == 0 and str(pyramid.entry_price) == "65000.000000000000000000"
    signal = WebhookSignal.objects.get(pk=body["signal_id"])
    assert signal.body["secret"] == "[redacted]"
    assert trader.webhook_secret not in json.dumps(signal.body)


def test_text_plain_is_accepted(client, trader, sim_config):
    response = post(client, trader, json.dumps(alert(trader.webhook_secret)), content_type="text/plain; charset=utf-8")
    assert response.status_code == 202


@pytest.mark.parametrize(
    ("mutate", "status", "error", "field"),
    [
        (lambda b: b.pop("secret"), 401, "secret_missing", "secret"),
        (lambda b: b.update(secret="wrong"), 403, "secret_invalid", "secret"),
        (lambda b: b["tv"].pop("symbol"), 400, "invalid", "tv.symbol"),
        (lambda b: b["tv"].update(exchange="kraken"), 400, "unknown_exchange", "tv.exchange"),
        (lambda b: b["tv"].update(symbol="NOPEUSDT"), 400, "unknown_symbol", "tv.symbol"),
        (lambda b: b["tv"].update(timeframe="7"), 400, "invalid", "tv.timeframe"),
        (
            lambda b: b["tv"].update(entry_price="{{strategy.order.price}}"),
            400,
            "unrendered_placeholder",
            "tv.entry_price",
        ),
        (lambda b: b["tv"].update(entry_price="-5"), 400, "invalid", "tv.entry_price"),
        (lambda b: b["tv"].update(entry_price="0"), 400, "invalid", "tv.entry_price"),
        (lambda b: b["tv"].update(entry_price=[1]), 400, "invalid", "tv.entry_price"),
        (lambda b: b["tv"].update(order_size="abc"), 400, "invalid", "tv.order_size"),
        (lambda b: b["execution_intent"].update(side="sell"), 400, "invalid", "execution_intent.side"),
        (lambda b: b["execution_intent"].update(type="reduce"), 400, "invalid", "execution_intent.type"),
        (lambda b: b["execution_intent"].update(type="reverse"), 400, "invalid", "execution_intent.type"),
        (lambda b: b.pop("execution_intent"), 400, "invalid", "execution_intent"),
        (lambda b: b.update(tv="BTCUSDT"), 400, "invalid", "tv"),
    ],
)
def test_bad_bodies_name_the_field_and_store_the_request(client, trader, sim_config, mutate, status, error, field):
    body = alert(trader.webhook_secret)
    mutate(body)
    response = post(client, trader, body)
    assert response.status_code == status, response.content
    payload = response.json()
    assert payload["error"] == error
    if status == 400:
        assert field in payload["fields"], payload
    assert not PositionGroup.objects.exists()
    stored = WebhookSignal.objects.get()
    assert stored.status == "rejected" and stored.http_status == status
    assert trader.webhook_secret not in json.dumps(stored.body or {}) + stored.raw_excerpt


def test_unknown_user_wrong_type_and_oversized(client, trader, sim_config):
    assert client.post("/api/webhook/not-a-uuid", "{}", content_type="application/json").status_code == 404
    assert (
        client.post(
            "/api/webhook/00000000-0000-0000-0000-000000000000", "{}", content_type="application/json"
        ).status_code
        == 404
    )
    assert post(client, trader, "a=b", content_type="application/x-www-form-urlencoded").status_code == 415
    big = alert(trader.webhook_secret, padding="x" * 70_000)
    response = post(client, trader, big)
    assert response.status_code == 413 and response.json()["error"] == "payload_too_large"
    assert WebhookSignal.objects.filter(status="rejected").count() == 4
    assert client.get(f"/api/webhook/{trader.pk}").status_code == 405


@pytest.mark.parametrize("raw", ["{not json", '{"secret": "x",}', "[]", " ", b"\xff\xfe"])
def test_malformed_json_is_400(client, trader, sim_config, raw):
    response = post(client, trader, raw)
    assert response.status_code == 400
    assert response.json()["error"] in {"malformed_json", "invalid"}
    assert "body" in response.json()["fields"]


def test_every_real_third_party_body_gets_a_clear_4xx(client, trader, sim_config, shared_data):
    for path in sorted((shared_data / "webhooks").iterdir()):
        raw = path.read_bytes()
        for content_type in ("application/json", "text/plain"):
            response = post(client, trader, raw, content_type=content_type)
            assert 400 <= response.status_code < 500, (path.name, response.status_code, response.content)
            body = response.json()
            assert body["detail"] and body["error"], path.name
    assert not PositionGroup.objects.exists()


def test_duplicate_same_trade_id_timestamp_action(client, trader, sim_config):
    first = post(client, trader, alert(trader.webhook_secret))
    again = post(client, trader, alert(trader.webhook_secret))
    assert first.status_code == 202
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert PositionGroup.objects.count() == 1
    assert WebhookSignal.objects.filter(status="duplicate").count() == 1


def test_the_intake_statements_are_prepared_once_and_reused(trader, sim_config):
    """Parsing and planning the intake's statements cost several times more than running them: each is
    prepared once per connection (Django's connections prepare nothing unless asked)."""
    from django.db import connection

    from positions.services.intake import signal_receive

    for index in range(3):
        body = json.dumps(alert(trader.webhook_secret, strategy_info={"trade_id": f"T-{index}"})).encode()
        result = signal_receive(user_id=str(trader.pk), raw=body, content_type="application/json", ip="127.0.0.1")
        assert result.status in (200, 202), result.body
    with connection.cursor() as cur:
        cur.execute("SELECT statement, generic_plans + custom_plans FROM pg_prepared_statements")
        prepared = dict(cur.fetchall())
    read = [runs for statement, runs in prepared.items() if statement.startswith("SELECT u.webhook_secret")]
    assert read == [3], prepared
    # Only the first alert, which opens the group, locked the user to read the pool.
    lock = [runs for statement, runs in prepared.items() if "FOR NO KEY UPDATE" in statement]
    assert lock == [1], prepared
    # Django's own statements are left unprepared.
    assert not any("django_session" in statement for statement in prepared)


def test_pyramid_then_same_candle_duplicate_then_max(client, trader, sim_config):
    from positions.services.configs import config_set

    config_set(user=trader, data={"max_pyramids": 2}, partial=True)
    lag_off(trader)  # alerts in given candles of a historic day
    post(client, trader, alert(trader.webhook_secret, timestamp=HISTORIC))
    second = post(
        client,
        trader,
        alert(trader.webhook_secret, strategy_info={"trade_id": "T-2"}, timestamp="2026-11-20T10:30:00Z"),
    )
    assert second.status_code == 200 and second.json()["status"] == "duplicate"
    assert "candle" in second.json()["reason"]
    pyramid = post(
        client,
        trader,
        alert(
            trader.webhook_secret,
            strategy_info={"trade_id": "T-3"},
            timestamp="2026-11-20T11:00:01Z",
            tv={"entry_price": "64000"},
        ),
    )
    assert pyramid.status_code == 202 and pyramid.json()["classification"] == "pyramid"
    group = PositionGroup.objects.get()
    assert group.pyramid_count == 2
    assert str(Pyramid.objects.get(group=group, index=1).entry_price).startswith("64000")
    extra = post(
        client,
        trader,
        alert(trader.webhook_secret, strategy_info={"trade_id": "T-4"}, timestamp="2026-11-20T12:00:01Z"),
    )
    assert extra.status_code == 200 and extra.json()["status"] == "ignored"
    assert "max pyramids" in extra.json()["reason"]


def test_pool_full_queues_replaces_and_exit_removes(client, trader, sim_config):
    from positions.services.configs import config_set

    config_set(user=trader, data={"max_open_groups": 1}, partial=True)
    post(client, trader, alert(trader.webhook_secret))
    queued = post(
        client,
        trader,
        alert(
            trader.webhook_secret, tv={"symbol": "ETHUSDT", "entry_price": "3000"}, strategy_info={"trade_id": "E-1"}
        ),
    )
    assert queued.status_code == 202 and queued.json()["classification"] == "queued"
    replaced = post(
        client,
        trader,
        alert(
            trader.webhook_secret, tv={"symbol": "ETHUSDT", "entry_price": "2900"}, strategy_info={"trade_id": "E-2"}
        ),
    )
    assert replaced.json()["classification"] == "queued"
    entry = QueuedSignal.objects.get()
    assert entry.replacement_count == 1 and str(entry.entry_price).startswith("2900")
    exit_body = alert(
        trader.webhook_secret,
        tv={"symbol": "ETHUSDT", "action": "sell"},
        strategy_info={"trade_id": "E-3"},
        execution_intent={"type": "exit", "side": "sell"},
    )
    dropped = post(client, trader, exit_body)
    assert dropped.status_code == 202 and dropped.json()["classification"] == "exit"
    assert not QueuedSignal.objects.exists()
    assert PositionGroup.objects.count() == 1


def test_a_full_waiting_queue_ignores_new_identities_but_still_takes_replacements(client, trader, sim_config):
    from positions.services.configs import config_set

    config_set(user=trader, data={"max_open_groups": 1, "queue_max_size": 1}, partial=True)
    assert post(client, trader, alert(trader.webhook_secret)).json()["classification"] == "new_entry"

    def entry(symbol: str, price: str, trade_id: str):
        body = alert(
            trader.webhook_secret, tv={"symbol": symbol, "entry_price": price}, strategy_info={"trade_id": trade_id}
        )
        return post(client, trader, body)

    assert entry("ETHUSDT", "3000", "Q-1").json()["classification"] == "queued"
    full = entry("SOLUSDT", "150", "Q-2")
    assert full.status_code == 200 and full.json()["status"] == "ignored"
    assert full.json()["reason"] == "the waiting queue is full (1)"
    replaced = entry("ETHUSDT", "2950", "Q-3")
    assert replaced.status_code == 202 and replaced.json()["classification"] == "queued"
    queued = QueuedSignal.objects.get()
    assert queued.symbol == "ETH/USDT" and queued.replacement_count == 1 and queued.entry_price == Decimal("2950")
    stored = WebhookSignal.objects.get(pk=full.json()["signal_id"])
    assert (stored.classification, stored.status, stored.http_status) == ("queued", "ignored", 200)


def test_exit_without_position_is_ignored(client, trader, sim_config):
    body = alert(trader.webhook_secret, execution_intent={"type": "exit", "side": "sell"}, tv={"action": "sell"})
    response = post(client, trader, body)
    assert response.status_code == 200 and response.json()["status"] == "ignored"


def test_rate_limit_per_user(client, trader, sim_config, settings):
    settings.WEBHOOK_RATE_LIMIT_PER_MINUTE = 3
    codes = [
        post(
            client,
            trader,
            alert(trader.webhook_secret, strategy_info={"trade_id": f"R{i}"}, timestamp=f"2026-11-20T1{i}:00:00Z"),
        ).status_code
        for i in range(5)
    ]
    assert codes[:3] != [429] * 3 and codes[3:] == [429, 429]


def test_allowlist_with_trusted_proxy(client, trader, sim_config, settings):
    settings.WEBHOOK_ALLOWED_IPS = ["52.89.214.238"]
    settings.TRUSTED_PROXY_COUNT = 1
    refused = client.post(
        f"/api/webhook/{trader.pk}",
        json.dumps(alert(trader.webhook_secret)),
        content_type="application/json",
        HTTP_X_FORWARDED_FOR="1.2.3.4",
    )
    assert refused.status_code == 403
    allowed = client.post(
        f"/api/webhook/{trader.pk}",
        json.dumps(alert(trader.webhook_secret)),
        content_type="application/json",
        HTTP_X_FORWARDED_FOR="52.89.214.238",
    )
    assert allowed.status_code == 202


@pytest.mark.django_db(transaction=True)
def test_storm_of_50_identical_webhooks_makes_one_signal_and_one_group(live_server, trader, sim_config):
    import concurrent.futures

    import httpx

    body = json.dumps(alert(trader.webhook_secret))
    url = f"{live_server.url}/api/webhook/{trader.pk}"

    def send(_: int) -> int:
        return httpx.post(url, content=body, headers={"Content-Type": "application/json"}, timeout=30).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=25) as pool:
        codes = list(pool.map(send, range(50)))
    assert sorted(set(codes)) == [200, 202], codes
    assert codes.count(202) == 1
    assert WebhookSignal.objects.filter(status="accepted").count() == 1
    assert WebhookSignal.objects.filter(status="duplicate").count() == 49
    assert PositionGroup.objects.count() == 1


def test_shared_webhook_files_exist_for_the_robustness_test(shared_data):
    assert any(Path(shared_data / "webhooks").iterdir())


def test_the_intake_writes_its_log_rows_and_returns_its_events_with_the_outcome(trader, sim_config):
    """The refused-secret warning and the skipped-pyramid note are written by the intake's own statement,
    and the live events come back with the answer: a copy's events and rows are rolled back with it."""
    from accounts.models import SystemLog
    from core import sql
    from positions.services.configs import config_set
    from positions.services.intake import alert_read, intake_steps

    def receive(body: dict) -> tuple[int, dict, list[str]]:
        read = alert_read(
            user_id=str(trader.pk), raw=json.dumps(body).encode(), content_type="application/json", ip="10.0.0.9"
        )
        result, events = sql.run(intake_steps(read))
        return result.status, result.body, [event["type"] for _, event in events]

    config_set(user=trader, data={"max_open_groups": 1}, partial=True)
    lag_off(trader)  # two alerts in one historic candle
    refused = receive(alert("wrong-secret"))
    opened = receive(alert(trader.webhook_secret, timestamp=HISTORIC))
    same_candle = receive(
        alert(trader.webhook_secret, strategy_info={"trade_id": "T-2"}, timestamp="2026-11-20T10:30:00Z")
    )
    queued = receive(alert(trader.webhook_secret, tv={"symbol": "ETHUSDT"}, strategy_info={"trade_id": "Q-1"}))
    copy = receive(alert(trader.webhook_secret, tv={"symbol": "ETHUSDT"}, strategy_info={"trade_id": "Q-1"}))

    assert refused[0] == 403 and refused[2] == []
    assert opened[0] == 202 and opened[2] == ["group.updated", "signal.received"]
    assert same_candle[1]["status"] == "duplicate" and same_candle[2] == ["signal.received"]
    assert queued[1]["classification"] == "queued" and queued[2] == ["queue.updated", "signal.received"]
    assert copy[1]["status"] == "duplicate" and copy[2] == []
    warning = SystemLog.objects.get(level="WARNING")
    assert warning.user_id == trader.pk and str(warning.ip_address) == "10.0.0.9"
    assert "wrong-secret" not in warning.message + json.dumps(warning.details)
    note = SystemLog.objects.get(level="INFO", category="WEBHOOK")
    assert note.message.startswith("Pyramid duplicate") and note.details["group_id"] == opened[1]["group_id"]
