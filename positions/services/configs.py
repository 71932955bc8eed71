"""The user's engine config: read with defaults, write validated (PUT = whole object, PATCH = given keys).

What is stored is what the user set (nulls dropped); defaults are applied when it is read, so they are
defined in one place (`positions.config`) and can never contradict a user's value (docs/engine.md#config).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db import transaction

from accounts.logs import audit
from core.api import ApiError
from exchanges.exceptions import ExchangeError
from exchanges.models import ExchangeConfig
from exchanges.precision import MarketRules
from exchanges.selectors import market_rule_resolve
from exchanges.services import adapter_for

from ..config import ConfigError, layer_engine_config, parse_engine_config, resolve_engine_config
from ..grid import GridConfig
from ..models import EngineConfig


def config_get(*, user: Any) -> dict[str, Any]:
    """The user's config as the engine uses it: their values over the defaults that apply under them."""
    stored = EngineConfig.objects.filter(user=user).values_list("data", flat=True).first()
    return resolve_engine_config(stored or {})


def config_set(*, user: Any, data: Any, partial: bool, ip: str | None = None) -> dict[str, Any]:
    """Replace (PUT) or change (PATCH) the user's config; returns it as `config_get` does.

    PUT stores exactly the keys given (missing keys take their defaults); PATCH lays the given keys over
    the stored ones (a `generator` replaces stored `levels` and the other way round; null unsets a key).
    Raises `ConfigError` naming every bad field; nothing is stored then.
    """
    if not isinstance(data, dict):
        raise ConfigError({"config": ["must be a JSON object"]})
    with transaction.atomic():
        row, _ = EngineConfig.objects.select_for_update().get_or_create(user=user)
        candidate = layer_engine_config(row.data or {}, data) if partial else dict(data)
        given = {key: value for key, value in candidate.items() if value is not None}
        parse_engine_config(given)
        row.data = _jsonable(given)
        row.save()
        audit(
            user=user,
            action="config_update",
            resource="engine_config",
            resource_id=row.pk,
            details={"keys": sorted(data.keys()), "partial": partial},
            ip=ip,
        )
    return resolve_engine_config(row.data)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    return value


def grid_for_preview(*, user: Any, config: Any) -> GridConfig:
    """The grid of `config` (a whole config, as PUT would take it), or of the user's stored config."""
    if config is None:
        _, grid = parse_engine_config(config_get(user=user))
        return grid
    if not isinstance(config, dict):
        raise ConfigError({"config": ["must be a JSON object"]})
    _, grid = parse_engine_config(config)
    return grid


def rules_for_preview(*, user: Any, exchange: str, symbol: str) -> MarketRules:
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
