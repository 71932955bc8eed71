"""The user's engine config: read with defaults, write validated (PUT = whole object, PATCH = given keys)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from accounts.logs import audit
from exchanges.precision import MarketRules
from core.api import ApiError

from ..config import ConfigError, default_engine_config, parse_engine_config
from ..grid import GridConfig
from ..models import EngineConfig


def config_get(*, user: Any) -> dict[str, Any]:
    stored = EngineConfig.objects.filter(user=user).values_list("data", flat=True).first()
    return {**default_engine_config(), **(stored or {})}


def config_set(*, user: Any, data: Any, partial: bool, ip: str | None = None) -> dict[str, Any]:
    if not isinstance(data, dict):
        raise ConfigError({"config": ["must be a JSON object"]})
    with transaction.atomic():
        row, _ = EngineConfig.objects.select_for_update().get_or_create(user=user)
        base = {**default_engine_config(), **(row.data or {})} if partial else {}
        candidate = {**base, **data}
        if partial and "generator" in data:
            candidate.pop("levels", None)
        if partial and "levels" in data:
            candidate.pop("generator", None)
        merged, _ = parse_engine_config(candidate)
        row.data = _jsonable(merged)
        row.save()
        audit(
            user=user,
            action="config_update",
            resource="engine_config",
            resource_id=row.pk,
            details={"keys": sorted(data.keys()), "partial": partial},
            ip=ip,
        )
    return row.data


def _jsonable(value: Any) -> Any:
    from decimal import Decimal

    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    return value


def grid_for_preview(*, user: Any, config: Any) -> GridConfig:
    if config is None:
        _, grid = parse_engine_config(config_get(user=user))
        return grid
    if not isinstance(config, dict):
        raise ConfigError({"config": ["must be a JSON object"]})
    _, grid = parse_engine_config(config)
    return grid


def rules_for_preview(*, user: Any, exchange: str, symbol: str) -> MarketRules:
    from exchanges.exceptions import ExchangeError
    from exchanges.models import ExchangeConfig
    from exchanges.selectors import market_rule_resolve
    from exchanges.services import adapter_for

    config = ExchangeConfig.objects.filter(user=user, exchange_name__iexact=exchange).first()
    exchange_name = config.exchange_name if config else exchange.lower()
    rules = market_rule_resolve(exchange_name=exchange_name, raw=symbol)
    if rules is None and config is not None:
        try:
            rules = adapter_for(config).resolve_symbol(symbol)
        except ExchangeError as exc:
            raise ApiError(
                status_code=400, code="unknown_symbol", detail=str(exc), fields={"symbol": [str(exc)]}
            ) from exc
    if rules is None:
        raise ApiError(
            status_code=400,
            code="unknown_symbol",
            detail=f"No market rules for {symbol} on {exchange}.",
            fields={"symbol": [f"unknown on {exchange}"], "exchange": ["no market rules loaded"]},
        )
    return rules
