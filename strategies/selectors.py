"""Reads of the strategies app."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db.models import QuerySet

from .models import StrategyInstance, StrategySignal
from .params import SPECS
from .rules import health_compute
from .services import strategy_trades


def strategy_list(*, user: Any) -> QuerySet[StrategyInstance]:
    """The user's own instances."""
    return StrategyInstance.objects.filter(user=user).select_related("exchange_config").order_by("created_at")


def strategy_get(*, user: Any, strategy_id: Any) -> StrategyInstance | None:
    """One of the user's instances (None for another user's or none)."""
    return strategy_list(user=user).filter(pk=strategy_id).first()


def strategy_signals(*, instance: StrategyInstance, limit: int = 50) -> QuerySet[StrategySignal]:
    return instance.signals.order_by("-candle_open")[:limit]


def strategy_describe(*, instance: StrategyInstance, now: datetime) -> dict[str, Any]:
    """The API's view of an instance, with its rules and health."""
    strategy = SPECS[instance.kind]
    return {
        "id": str(instance.pk),
        "kind": instance.kind,
        "params": instance.params,
        "symbols": instance.symbols,
        "timeframes": instance.timeframes,
        "confirm_timeframe": instance.confirm_timeframe or None,
        "exchange": instance.exchange_config.exchange_name,
        "capital_usd": str(instance.capital_usd),
        "correlation_guard": instance.correlation_guard,
        "max_correlation": str(instance.max_correlation),
        "enabled": instance.enabled,
        "disabled_reason": instance.disabled_reason,
        "entry_rule": strategy.entry_rule,
        "exit_rule": strategy.exit_rule,
        "health": health_compute(strategy_trades(instance=instance), now=now).as_dict(),
        "created_at": instance.created_at.isoformat(),
    }
