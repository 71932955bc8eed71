"""Celery tasks of the exchanges app: thin callers of services (schedules in ``tradingsite.schedules``)."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from . import rules, services


@shared_task(name="exchanges.refresh_market_rules")
def refresh_market_rules(exchange_name: str | None = None) -> dict[str, Any]:
    """Reload market rules of one exchange, or of every exchange an enabled config uses."""
    if exchange_name:
        return {exchange_name: rules.market_rules_refresh(exchange_name=exchange_name)}
    return rules.market_rules_refresh_all()


@shared_task(name="exchanges.validate_all")
def validate_all() -> dict[str, int]:
    """Validate every enabled exchange config."""
    return services.exchange_configs_validate_all()


# The candle store's tasks live with it; importing them here registers them (celery discovers `tasks`).
from .candles.tasks import backfill_candles as backfill_candles  # noqa: E402
