"""Bench traders (user + simulator account + `simulator` exchange config) and their webhook bodies."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

# TradingView intervals the webhook accepts (positions.webhook.TIMEFRAMES, one spelling each).
TV_TIMEFRAMES = ["1", "3", "5", "15", "30", "45", "60", "120", "180", "240", "360", "480", "720", "D", "W"]
TV_SECONDS = {
    "1": 60,
    "3": 180,
    "5": 300,
    "15": 900,
    "30": 1800,
    "45": 2700,
    "60": 3600,
    "120": 7200,
    "180": 10800,
    "240": 14400,
    "360": 21600,
    "480": 28800,
    "720": 43200,
    "D": 86400,
    "W": 604800,
}
# Signal times start on a Monday 00:00 UTC so that every timeframe's candles line up with it.
EPOCH = datetime(2026, 11, 16, tzinfo=UTC)
# Those fixed times are soon older than max_alert_lag_seconds: every bench trader has the stale-alert guard
# off (the guard itself is a comparison of two times, nothing a bench would measure).
BENCH_CONFIG: dict[str, Any] = {"max_alert_lag_seconds": 0}


@dataclass(frozen=True)
class Trader:
    user_id: str
    secret: str
    api_key: str
    config_id: str

    @property
    def webhook_path(self) -> str:
        return f"/api/webhook/{self.user_id}"


def traders_create(
    sim: Any, *, count: int, prefix: str, balances: dict[str, str], engine_config: dict[str, Any] | None = None
) -> list[Trader]:
    """`count` traders, each with a funded simulator account, through the services the API uses; their
    engine config is BENCH_CONFIG with `engine_config` over it."""
    # Django is set up by Harness (on the bench database) after this module is imported
    from accounts.services import user_register
    from exchanges.services import exchange_config_store
    from positions.services.configs import config_set

    made = []
    for index in range(count):
        user = user_register(
            email=f"{prefix}{index}@bench.invalid", username=f"{prefix}{index}", password="Bench-pass-1234"
        )
        api_key = "bench" + secrets.token_hex(16)
        api_secret = secrets.token_hex(32)
        sim.create_account(api_key, api_secret, balances)
        config, _ = exchange_config_store(
            user=user, exchange_name="simulator", mode="testnet", api_key=api_key, api_secret=api_secret
        )
        config_set(user=user, data={**BENCH_CONFIG, **(engine_config or {})}, partial=True)
        made.append(Trader(user_id=str(user.pk), secret=user.webhook_secret, api_key=api_key, config_id=str(config.pk)))
    return made


def signal_body(
    trader: Trader, *, symbol: str, timeframe: str, price: str, trade_id: str, candle: int = 0, second: int = 5
) -> bytes:
    """A rendered TradingView alert (docs/webhook.md#body): a grid buy on the simulator.

    `candle` counts candles of `timeframe` from EPOCH, so signals in different candles are pyramids
    and not duplicates of one another.
    """
    at = EPOCH + timedelta(seconds=TV_SECONDS[timeframe] * candle + second)
    # Django is set up by Harness (on the bench database) after this module is imported
    from positions.webhook import alert_template

    body = alert_template(secret=trader.secret, exchange="SIMULATOR")
    body["timestamp"] = at.strftime("%Y-%m-%dT%H:%M:%SZ")
    body["tv"].update(
        symbol=symbol,
        timeframe=timeframe,
        action="buy",
        market_position="long",
        market_position_size="1",
        prev_market_position="flat",
        prev_market_position_size="0",
        entry_price=price,
        close_price=price,
        order_size="1",
    )
    body["strategy_info"].update(trade_id=trade_id, alert_name="bench grid", alert_message="")
    return json.dumps(body).encode()
