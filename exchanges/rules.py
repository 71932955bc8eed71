"""Market rules: their one owner. Storage, every cache of them, and their refresh live here.

A market's rules (``exchanges.precision.MarketRules``: tick, step, minimums, status; see
docs/engine.md#precision) are kept in three places, slowest first:

1. PostgreSQL, ``MarketRule`` rows: the record. Written only by ``market_rules_store``.
2. Redis (Django's cache), shared by every process: each market's rules and each spelling of its symbol
   (``BTC/USDT``, ``BTCUSDT``, ...) → its unified symbol, for two hours; and one **version** token per
   exchange, replaced by every store.
3. This process's memory, one ``_Memory`` per exchange: the rules and spellings looked up so far, the
   whole symbol index (the webhook resolves every alert's ticker from it on daphne's event loop, without
   any I/O) and the number of markets.

Invalidation reaches every process through the version. A process trusts its memory of an exchange for
``VERSION_CHECK_INTERVAL_S`` after it last compared versions; the next read after that compares (one
Redis GET) and forgets that exchange when the version differs. So a store is seen everywhere within a
second, while a web process at 1000 alerts a second pays one GET a second, not one per alert. The
storing process forgets at once. A store bumps the version only after its transaction commits, so a
process that reloads on the new version reads the new rows.

Refresh: ``market_rules_refresh(exchange_name=)`` loads every market through a public adapter and stores
it (the hourly ``exchanges.refresh_market_rules`` task, the admin action, ``seed_demo``). An adapter that
meets a symbol nobody knows loads its exchange's markets on demand, at most once a minute per exchange
(``STORE.find``), then falls back to ``settings.MARKET_RULES_FALLBACKS``.

Adapters never import this module: they load and return rules, and ``exchanges.services.adapter_for``
hands them ``STORE`` as their ``MarketRulesSource``. Other apps read through ``exchanges.selectors``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Upper
from django.utils import timezone
from redis.exceptions import RedisError

from accounts.logs import log_info, log_warning

from .adapters.base import MarketRulesLoader
from .adapters.factory import public_adapter
from .exceptions import (
    CircuitOpenError,
    ExchangeError,
    MarketRulesMissingError,
    SymbolNotFoundError,
    TemporaryExchangeError,
)
from .models import ExchangeConfig, MarketRule
from .precision import (
    MarketRules,
    MarketRulesError,
    compact_symbol,
    market_rules_from_json,
    market_rules_to_json,
    to_decimal,
)

# How long a process answers from its memory before it compares its version of an exchange's rules
# with Redis's. Rules change hourly at most; a second bounds how long a process may use replaced rules
# while keeping the webhook path (p99 < 100 ms at 1000 alerts/s) to one Redis GET per second per process.
VERSION_CHECK_INTERVAL_S = 1.0
REDIS_TTL_S = 2 * 3600
# How long after one on-demand load of an exchange's markets another may run (any process).
ON_DEMAND_REFRESH_INTERVAL_S = 60

_STORED_FIELDS = [
    "exchange_symbol",
    "compact_symbol",
    "base",
    "quote",
    "tick_size",
    "step_size",
    "min_qty",
    "max_qty",
    "min_notional",
    "max_notional",
    "min_price",
    "max_price",
    "status",
    "updated_at",
]


class NotCachedError(Exception):
    """The answer needs a database query or a Redis round trip, and the caller asked for memory only."""


def _rules_key(exchange_name: str, symbol: str) -> str:
    return f"exch:mr:{exchange_name}:{symbol.upper()}"


def _alias_key(exchange_name: str, alias: str) -> str:
    return f"exch:mra:{exchange_name}:{alias.upper()}"


def _version_key(exchange_name: str) -> str:
    return f"exch:mr-version:{exchange_name}"


# ------------------------------------------------------------------------------------ process memory


@dataclass(eq=False)
class _Memory:
    """What this process holds of one exchange's rules, valid while Redis's version is ``version``."""

    version: str | None
    checked_at: float
    rules: dict[str, MarketRules] = field(default_factory=dict)  # unified symbol, upper-case
    spellings: dict[str, str] = field(default_factory=dict)  # a spelling, upper-case → unified symbol
    index: dict[str, tuple[str, str]] | None = None  # every spelling → (symbol, exchange symbol)
    count: int | None = None


_memory: dict[str, _Memory] = {}


def market_rules_forget_local(exchange_name: str | None = None) -> None:
    """Forget what this process holds of one exchange's rules (or of all); other processes are told by
    the version a store writes, not by this."""
    if exchange_name is None:
        _memory.clear()
    else:
        _memory.pop(exchange_name, None)


def _memory_of(exchange_name: str, *, cached_only: bool = False) -> _Memory:
    """This process's memory of an exchange, compared with Redis's version when the last comparison is
    older than VERSION_CHECK_INTERVAL_S. With ``cached_only``, ``NotCachedError`` instead of comparing."""
    memory = _memory.get(exchange_name)
    now = time.monotonic()
    if memory is not None and now - memory.checked_at < VERSION_CHECK_INTERVAL_S:
        return memory
    if cached_only:
        raise NotCachedError(exchange_name)
    try:
        version = cache.get(_version_key(exchange_name))
    except RedisError:
        if memory is not None:  # Redis is down: what we hold is still the best answer; ask again later
            memory.checked_at = now
            return memory
        version = None
    if memory is None or memory.version != version:
        memory = _Memory(version=version, checked_at=now)  # version read before any rule is
        _memory[exchange_name] = memory
    else:
        memory.checked_at = now
    return memory


# -------------------------------------------------------------------------------------------- reads


def market_rule_get(*, exchange_name: str, symbol: str) -> MarketRules | None:
    """Rules of one unified symbol (``BTC/USDT``): memory, Redis, then PostgreSQL; ``None`` when unknown."""
    memory = _memory_of(exchange_name)
    wanted = symbol.strip().upper()
    found = memory.rules.get(wanted)
    if found is not None:
        return found
    text = cache.get(_rules_key(exchange_name, wanted))
    if text:
        found = market_rules_from_json(text)
    else:
        row = MarketRule.objects.filter(exchange_name=exchange_name, symbol__iexact=wanted).first()
        if row is None:
            return None
        found = row.to_rules()
        cache.set(_rules_key(exchange_name, found.symbol), market_rules_to_json(found), REDIS_TTL_S)
    memory.rules[wanted] = found
    return found


def market_rules_get_many(*, markets: Sequence[tuple[str, str]]) -> dict[tuple[str, str], MarketRules]:
    """`market_rule_get` of many (exchange, unified symbol) markets: memory, then one Redis read and one
    query for the rest, whatever their number (a page of hundreds of pairs). Unknown markets are left out."""
    found: dict[tuple[str, str], MarketRules] = {}
    missing: dict[tuple[str, str], tuple[str, str]] = {}  # (exchange, SYMBOL) -> as asked
    for exchange_name, symbol in markets:
        wanted = symbol.strip().upper()
        rules = _memory_of(exchange_name).rules.get(wanted)
        if rules is not None:
            found[(exchange_name, symbol)] = rules
        else:
            missing[(exchange_name, wanted)] = (exchange_name, symbol)
    if not missing:
        return found
    keys = {_rules_key(exchange_name, wanted): (exchange_name, wanted) for exchange_name, wanted in missing}
    loaded: dict[tuple[str, str], MarketRules] = {
        keys[key]: market_rules_from_json(text) for key, text in cache.get_many(list(keys)).items() if text
    }
    unread = [market for market in missing if market not in loaded]
    if unread:
        rows = MarketRule.objects.annotate(upper_symbol=Upper("symbol")).filter(
            exchange_name__in={exchange_name for exchange_name, _ in unread},
            upper_symbol__in={wanted for _, wanted in unread},
        )
        for row in rows:
            market = (row.exchange_name, row.symbol.upper())
            if market in missing and market not in loaded:
                loaded[market] = rules = row.to_rules()
                cache.set(_rules_key(row.exchange_name, rules.symbol), market_rules_to_json(rules), REDIS_TTL_S)
    for (exchange_name, wanted), rules in loaded.items():
        _memory_of(exchange_name).rules[wanted] = rules
        found[missing[(exchange_name, wanted)]] = rules
    return found


def market_rule_resolve(*, exchange_name: str, raw: str) -> MarketRules | None:
    """Rules for a symbol written any common way (``BTC/USDT``, ``BTCUSDT``, ``btcusdt``, ``BTC-USDT``)."""
    text = raw.strip()
    if not text:
        return None
    memory = _memory_of(exchange_name)
    spelled = text.upper()
    symbol = memory.spellings.get(spelled)
    if symbol is None:
        alias = compact_symbol(text)
        keys = [_alias_key(exchange_name, text), _alias_key(exchange_name, alias)]
        found_keys = cache.get_many(keys)
        symbol = next((found_keys[key] for key in keys if key in found_keys), None)
    if symbol is not None:
        rules = market_rule_get(exchange_name=exchange_name, symbol=symbol)
        if rules is not None:
            memory.spellings[spelled] = rules.symbol
            return rules
    alias = compact_symbol(text)
    rows = MarketRule.objects.filter(exchange_name=exchange_name)
    row = (
        rows.filter(symbol__iexact=text).first()
        or rows.filter(exchange_symbol__iexact=text).first()
        or rows.filter(Q(exchange_symbol__iexact=alias) | Q(compact_symbol=alias)).order_by("symbol").first()
    )
    if row is None:
        return None
    rules = row.to_rules()
    cache.set_many(
        {
            _rules_key(exchange_name, rules.symbol): market_rules_to_json(rules),
            _alias_key(exchange_name, alias): rules.symbol,
        },
        REDIS_TTL_S,
    )
    memory.rules[rules.symbol.upper()] = rules
    memory.spellings[spelled] = rules.symbol
    return rules


def _symbol_index_load(exchange_name: str) -> dict[str, tuple[str, str]]:
    index: dict[str, tuple[str, str]] = {}
    rows = MarketRule.objects.filter(exchange_name=exchange_name).order_by("symbol")
    for symbol, exchange_symbol, compact in rows.values_list("symbol", "exchange_symbol", "compact_symbol"):
        for alias in (symbol.upper(), exchange_symbol.upper(), compact):
            index.setdefault(alias, (symbol, exchange_symbol))
    return index


def market_symbol_resolve(*, exchange_name: str, raw: str, cached_only: bool = False) -> tuple[str, str] | None:
    """(unified symbol, exchange symbol) for a ticker written any common way, as ``market_rule_resolve``.

    The webhook asks this for every alert: the answer comes from this process's index of the exchange's
    markets (one query per version of the rules); a ticker the index does not know is looked up as
    ``market_rule_resolve`` does. With ``cached_only``, ``NotCachedError`` instead of any query or Redis
    round trip (for a caller on an event loop, which then asks again from a thread): when the index is
    not loaded, is due for a version comparison, or does not know the ticker.
    """
    text = raw.strip()
    if not text:
        return None
    memory = _memory_of(exchange_name, cached_only=cached_only)
    index = memory.index
    if index is None:
        if cached_only:
            raise NotCachedError(exchange_name)
        index = memory.index = _symbol_index_load(exchange_name)
    hit = index.get(text.upper()) or index.get(compact_symbol(text))
    if hit is not None:
        return hit
    if cached_only:
        raise NotCachedError(exchange_name)
    rules = market_rule_resolve(exchange_name=exchange_name, raw=text)
    return (rules.symbol, rules.exchange_symbol) if rules is not None else None


def market_rules_count(*, exchange_name: str) -> int:
    """How many markets of an exchange we hold rules for."""
    memory = _memory_of(exchange_name)
    if memory.count is None:
        memory.count = MarketRule.objects.filter(exchange_name=exchange_name).count()
    return memory.count


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


# ------------------------------------------------------------------------------------------- writes


def _version_bump(exchange_name: str) -> None:
    cache.set(_version_key(exchange_name), uuid.uuid4().hex, timeout=None)
    market_rules_forget_local(exchange_name)


def market_rules_store(*, exchange_name: str, rules: Sequence[MarketRules], prune: bool = True) -> int:
    """Upsert an exchange's market rules into PostgreSQL and Redis, drop markets it no longer lists
    (``prune``), and tell every process: a new version once the transaction commits."""
    now = timezone.now()
    rows = [
        MarketRule(
            exchange_name=exchange_name,
            symbol=item.symbol,
            exchange_symbol=item.exchange_symbol,
            compact_symbol=compact_symbol(item.base + item.quote),
            base=item.base,
            quote=item.quote,
            tick_size=item.tick_size,
            step_size=item.step_size,
            min_qty=item.min_qty,
            max_qty=item.max_qty,
            min_notional=item.min_notional,
            max_notional=item.max_notional,
            min_price=item.min_price,
            max_price=item.max_price,
            status=item.status,
            updated_at=now,
        )
        for item in rules
    ]
    with transaction.atomic():
        MarketRule.objects.bulk_create(
            rows,
            batch_size=500,
            update_conflicts=True,
            unique_fields=["exchange_name", "symbol"],
            update_fields=_STORED_FIELDS,
        )
        if prune and rows:
            MarketRule.objects.filter(exchange_name=exchange_name).exclude(symbol__in=[r.symbol for r in rows]).delete()
    entries: dict[str, str] = {}
    for item in rules:
        entries[_rules_key(exchange_name, item.symbol)] = market_rules_to_json(item)
        for alias in {item.symbol, item.exchange_symbol, compact_symbol(item.base + item.quote)}:
            entries[_alias_key(exchange_name, alias)] = item.symbol
    cache.set_many(entries, REDIS_TTL_S)
    market_rules_forget_local(exchange_name)  # this connection sees the rows already, committed or not
    # Outside a transaction this runs at once; inside one, only a commit makes the rows others can read.
    transaction.on_commit(lambda: _version_bump(exchange_name))
    log_info(
        "PRECISION",
        f"market rules of {exchange_name} refreshed: {len(rows)} markets",
        details={"exchange": exchange_name, "markets": len(rows)},
    )
    return len(rows)


def market_rules_refresh(*, exchange_name: str) -> int:
    """Load an exchange's markets (a public call) and store them; returns how many were stored."""
    adapter = public_adapter(exchange_name)
    try:
        loaded = adapter.load_market_rules()
    finally:
        adapter.close()
    return market_rules_store(exchange_name=exchange_name, rules=loaded)


def market_rules_refresh_all() -> dict[str, Any]:
    """Refresh every exchange that an enabled config uses (the hourly ``exchanges.refresh_market_rules``)."""
    names = sorted(set(ExchangeConfig.objects.filter(is_enabled=True).values_list("exchange_name", flat=True)))
    results: dict[str, Any] = {}
    for name in names:
        try:
            results[name] = market_rules_refresh(exchange_name=name)
        except ExchangeError as exc:
            results[name] = f"failed: {exc}"
            log_warning("PRECISION", f"market rules of {name} not refreshed: {exc}", details={"exchange": name})
    return results


# ----------------------------------------------------------------------------- the adapters' source


class StoredMarketRules:
    """The ``MarketRulesSource`` of the engine's adapters: this module's reads, and on a miss one load of
    the exchange's markets (at most once a minute per exchange, across processes), then the fallbacks."""

    def find(self, *, exchange_name: str, raw: str, exact: bool, load: MarketRulesLoader) -> MarketRules:
        found = (
            market_rule_get(exchange_name=exchange_name, symbol=raw)
            if exact
            else market_rule_resolve(exchange_name=exchange_name, raw=raw)
        )
        if found is not None:
            return found
        refresh_error: Exception | None = None
        if cache.add(f"exch:mr-refresh:{exchange_name}", 1, ON_DEMAND_REFRESH_INTERVAL_S):
            try:
                loaded = load()
            except (TemporaryExchangeError, CircuitOpenError) as exc:
                refresh_error = exc
            else:
                market_rules_store(exchange_name=exchange_name, rules=loaded)
                found = (
                    market_rule_get(exchange_name=exchange_name, symbol=raw)
                    if exact
                    else market_rule_resolve(exchange_name=exchange_name, raw=raw)
                )
                if found is not None:
                    return found
        fallback = market_rules_fallback(exchange_name=exchange_name, raw=raw)
        if fallback is not None:
            return fallback
        if refresh_error is not None or market_rules_count(exchange_name=exchange_name) == 0:
            reason = f": {refresh_error}" if refresh_error is not None else ""
            raise MarketRulesMissingError(
                f"No market rules for {raw} on {exchange_name} (could not load them{reason}); orders are "
                "blocked until they load or a fallback is configured in MARKET_RULES_FALLBACKS.",
                exchange=exchange_name,
                operation="market_rules",
            )
        raise SymbolNotFoundError(f"{exchange_name} has no market {raw}", exchange=exchange_name)

    def store(self, *, exchange_name: str, rules: Sequence[MarketRules]) -> int:
        return market_rules_store(exchange_name=exchange_name, rules=rules)


STORE = StoredMarketRules()
