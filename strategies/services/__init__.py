"""Writes of the strategies app (docs/strategies.md): instances (create, change, delete, enable, disable)
and their health with auto-disable. The live tick is `strategies.services.live` (it loads pandas-ta;
this module does not, so web processes stay light)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.logs import audit, log_warning
from exchanges.candles import rules as candle_rules
from exchanges.candles.services import CandleInputError, candle_symbol_resolve
from exchanges.models import ExchangeConfig
from exchanges.selectors import exchange_config_enabled_for
from positions import events
from positions.choices import GroupStatus
from positions.hooks import STRATEGY_DISABLED, engine_event_emit
from positions.models import PositionGroup

from ..choices import SignalAction
from ..models import StrategyInstance, StrategySignal
from ..params import SPECS, StrategyParamError, params_validate
from ..rules import TradeResult, auto_disable_reason, health_compute

logger = logging.getLogger(__name__)


class StrategyInputError(ValueError):
    """A strategy instance we refuse: field → reasons."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{name}: {reasons[0]}" for name, reasons in fields.items()))
        self.fields = fields


# ------------------------------------------------------------------------------------------- instances


def _string_list(value: Any, name: str, errors: dict[str, list[str]]) -> list[str]:
    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or not value or not all(isinstance(item, str) and item.strip() for item in value):
        errors[name] = ["must be a non-empty list of strings"]
        return []
    return [item.strip() for item in value]


def _validated(*, user: Any, data: Mapping[str, Any], instance: StrategyInstance | None = None) -> dict[str, Any]:
    """The instance's fields from `data` (for a change: merged over the instance's), all checked."""
    errors: dict[str, list[str]] = {}
    current: dict[str, Any] = {}
    if instance is not None:
        current = {
            "kind": instance.kind,
            "params": instance.params,
            "symbols": instance.symbols,
            "timeframes": instance.timeframes,
            "confirm_timeframe": instance.confirm_timeframe,
            "exchange": instance.exchange_config.exchange_name,
            "capital_usd": instance.capital_usd,
            "correlation_guard": instance.correlation_guard,
            "max_correlation": instance.max_correlation,
        }
    merged = {**current, **{key: value for key, value in data.items()}}
    kind = str(merged.get("kind") or "")
    if kind not in SPECS:
        errors["kind"] = [f"unknown strategy {kind!r}; expected one of {', '.join(SPECS)}"]
        params: dict[str, int | float] = {}
    else:
        raw_params = merged.get("params") or {}
        if instance is not None and kind != instance.kind:
            raw_params = data.get("params") or {}  # another kind: its own defaults under what is given
        elif instance is not None and isinstance(data.get("params"), Mapping):
            raw_params = {**instance.params, **data["params"]}  # a change of some params keeps the others
        try:
            params = params_validate(kind, raw_params)
        except StrategyParamError as exc:
            errors.update({f"params.{name}": reasons for name, reasons in exc.fields.items()})
            params = {}
    config: ExchangeConfig | None = None
    exchange = str(merged.get("exchange") or "")
    if not exchange:
        errors["exchange"] = ["is required"]
    else:
        config = exchange_config_enabled_for(user=user, exchange_name=exchange)
        if config is None:
            errors["exchange"] = [f"no enabled exchange config named {exchange!r}"]
    symbols: list[str] = []
    for raw in _string_list(merged.get("symbols"), "symbols", errors):
        if config is None:
            break
        try:
            symbols.append(candle_symbol_resolve(exchange_name=config.exchange_name, raw=raw))
        except CandleInputError as exc:
            errors.setdefault("symbols", []).append(str(exc))
    timeframes = _string_list(merged.get("timeframes") or ["15m"], "timeframes", errors)
    for timeframe in timeframes:
        if timeframe not in candle_rules.TIMEFRAME_MS:
            errors.setdefault("timeframes", []).append(
                f"unknown timeframe {timeframe!r}; use one of {', '.join(candle_rules.TIMEFRAME_MS)}"
            )
    confirm = str(merged.get("confirm_timeframe") or "")
    if confirm:
        if confirm not in candle_rules.TIMEFRAME_MS:
            errors["confirm_timeframe"] = [f"unknown timeframe {confirm!r}"]
        elif any(candle_rules.TIMEFRAME_MS[confirm] <= candle_rules.TIMEFRAME_MS.get(tf, 0) for tf in timeframes):
            errors["confirm_timeframe"] = ["must be higher than every timeframe of the instance"]
    numbers: dict[str, Decimal] = {}
    for name, default, low, high in (
        ("capital_usd", Decimal("200"), Decimal("0"), Decimal("1e12")),
        ("max_correlation", Decimal("0.7"), Decimal("-1"), Decimal("1")),
    ):
        try:
            numbers[name] = Decimal(str(merged.get(name, default)))
            if not (numbers[name].is_finite() and low < numbers[name] <= high):
                raise InvalidOperation
        except (InvalidOperation, ValueError):
            errors[name] = [f"must be a number above {low} and at most {high}"]
    guard = merged.get("correlation_guard", False)
    if not isinstance(guard, bool):
        errors["correlation_guard"] = ["must be true or false"]
    if errors:
        raise StrategyInputError(errors)
    return {
        "kind": kind,
        "params": params,
        "symbols": list(dict.fromkeys(symbols)),
        "timeframes": list(dict.fromkeys(timeframes)),
        "confirm_timeframe": confirm,
        "exchange_config": config,
        "capital_usd": numbers["capital_usd"],
        "max_correlation": numbers["max_correlation"],
        "correlation_guard": guard,
    }


def strategy_create(*, user: Any, data: Mapping[str, Any]) -> StrategyInstance:
    """A new instance, enabled unless `data` says ``enabled: false``; missing params take defaults."""
    values = _validated(user=user, data=data)
    with transaction.atomic():
        instance = StrategyInstance.objects.create(user=user, enabled=data.get("enabled", True) is not False, **values)
        audit(
            user=user,
            action="strategy.create",
            resource="strategy",
            resource_id=instance.pk,
            details=data_for_log(instance),
        )
    _announce(instance)
    return instance


def strategy_update(*, instance: StrategyInstance, data: Mapping[str, Any], actor: Any = None) -> StrategyInstance:
    """Change an instance's fields (those given); `enabled` goes through `strategy_enable`/`_disable`."""
    values = _validated(user=instance.user, data=data, instance=instance)
    with transaction.atomic():
        for name, value in values.items():
            setattr(instance, name, value)
        instance.updated_at = timezone.now()
        instance.save()
        audit(
            user=actor or instance.user,
            action="strategy.update",
            resource="strategy",
            resource_id=instance.pk,
            details=data_for_log(instance),
        )
    if "enabled" in data:
        if data["enabled"] is True:
            strategy_enable(instance=instance, actor=actor)
        elif data["enabled"] is False:
            strategy_disable(instance=instance, reason="disabled by its owner", actor=actor)
    _announce(instance)
    return instance


def strategy_delete(*, instance: StrategyInstance, actor: Any = None) -> None:
    """Remove an instance (its open groups finish under the engine's rules)."""
    with transaction.atomic():
        audit(user=actor or instance.user, action="strategy.delete", resource="strategy", resource_id=instance.pk)
        instance.delete()


def strategy_enable(*, instance: StrategyInstance, actor: Any = None) -> StrategyInstance:
    """Enable (the only way back after an auto-disable: re-enabling is manual)."""
    with transaction.atomic():
        instance.enabled, instance.disabled_reason, instance.disabled_at = True, "", None
        instance.updated_at = timezone.now()
        instance.save(update_fields=["enabled", "disabled_reason", "disabled_at", "updated_at"])
        audit(user=actor or instance.user, action="strategy.enable", resource="strategy", resource_id=instance.pk)
    _announce(instance)
    return instance


def strategy_disable(*, instance: StrategyInstance, reason: str, actor: Any = None) -> StrategyInstance:
    """Disable with a reason; its open groups are left to finish under the engine's rules."""
    with transaction.atomic():
        instance.enabled, instance.disabled_reason = False, reason[:300]
        instance.disabled_at = timezone.now()
        instance.updated_at = instance.disabled_at
        instance.save(update_fields=["enabled", "disabled_reason", "disabled_at", "updated_at"])
        audit(
            user=actor or instance.user,
            action="strategy.disable",
            resource="strategy",
            resource_id=instance.pk,
            details={"reason": reason},
        )
    _announce(instance)
    return instance


def data_for_log(instance: StrategyInstance) -> dict[str, Any]:
    return {
        "kind": instance.kind,
        "params": instance.params,
        "symbols": instance.symbols,
        "timeframes": instance.timeframes,
        "confirm_timeframe": instance.confirm_timeframe,
    }


def _announce(instance: StrategyInstance) -> None:
    events.publish(
        instance.user_id,
        "strategy.updated",
        {
            "id": str(instance.pk),
            "kind": instance.kind,
            "enabled": instance.enabled,
            "disabled_reason": instance.disabled_reason,
        },
    )


# ----------------------------------------------------------------------------------------------- health


def strategy_trades(*, instance: StrategyInstance) -> list[TradeResult]:
    """The closed groups this instance opened, as trades."""
    return strategy_trades_many(instances=[instance])[instance.pk]


def strategy_trades_many(*, instances: list[StrategyInstance]) -> dict[Any, list[TradeResult]]:
    """`strategy_trades` of several instances in two queries (a page listing them), by instance id."""
    found: dict[Any, list[TradeResult]] = {instance.pk: [] for instance in instances}
    opened: dict[Any, set[Any]] = {}  # group id -> the instances whose entry opened it
    for instance_id, group_id in StrategySignal.objects.filter(
        instance_id__in=list(found), action=SignalAction.ENTRY, group_id__isnull=False
    ).values_list("instance_id", "group_id"):
        opened.setdefault(group_id, set()).add(instance_id)
    if not opened:
        return found
    closed = PositionGroup.objects.filter(id__in=list(opened), status=GroupStatus.CLOSED, closed_at__isnull=False)
    for group_id, closed_at, pnl, cost in closed.values_list("id", "closed_at", "realized_pnl", "total_cost"):
        if closed_at is None:
            continue
        for instance_id in opened[group_id]:
            found[instance_id].append(TradeResult(closed_at=closed_at, pnl=pnl, cost=cost))
    return found


def strategy_health_check(*, instance: StrategyInstance, now: datetime) -> str | None:
    """Disable the instance when its health says so (docs/strategies.md#health); the reason, or None."""
    if not instance.enabled:
        return None
    health = health_compute(strategy_trades(instance=instance), now=now)
    reason = auto_disable_reason(health, capital=instance.capital_usd)
    if reason is not None:
        strategy_disable(instance=instance, reason=f"auto-disabled: {reason}")
        log_warning(
            "TRADING",
            f"Strategy {instance.kind} disabled: {reason}",
            user=instance.user,
            details={"strategy_id": str(instance.pk)},
        )
        # Told to the owner's channels (notifications hears it through positions' hooks, after commit).
        engine_event_emit(
            kind=STRATEGY_DISABLED,
            user_id=instance.user_id,
            group_id="",
            data={
                "strategy_id": str(instance.pk),
                "kind": instance.kind,
                "symbols": list(instance.symbols),
                "reason": reason,
            },
        )
    return reason
