"""Fixtures for positions tests: a trader with a simulator exchange config and cached market rules."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

BUILT_IN = Path(__file__).resolve().parents[2] / "exchanges" / "simulator" / "default_exchange_info.json"


def load_rules(exchange_name: str, path: Path = BUILT_IN) -> None:
    """Cache market rules from a Binance exchangeInfo file, the way a refresh stores them."""
    from exchanges.precision import market_rules_from_binance_symbol
    from exchanges.services import market_rules_store

    rules = [market_rules_from_binance_symbol(item) for item in json.loads(path.read_text())["symbols"]]
    market_rules_store(exchange_name=exchange_name, rules=rules, prune=False)


@pytest.fixture
def sim_config(trader):
    """An enabled `simulator` exchange config with the built-in market rules cached (no network)."""
    from exchanges.models import ExchangeConfig

    config = ExchangeConfig(user=trader, exchange_name="simulator", mode="testnet", is_enabled=True)
    config.set_credentials(api_key="demo-key-0001", api_secret="demo-secret-0001-xxxxxxxxxxxxxxxx", password=None)
    config.save()
    load_rules("simulator")
    return config


# A fixed moment in the past, for tests whose alerts must fall in given candles (a pyramid in the next
# candle, a second alert in the same one): they turn the stale-alert guard off (`lag_off`).
HISTORIC = "2026-11-20T10:00:05Z"
_fresh: dict[str, str] = {}


def fresh_timestamp() -> str:
    """Now (to the second), the same for every alert of the running test, so that two alerts built alike
    are duplicates of each other; the stale-alert guard (max_alert_lag_seconds, 300 s) accepts it."""
    test = os.environ.get("PYTEST_CURRENT_TEST", "").rsplit(" (", 1)[0]
    if test not in _fresh:
        _fresh.clear()
        _fresh[test] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return _fresh[test]


def lag_off(user) -> None:
    """Turn the stale-alert guard off for `user`: the test sends alerts with historic timestamps."""
    from positions.services.configs import config_set

    config_set(user=user, data={"max_alert_lag_seconds": 0}, partial=True)


def alert(secret: str, **overrides):
    """A rendered TradingView alert in our format (docs/webhook.md#body): a grid buy of BTCUSDT at 65000,
    sent now (`fresh_timestamp`)."""
    from positions.webhook import alert_template

    body = alert_template(secret=secret, exchange="SIMULATOR")
    body["timestamp"] = fresh_timestamp()
    body["tv"].update(
        symbol="BTCUSDT",
        timeframe="60",
        action="buy",
        market_position="long",
        market_position_size="0.01",
        prev_market_position="flat",
        prev_market_position_size="0",
        entry_price="65000",
        close_price="65000",
        order_size="0.01",
    )
    body["strategy_info"].update(trade_id="T-1", alert_name="grid", alert_message="")
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(body.get(key), dict):
            body[key] = {**body[key], **value}
        else:
            body[key] = value
    return body


def post(client, user, body, content_type="application/json"):
    raw = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.generic("POST", f"/api/webhook/{user.pk}", raw, content_type=content_type)
