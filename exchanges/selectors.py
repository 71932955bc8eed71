"""Reads for exchanges: a user's configs, enabled configs, and market rules (from ``exchanges.rules``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import QuerySet

from . import rules
from .models import ExchangeConfig
from .precision import MarketRules, compact_symbol
from .rules import NotCachedError

__all__ = [
    "NotCachedError",
    "compact_symbol",
    "exchange_config_enabled_for",
    "exchange_config_get",
    "exchange_config_list",
    "exchange_configs_enabled",
    "market_rule_get",
    "market_rule_resolve",
    "market_rules_count",
    "market_rules_fallback",
    "market_symbol_index_clear",
    "market_symbol_resolve",
]


def exchange_config_list(*, user: Any) -> QuerySet[ExchangeConfig]:
    """The user's own exchange configs."""
    return ExchangeConfig.objects.filter(user=user).order_by("exchange_name")


def exchange_config_get(*, user: Any, exchange_name: str) -> ExchangeConfig | None:
    """The user's config for one exchange (``None`` when there is none)."""
    return ExchangeConfig.objects.filter(user=user, exchange_name=exchange_name.lower()).first()


def exchange_config_enabled_for(*, user: Any, exchange_name: str) -> ExchangeConfig | None:
    """The user's enabled config for an exchange named case-insensitively (``BINANCE`` → ``binance``)."""
    return ExchangeConfig.objects.filter(
        user=user, exchange_name__iexact=exchange_name.strip(), is_enabled=True
    ).first()


def exchange_configs_enabled() -> QuerySet[ExchangeConfig]:
    """Every enabled config of every user (for periodic validation and market rule refreshes)."""
    return ExchangeConfig.objects.filter(is_enabled=True).select_related("user").order_by("created_at")


# ------------------------------------------------------------------------------------------- market rules
# The public face of `exchanges.rules`, which owns market rules and their caches (see its docstring).


def market_rule_get(*, exchange_name: str, symbol: str) -> MarketRules | None:
    """Rules of one unified symbol (``BTC/USDT``); ``None`` when unknown."""
    return rules.market_rule_get(exchange_name=exchange_name, symbol=symbol)


def market_rules_get_many(*, markets: Sequence[tuple[str, str]]) -> dict[tuple[str, str], MarketRules]:
    """Rules of many (exchange, unified symbol) markets in a fixed number of reads; unknown ones left out."""
    return rules.market_rules_get_many(markets=markets)


def market_rule_resolve(*, exchange_name: str, raw: str) -> MarketRules | None:
    """Rules for a symbol written any common way (``BTC/USDT``, ``BTCUSDT``, ``btcusdt``, ``BTC-USDT``)."""
    return rules.market_rule_resolve(exchange_name=exchange_name, raw=raw)


def market_symbol_resolve(*, exchange_name: str, raw: str, cached_only: bool = False) -> tuple[str, str] | None:
    """(unified symbol, exchange symbol) for a ticker written any common way, from this process's index of
    the exchange's markets; with ``cached_only``, ``NotCachedError`` where the answer needs any I/O."""
    return rules.market_symbol_resolve(exchange_name=exchange_name, raw=raw, cached_only=cached_only)


def market_rules_count(*, exchange_name: str) -> int:
    """How many markets of an exchange we hold rules for."""
    return rules.market_rules_count(exchange_name=exchange_name)


def market_rules_fallback(*, exchange_name: str, raw: str) -> MarketRules | None:
    """Rules an operator configured in ``settings.MARKET_RULES_FALLBACKS`` for this symbol, if any."""
    return rules.market_rules_fallback(exchange_name=exchange_name, raw=raw)


def market_symbol_index_clear(exchange_name: str | None = None) -> None:
    """Forget this process's memory of market rules (all of it, or one exchange's)."""
    rules.market_rules_forget_local(exchange_name)
