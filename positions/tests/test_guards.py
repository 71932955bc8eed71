"""Guards through the webhook and the API: each one refusing (200 ignored, the guard named) and releasing."""

from __future__ import annotations

import time
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from accounts.models import SystemLog
from positions import hooks
from positions.models import PositionGroup, QueuedSignal, WebhookSignal
from positions.services.configs import config_set
from positions.services.guards import guard_pause_set
from positions.tests.conftest import HISTORIC, alert, lag_off, post

pytestmark = pytest.mark.django_db(transaction=True)


def _entry(client, trader, symbol: str = "BTCUSDT", trade_id: str = "T-1", **tv):
    body = alert(trader.webhook_secret, tv={"symbol": symbol, **tv}, strategy_info={"trade_id": trade_id})
    return post(client, trader, body)


def _closed_at_loss(trader, config, symbol: str, pnl: str, minutes_ago: int = 1) -> None:
    PositionGroup.objects.create(
        user=trader,
        exchange_config=config,
        symbol=symbol,
        timeframe="4h",
        status="closed",
        realized_pnl=Decimal(pnl),
        closed_at=timezone.now() - timedelta(minutes=minutes_ago),
    )


def test_pause_refuses_new_groups_and_resume_releases(client, api_client, trader, sim_config):
    api_client.force_authenticate(trader)
    assert api_client.put("/api/guards", {"paused": True}, format="json").json()["paused"] is True
    refused = _entry(client, trader)
    assert refused.status_code == 200
    assert refused.json() == {
        "status": "ignored",
        "reason": "pause: trading is paused: no new groups",
        "signal_id": refused.json()["signal_id"],
    }
    assert SystemLog.objects.filter(message__startswith="Entry refused by the pause guard").exists()
    assert api_client.get("/api/guards").json()["blocking"]["guard"] == "pause"
    api_client.put("/api/guards", {"paused": False}, format="json")
    assert _entry(client, trader, trade_id="T-2").status_code == 202


def test_daily_loss_limit_until_an_operator_reset(client, api_client, trader, sim_config):
    config_set(user=trader, data={"daily_loss_limit_usd": "50"}, partial=True)
    _closed_at_loss(trader, sim_config, "ETH/USDT", "-60")
    refused = _entry(client, trader)
    assert refused.status_code == 200 and refused.json()["reason"].startswith("daily_loss: realized loss today 60.00")
    api_client.force_authenticate(trader)
    status = api_client.put("/api/guards", {"reset_daily_loss": True}, format="json").json()
    assert status["blocking"] is None and status["loss_today"] == "0"
    assert _entry(client, trader, trade_id="T-2").status_code == 202


def test_cooldown_after_a_loss_on_that_symbol_only(client, trader, sim_config):
    config_set(user=trader, data={"cooldown_minutes_after_loss": 30}, partial=True)
    _closed_at_loss(trader, sim_config, "BTC/USDT", "-5", minutes_ago=10)
    refused = _entry(client, trader)
    assert refused.json()["reason"].startswith("cooldown: BTC/USDT closed at a loss")
    assert _entry(client, trader, symbol="ETHUSDT", trade_id="T-2").status_code == 202
    PositionGroup.objects.filter(symbol="BTC/USDT").update(closed_at=timezone.now() - timedelta(minutes=31))
    assert _entry(client, trader, trade_id="T-3").status_code == 202


def test_exposure_cap_queues_then_rejects(client, trader, sim_config):
    # Each new group's capital is the default 200: the first fits under 300, the second would pass it.
    config_set(user=trader, data={"max_total_exposure_usd": "300"}, partial=True)
    assert _entry(client, trader).status_code == 202  # its pyramid's 200 counts before its legs exist
    queued = _entry(client, trader, symbol="ETHUSDT", trade_id="T-2")
    assert queued.status_code == 202 and queued.json()["classification"] == "queued"
    assert QueuedSignal.objects.filter(symbol="ETH/USDT").exists()
    config_set(user=trader, data={"exposure_action": "reject"}, partial=True)
    refused = _entry(client, trader, symbol="SOLUSDT", trade_id="T-3")
    assert refused.json()["reason"] == "exposure: exposure 200.00 + 200.00 would pass max_total_exposure_usd 300"


def test_stale_alert_is_ignored(client, trader, sim_config):
    # max_alert_lag_seconds is 300 unless set: an alert stamped days ago is answered ignored.
    refused = post(client, trader, alert(trader.webhook_secret, timestamp=HISTORIC))
    assert refused.status_code == 200 and refused.json()["reason"].startswith("stale_alert: the alert is")
    assert not PositionGroup.objects.exists()
    fresh = alert(trader.webhook_secret, timestamp=timezone.now().isoformat(), strategy_info={"trade_id": "T-2"})
    assert post(client, trader, fresh).status_code == 202
    # 0 turns the guard off: the same old alert (a new trade id) is traded.
    lag_off(trader)
    old = alert(trader.webhook_secret, tv={"symbol": "ETHUSDT"}, timestamp=HISTORIC, strategy_info={"trade_id": "T-3"})
    assert post(client, trader, old).status_code == 202


def test_missed_alert_is_flagged_and_still_handled(client, trader, sim_config):
    lag_off(trader)  # the pyramids come in the next candles of a historic day
    entry = alert(trader.webhook_secret, timestamp=HISTORIC, strategy_info={"trade_id": "T-1"})
    assert post(client, trader, entry).status_code == 202
    # TradingView says the strategy was flat, yet the group is open: a missed exit. Still a pyramid.
    pyramid = alert(
        trader.webhook_secret,
        timestamp="2026-11-20T12:00:05Z",
        tv={"prev_market_position": "flat"},
        strategy_info={"trade_id": "T-2"},
    )
    answer = post(client, trader, pyramid).json()
    assert answer["classification"] == "pyramid"
    assert WebhookSignal.objects.get(pk=answer["signal_id"]).flags == ["sequence_anomaly"]
    consistent = alert(
        trader.webhook_secret,
        timestamp="2026-11-20T13:00:05Z",
        tv={"prev_market_position": "long"},
        strategy_info={"trade_id": "T-3"},
    )
    assert WebhookSignal.objects.get(pk=post(client, trader, consistent).json()["signal_id"]).flags == []


def test_flatten_needs_confirm_and_guard_settings_are_validated(api_client, trader, sim_config):
    api_client.force_authenticate(trader)
    refused = api_client.post("/api/guards/flatten", {}, format="json")
    assert refused.status_code == 400 and refused.json()["fields"] == {"confirm": ["must be true"]}
    bad = api_client.put("/api/guards", {"daily_loss_limit_usd": "-5", "bogus": 1}, format="json")
    assert bad.status_code == 400 and set(bad.json()["fields"]) == {"bogus"}
    bad = api_client.put("/api/guards", {"daily_loss_limit_usd": "-5"}, format="json")
    assert bad.status_code == 400 and "daily_loss_limit_usd" in bad.json()["fields"]
    assert api_client.get("/api/guards").json()["daily_loss_limit_usd"] is None  # nothing changed
    done = api_client.post("/api/guards/flatten", {"confirm": True}, format="json")
    assert done.status_code == 200 and done.json()["paused"] is True


def test_stop_averaging_on_someone_elses_or_a_closed_group(api_client, trader, sim_config, user_factory):
    group = PositionGroup.objects.create(user=trader, exchange_config=sim_config, symbol="BTC/USDT", timeframe="1h")
    stranger = user_factory()
    api_client.force_authenticate(stranger)
    assert api_client.post(f"/api/positions/{group.pk}/stop-averaging").status_code == 404
    api_client.force_authenticate(trader)
    assert api_client.post(f"/api/positions/{group.pk}/stop-averaging").json()["cancelled_legs"] == 0
    PositionGroup.objects.filter(pk=group.pk).update(status="closed")
    assert api_client.post(f"/api/positions/{group.pk}/stop-averaging").status_code == 409


@pytest.fixture
def engine_events():
    seen: list[hooks.EngineEvent] = []
    hooks.engine_event_subscribe(seen.append)
    yield seen
    hooks.engine_event_unsubscribe(seen.append)


def _announced(seen: list, count: int) -> list:
    """The engine events announced so far, once there are `count` (the announcer is a thread of its own)."""
    deadline = time.monotonic() + 5
    while len(seen) < count and time.monotonic() < deadline:
        time.sleep(0.01)
    return list(seen)


def test_a_guard_refusal_and_a_sequence_anomaly_are_announced_after_commit(client, trader, sim_config, engine_events):
    config_set(user=trader, data={"max_total_exposure_usd": "300"}, partial=True)
    assert _entry(client, trader).status_code == 202  # accepted: nothing for the apps above
    queued = _entry(client, trader, symbol="ETHUSDT", trade_id="T-2")
    assert queued.json()["message"] == (
        "Queued by the exposure guard: exposure: exposure 200.00 + 200.00 would pass max_total_exposure_usd 300"
    )
    (event,) = _announced(engine_events, 1)
    assert (event.kind, event.user_id) == (hooks.GUARD_REFUSED, str(trader.pk))
    assert event.data["guard"] == "exposure" and event.data["outcome"] == "queued"
    assert event.data["symbol"] == "ETH/USDT" and event.data["signal_id"] == str(
        WebhookSignal.objects.get(symbol="ETH/USDT").pk
    )
    engine_events.clear()
    guard_pause_set(user=trader, paused=True, actor=trader)
    refused = _entry(client, trader, symbol="SOLUSDT", trade_id="T-3")
    assert refused.json()["reason"] == "pause: trading is paused: no new groups"
    (event,) = _announced(engine_events, 1)
    assert event.kind == hooks.GUARD_REFUSED and event.data["guard"] == "pause"
    assert event.data["outcome"] == "ignored" and event.data["reason"] == refused.json()["reason"]
    engine_events.clear()
    # An exit for nothing open or queued: a missed alert, flagged and announced (and ignored).
    exit_body = alert(
        trader.webhook_secret,
        tv={"symbol": "XRPUSDT", "action": "sell", "prev_market_position": "long"},
        execution_intent={"type": "exit", "side": "sell"},
        strategy_info={"trade_id": "T-4"},
    )
    answer = post(client, trader, exit_body).json()
    (event,) = _announced(engine_events, 1)
    assert event.kind == hooks.SEQUENCE_ANOMALY and event.data["symbol"] == "XRP/USDT"
    assert event.data["reason"] == "an exit arrived with nothing open or queued for this symbol"
    assert event.data["signal_id"] == answer["signal_id"]


def test_guards_list_each_override_with_its_limits_and_what_blocks_there(api_client, trader, sim_config):
    config_set(
        user=trader,
        data={
            "daily_loss_limit_usd": "100",
            "overrides": {
                "ETH/USDT": {"daily_loss_limit_usd": "20", "cooldown_minutes_after_loss": 60},
                "SOL/USDT:4h": {"max_total_exposure_usd": "150", "exposure_action": "reject"},
            },
        },
        partial=True,
    )
    _closed_at_loss(trader, sim_config, "ETH/USDT", "-30")
    api_client.force_authenticate(trader)
    body = api_client.get("/api/guards").json()
    # Top level: 30 lost today is under the 100 limit; ETH's own limit of 20 is passed.
    assert body["daily_loss_limit_usd"] == "100" and body["loss_today"] == "30" and body["blocking"] is None
    eth, sol = body["overrides"]
    assert (eth["scope"], eth["symbol"], eth["timeframe"]) == ("ETH/USDT", "ETH/USDT", None)
    assert eth["daily_loss_limit_usd"] == "20" and eth["cooldown_minutes_after_loss"] == 60
    assert eth["overridden"] == ["cooldown_minutes_after_loss", "daily_loss_limit_usd"]
    assert eth["blocking"]["guard"] == "daily_loss"
    assert (sol["scope"], sol["timeframe"], sol["daily_loss_limit_usd"]) == ("SOL/USDT:4h", "4h", "100")
    assert sol["max_total_exposure_usd"] == "150" and sol["exposure_action"] == "reject"
    # A new SOL group of the default 200 would pass its 150 cap by itself.
    assert sol["blocking"] == {
        "guard": "exposure",
        "reason": "exposure 0.00 + 200.00 would pass max_total_exposure_usd 150",
    }


def test_a_limit_set_only_in_a_symbol_override_is_listed_and_applied(client, api_client, trader, sim_config):
    # No top-level limit: the cap exists only for BTC/USDT, and the intake applies it there.
    config_set(
        user=trader,
        data={"overrides": {"BTC/USDT": {"max_total_exposure_usd": "100", "exposure_action": "reject"}}},
        partial=True,
    )
    api_client.force_authenticate(trader)
    body = api_client.get("/api/guards").json()
    assert body["max_total_exposure_usd"] is None and body["exposure_action"] == "queue" and body["blocking"] is None
    (btc,) = body["overrides"]
    assert (btc["scope"], btc["max_total_exposure_usd"], btc["exposure_action"]) == ("BTC/USDT", "100", "reject")
    assert btc["overridden"] == ["exposure_action", "max_total_exposure_usd"]
    reason = "exposure 0.00 + 200.00 would pass max_total_exposure_usd 100"
    assert btc["blocking"] == {"guard": "exposure", "reason": reason}
    assert _entry(client, trader).json()["reason"] == f"exposure: {reason}"
    assert _entry(client, trader, symbol="ETHUSDT", trade_id="T-2").status_code == 202


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        ("/api/guards", {"daily_loss_limit_usd": "-5"}, "daily_loss_limit_usd"),
        ("/api/guards", {"max_total_exposure_usd": -1}, "max_total_exposure_usd"),
        ("/api/guards", {"cooldown_minutes_after_loss": -10}, "cooldown_minutes_after_loss"),
        ("/api/guards", {"exposure_action": "shrug"}, "exposure_action"),
        ("/api/guards", {"paused": "yes"}, "paused"),
        ("/api/config", {"queue_priority_rules": ["fifo", "newest_first"]}, "queue_priority_rules"),
        ("/api/config", {"queue_priority_rules": ["fifo", "deepest_loss", "fifo"]}, "queue_priority_rules"),
        (
            "/api/config",
            {"overrides": {"BTC/USDT": {"daily_loss_limit_usd": "-1"}}},
            "overrides.BTC/USDT.daily_loss_limit_usd",
        ),
    ],
)
def test_guard_and_queue_settings_that_make_no_sense_are_refused_naming_the_field(
    api_client, trader, sim_config, url, body, field
):
    config_set(user=trader, data={"daily_loss_limit_usd": "50"}, partial=True)
    api_client.force_authenticate(trader)
    before = api_client.get("/api/config").json()
    refused = (
        api_client.patch(url, body, format="json") if url == "/api/config" else api_client.put(url, body, format="json")
    )
    assert refused.status_code == 400, refused.content
    assert field in refused.json()["fields"]
    assert api_client.get("/api/config").json() == before  # nothing changed
    assert api_client.get("/api/guards").json()["paused"] is False
