"""The ML filter on the live intake (docs/ml.md#filter): a webhook entry the deployed model scores below
the user's threshold is refused and stored with the filter's reason, on Django's view and on the
webhook's own ASGI route; with the filter off the intake never asks it."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest

from analytics.ml import services
from analytics.ml.filter import BOOSTERS
from analytics.ml.models import ModelStatus
from analytics.tests.ml_support import HOUR, csv_lines, cyclic_rows
from exchanges.candles import services as candle_services
from positions import entry_filter, hooks
from positions.config import ConfigError, parse_engine_config
from positions.models import PositionGroup, WebhookSignal
from positions.services import intake
from positions.services.configs import config_set
from positions.tests import conftest as positions_fixtures
from positions.tests.conftest import alert, post
from positions.tests.test_ingress import _asgi, _json_headers

pytestmark = pytest.mark.django_db(transaction=True)
sim_config = positions_fixtures.sim_config  # the trader's simulator exchange config, with market rules
FAST = {"num_boost_round": 60, "max_depth": 3}


@pytest.fixture
def deployed(sim_config):
    """1500 hourly candles of BTC/USDT stored for the simulator exchange and a model trained on them."""
    rows = cyclic_rows()
    candle_services.candles_import(exchange_name="simulator", symbol="BTC/USDT", timeframe="1h", lines=csv_lines(rows))
    model = services.model_train(exchange_name="simulator", symbol="BTC/USDT", timeframe="1h", horizon=5, params=FAST)
    assert model.status == ModelStatus.DEPLOYED, model.status_reason
    BOOSTERS.clear()
    # The candles are from the past: their alerts are replays, which the stale-alert guard would ignore.
    config_set(user=sim_config.user, data={"max_alert_lag_seconds": 0}, partial=True)
    return model, rows


def _entry(trader, rows, *, trade_id: str, later_candles: int = 0):
    """An entry alert sent just after the newest stored candle closed (or `later_candles` after that)."""
    moment = datetime.fromtimestamp((rows[-1][0] + (1 + later_candles) * HOUR) / 1000 + 5, tz=UTC)
    return alert(
        trader.webhook_secret,
        timestamp=moment.isoformat().replace("+00:00", "Z"),
        strategy_info={"trade_id": trade_id},
    )


def _score(model, rows) -> float:
    from analytics.ml.filter import model_booster, score_latest
    from strategies.library import candles_frame

    score = score_latest(model_booster(model), candles_frame(rows))
    assert score is not None
    return score


def test_an_entry_below_the_threshold_is_refused_with_the_score(client, trader, deployed):
    model, rows = deployed
    score = _score(model, rows)
    config_set(user=trader, data={"ml_filter_enabled": True, "ml_filter_threshold": "0.999"}, partial=True)
    assert score < 0.999

    seen: list[hooks.EngineEvent] = []
    hooks.engine_event_subscribe(seen.append)
    try:
        response = post(client, trader, _entry(trader, rows, trade_id="T-ml-1"))
        deadline = time.monotonic() + 5  # the announcer is a thread of its own
        while not seen and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        hooks.engine_event_unsubscribe(seen.append)
    assert response.status_code == 200, response.content
    body = response.json()
    # Told to the apps above like a guard's refusal (notifications: "guard triggered ml_filter").
    (event,) = seen
    assert (event.kind, event.data["guard"], event.data["reason"]) == (hooks.GUARD_REFUSED, "ml_filter", body["reason"])
    assert body["status"] == "ignored" and body["reason"].startswith("ml_filter: score ")
    assert f"{score:.4f}" in body["reason"] and "below the threshold 0.999" in body["reason"]
    assert str(model.pk) in body["reason"]
    signal = WebhookSignal.objects.get(pk=body["signal_id"])
    assert signal.status == "ignored" and signal.reason == body["reason"] and signal.classification == "new_entry"
    assert not PositionGroup.objects.exists()

    # The same entry at a threshold it clears opens the group.
    config_set(user=trader, data={"ml_filter_threshold": "0.001"}, partial=True)
    response = post(client, trader, _entry(trader, rows, trade_id="T-ml-2"))
    assert response.status_code == 202, response.content
    assert PositionGroup.objects.count() == 1


def test_a_model_of_a_timeframe_the_store_builds_from_a_lower_one(client, trader, sim_config):
    """Only 30m candles stored: training reads them as 1h (the candle selectors build it), and so does the
    live filter."""
    half_hours = cyclic_rows(3000, period=80, step_ms=HOUR // 2)
    lines = csv_lines(half_hours)
    candle_services.candles_import(exchange_name="simulator", symbol="BTC/USDT", timeframe="30m", lines=lines)
    model = services.model_train(exchange_name="simulator", symbol="BTC/USDT", timeframe="1h", horizon=5, params=FAST)
    assert model.status == ModelStatus.DEPLOYED, model.status_reason
    config = {"ml_filter_enabled": True, "ml_filter_threshold": "0.999", "max_alert_lag_seconds": 0}
    config_set(user=trader, data=config, partial=True)
    last_hour = [row for row in half_hours if row[0] % HOUR == 0][-1]
    response = post(client, trader, _entry(trader, [last_hour], trade_id="T-ml-30m"))
    assert response.status_code == 200, response.content
    assert response.json()["reason"].startswith("ml_filter: score "), response.json()


def test_a_strategy_entry_is_filtered_too(trader, deployed):
    """A built-in strategy's signal enters through the same intake (`strategy_signal_receive`)."""
    _, rows = deployed
    config_set(user=trader, data={"ml_filter_enabled": True, "ml_filter_threshold": "0.999"}, partial=True)
    result = intake.strategy_signal_receive(user_id=str(trader.pk), body=_entry(trader, rows, trade_id="S-ml-1"))
    assert result.status == 200 and result.body["reason"].startswith("ml_filter: score "), result.body
    signal = WebhookSignal.objects.get(pk=result.body["signal_id"])
    assert (signal.source, signal.status) == ("strategy", "ignored")
    assert not PositionGroup.objects.exists()


def test_the_webhook_route_on_the_event_loop_filters_too(trader, deployed):
    _, rows = deployed
    config_set(user=trader, data={"ml_filter_enabled": True, "ml_filter_threshold": "0.999"}, partial=True)
    body = json.dumps(_entry(trader, rows, trade_id="T-ml-3")).encode()
    response = _asgi("POST", f"/api/webhook/{trader.pk}", body, _json_headers())
    payload = json.loads(response["body"])
    assert response["status"] == 200, payload
    assert payload["status"] == "ignored" and payload["reason"].startswith("ml_filter: score ")
    assert not PositionGroup.objects.exists()


def test_with_the_filter_off_the_intake_does_not_ask_it(client, trader, deployed):
    _, rows = deployed
    asked: list[entry_filter.EntryQuery] = []
    provider = entry_filter.entry_filter_registered()
    assert provider is not None

    def spy(query):
        asked.append(query)
        return (yield from provider(query))

    entry_filter.entry_filter_register(spy)
    try:
        response = post(client, trader, _entry(trader, rows, trade_id="T-ml-4"))
        assert response.status_code == 202 and asked == []  # default: off
        config_set(user=trader, data={"ml_filter_enabled": True, "ml_filter_threshold": "0.001"}, partial=True)
        response = post(client, trader, _entry(trader, rows, trade_id="T-ml-5", later_candles=1))
        assert response.status_code == 202 and len(asked) == 1  # a pyramid now: an entry too
        assert asked[0].symbol == "BTC/USDT" and asked[0].timeframe == "1h" and asked[0].threshold == 0.001
    finally:
        entry_filter.entry_filter_register(provider)


def test_without_a_deployed_model_the_entry_passes(client, trader, sim_config):
    config_set(user=trader, data={"ml_filter_enabled": True, "ml_filter_threshold": "0.9"}, partial=True)
    response = post(client, trader, alert(trader.webhook_secret))
    assert response.status_code == 202, response.content


@pytest.mark.parametrize("value", ["0", "1", "1.5", "-0.1", "abc", None])
def test_the_threshold_is_validated_like_other_config_keys(value):
    if value is None:
        with pytest.raises(ConfigError) as raised:
            parse_engine_config({"ml_filter_enabled": "yes"})
        assert "ml_filter_enabled" in raised.value.errors
        return
    with pytest.raises(ConfigError) as raised:
        parse_engine_config({"ml_filter_threshold": value})
    assert "ml_filter_threshold" in raised.value.errors
