"""Reads for exchanges: a user's configs, enabled configs, and market rules (Redis, then PostgreSQL)."""

from __future__ import annotations

import json
import re
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db.models import Q, QuerySet

from .models import ExchangeConfig, MarketRule
from .precision import MarketRules, MarketRulesError, to_decimal

RULES_CACHE_TTL_S = 2 * 3600
_NON_ALNUM = re.compile(r"[^A-Z0-9]")


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


def compact_symbol(raw: str) -> str:
    """``btc/usdt``, ``BTC-USDT``, ``BINANCE:BTCUSDT`` → ``BTCUSDT`` (for lookups only)."""
    text = raw.strip().upper()
    if ":" in text and "/" not in text:
        text = text.rsplit(":", 1)[-1]  # TradingView's EXCHANGE:TICKER
    return _NON_ALNUM.sub("", text)


def rules_cache_key(exchange_name: str, symbol: str) -> str:
    return f"exch:mr:{exchange_name}:{symbol.upper()}"


def rules_alias_key(exchange_name: str, alias: str) -> str:
    return f"exch:mra:{exchange_name}:{alias.upper()}"


def rules_to_json(rules: MarketRules) -> str:
    def text(value: Any) -> str | None:
        return None if value is None else str(value)

    return json.dumps(
        {
            "symbol": rules.symbol,
            "exchange_symbol": rules.exchange_symbol,
            "base": rules.base,
            "quote": rules.quote,
            "tick_size": text(rules.tick_size),
            "step_size": text(rules.step_size),
            "min_qty": text(rules.min_qty),
            "max_qty": text(rules.max_qty),
            "min_notional": text(rules.min_notional),
            "max_notional": text(rules.max_notional),
            "min_price": text(rules.min_price),
            "max_price": text(rules.max_price),
            "status": rules.status,
        }
    )


def rules_from_json(text: str) -> MarketRules:
    data = json.loads(text)
    for name in (
        "tick_size",
        "step_size",
        "min_qty",
        "max_qty",
        "min_notional",
        "max_notional",
        "min_price",
        "max_price",
    ):
        if data.get(name) is not None:
            data[name] = to_decimal(data[name], field=name)
    return MarketRules(**data)


def _cache_rules(exchange_name: str, rules: MarketRules) -> None:
    cache.set(rules_cache_key(exchange_name, rules.symbol), rules_to_json(rules), RULES_CACHE_TTL_S)


def market_rule_get(*, exchange_name: str, symbol: str) -> MarketRules | None:
    """Rules of one unified symbol (``BTC/USDT``) from Redis, else PostgreSQL; ``None`` when unknown."""
    cached = cache.get(rules_cache_key(exchange_name, symbol))
    if cached:
        return rules_from_json(cached)
    row = MarketRule.objects.filter(exchange_name=exchange_name, symbol__iexact=symbol.strip()).first()
    if row is None:
        return None
    rules = row.to_rules()
    _cache_rules(exchange_name, rules)
    return rules


def market_rule_resolve(*, exchange_name: str, raw: str) -> MarketRules | None:
    """Rules for a symbol written any common way (``BTC/USDT``, ``BTCUSDT``, ``btcusdt``, ``BTC-USDT``)."""
    text = raw.strip()
    if not text:
        return None
    alias = compact_symbol(text)
    symbol = cache.get(rules_alias_key(exchange_name, text)) or cache.get(rules_alias_key(exchange_name, alias))
    if symbol:
        rules = market_rule_get(exchange_name=exchange_name, symbol=symbol)
        if rules is not None:
            return rules
    rows = MarketRule.objects.filter(exchange_name=exchange_name)
    row = (
        rows.filter(symbol__iexact=text).first()
        or rows.filter(exchange_symbol__iexact=text).first()
        or rows.filter(Q(exchange_symbol__iexact=alias) | Q(compact_symbol=alias)).order_by("symbol").first()
    )
    if row is None:
        return None
    rules = row.to_rules()
    _cache_rules(exchange_name, rules)
    cache.set(rules_alias_key(exchange_name, alias), rules.symbol, RULES_CACHE_TTL_S)
    return rules


# exchange name → (loaded at, {alias: (symbol, exchange_symbol)}); see `market_symbol_resolve`.
_symbol_index: dict[str, tuple[float, dict[str, tuple[str, str]]]] = {}
SYMBOL_INDEX_TTL_S = 60.0


def market_symbol_index_clear(exchange_name: str | None = None) -> None:
    """Forget this process's symbol index (after a refresh; other processes reload within a minute)."""
    if exchange_name is None:
        _symbol_index.clear()
    else:
        _symbol_index.pop(exchange_name, None)


class NotCachedError(Exception):
    """The answer needs the database, and the caller asked for cached answers only."""


def _symbol_index_for(exchange_name: str, *, cached_only: bool = False) -> dict[str, tuple[str, str]]:
    loaded = _symbol_index.get(exchange_name)
    if loaded is not None and time.monotonic() - loaded[0] < SYMBOL_INDEX_TTL_S:
        return loaded[1]
    if cached_only:
        raise NotCachedError(exchange_name)
    index: dict[str, tuple[str, str]] = {}
    rows = MarketRule.objects.filter(exchange_name=exchange_name).order_by("symbol")
    for symbol, exchange_symbol, compact in rows.values_list("symbol", "exchange_symbol", "compact_symbol"):
        for alias in (symbol.upper(), exchange_symbol.upper(), compact):
            index.setdefault(alias, (symbol, exchange_symbol))
    _symbol_index[exchange_name] = (time.monotonic(), index)
    return index


def market_symbol_resolve(*, exchange_name: str, raw: str, cached_only: bool = False) -> tuple[str, str] | None:
    """(unified symbol, exchange symbol) for a ticker written any common way, as `market_rule_resolve`.

    The webhook asks this for every alert: the answer comes from a per-process index of the exchange's
    markets (one query a minute); a ticker the index does not know is looked up in the database.
    With `cached_only`, `NotCachedError` instead of any query (for a caller on an event loop).
    """
    text = raw.strip()
    if not text:
        return None
    index = _symbol_index_for(exchange_name, cached_only=cached_only)
    hit = index.get(text.upper()) or index.get(compact_symbol(text))
    if hit is not None:
        return hit
    if cached_only:
        raise NotCachedError(exchange_name)
    rules = market_rule_resolve(exchange_name=exchange_name, raw=text)
    return (rules.symbol, rules.exchange_symbol) if rules is not None else None


def market_rules_count(*, exchange_name: str) -> int:
    """How many markets of an exchange we hold rules for."""
    return MarketRule.objects.filter(exchange_name=exchange_name).count()


def market_rules_fallback(*, exchange_name: str, raw: str) -> MarketRules | None:
    """Rules from ``settings.MARKET_RULES_FALLBACKS[exchange][symbol]`` when the operator configured some.

    Each entry: ``{"tick_size", "step_size", "min_qty", "min_notional"}`` and optionally ``max_qty``,
    ``exchange_symbol``; keys are unified symbols (``BTC/USDT``).
    """
    table = (getattr(settings, "MARKET_RULES_FALLBACKS", None) or {}).get(exchange_name) or {}
    wanted = compact_symbol(raw)
    for symbol, entry in table.items():
        if compact_symbol(symbol) != wanted and symbol.upper() != raw.strip().upper():
            continue
        base, _, quote = symbol.partition("/")
        try:
            return MarketRules(
                symbol=symbol,
                exchange_symbol=str(entry.get("exchange_symbol") or f"{base}{quote}"),
                base=base,
                quote=quote,
                tick_size=to_decimal(entry["tick_size"], field="tick_size"),
                step_size=to_decimal(entry["step_size"], field="step_size"),
                min_qty=to_decimal(entry.get("min_qty", "0"), field="min_qty"),
                max_qty=to_decimal(entry["max_qty"], field="max_qty") if entry.get("max_qty") else None,
                min_notional=to_decimal(entry.get("min_notional", "0"), field="min_notional"),
                status="TRADING",
            )
        except (KeyError, ValueError, MarketRulesError):
            return None
    return None
