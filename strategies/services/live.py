"""The live tick (docs/strategies.md#live): on each candle close, every enabled instance evaluates on the
stored candles and its signals go through the webhook's intake (`strategy_signal_receive`).

The tick is incremental: each process keeps the newest candles of every series it evaluates
(`CandleWindows`) and asks the store only for what closed since, in one statement for all series; an
instance is evaluated once per series and candle (a cache key per series remembers the last one).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pandas as pd
from django.core.cache import cache
from django.db import IntegrityError, transaction

from accounts.roles import user_may_trade
from exchanges.candles import rules as candle_rules
from exchanges.candles.selectors import FloatCandle, Series, candles_tails
from exchanges.candles.services import candles_sync
from exchanges.exceptions import ExchangeError
from exchanges.models import Candle
from positions.choices import GroupStatus
from positions.models import PositionGroup
from positions.services.intake import strategy_signal_receive

from ..choices import SignalAction
from ..library import Strategy, candles_frame, confirm_allows_entry, strategy_for
from ..models import StrategyInstance, StrategySignal
from ..params import SPECS
from ..rules import correlation_block
from . import strategy_health_check

logger = logging.getLogger(__name__)

# Candles kept per series: the largest warm-up the parameters allow (MACD slow 400: 4,202; RSI 200: 4,002).
MAX_WINDOW = 4300
CORRELATION_WINDOW = 100


class CandleWindows:
    """The newest candles of each series this process evaluates, topped up incrementally."""

    def __init__(self) -> None:
        self.rows: dict[Series, list[FloatCandle]] = {}

    def update(self, series: Iterable[Series], *, count: int) -> dict[Series, list[FloatCandle]]:
        wanted = list(dict.fromkeys(series))
        after = {key: self.rows[key][-1][0] for key in wanted if self.rows.get(key)}
        fresh = candles_tails(series=wanted, count=count, after_ms=after)
        for key in wanted:
            new = fresh.get(key, [])
            rows = self.rows[key] + new if key in after and len(new) < count else new
            self.rows[key] = rows[-count:]
        return {key: self.rows[key] for key in wanted}

    def clear(self) -> None:
        self.rows.clear()


WINDOWS = CandleWindows()


@dataclass
class Due:
    instance: StrategyInstance
    strategy: Strategy
    symbol: str
    timeframe: str
    open_ms: int

    @property
    def series(self) -> Series:
        return (self.instance.exchange_config.exchange_name, self.symbol, self.timeframe)


@dataclass
class TickResult:
    instances: int = 0
    series: int = 0
    evaluated: int = 0
    signals: list[dict[str, Any]] = field(default_factory=list)
    skipped: int = 0  # series whose newest closed candle is missing, stale or quarantined
    disabled: list[str] = field(default_factory=list)
    ms: float = 0.0


def _evaluated_key(instance: StrategyInstance) -> str:
    """One cache entry per instance: {"symbol|timeframe": open ms of the last candle evaluated}."""
    return f"strategies:evaluated:{instance.pk}"


def _series_name(due: Due) -> str:
    return f"{due.symbol}|{due.timeframe}"


def _due(instances: Sequence[StrategyInstance], now_ms: int) -> list[Due]:
    out: list[Due] = []
    for instance in instances:
        strategy = strategy_for(instance.kind, instance.params)
        for timeframe in instance.timeframes:
            open_ms = candle_rules.last_closed_open_ms(now_ms=now_ms, interval_ms=candle_rules.timeframe_ms(timeframe))
            out.extend(Due(instance, strategy, symbol, timeframe, open_ms) for symbol in instance.symbols)
    return out


def strategies_tick(
    *, now: datetime, sync: bool = True, instances: Sequence[StrategyInstance] | None = None
) -> TickResult:
    """One candle close (docs/strategies.md#live): for every enabled instance and each of its series
    whose newest candle has closed and was not evaluated yet, sync the store (`sync`), evaluate on the
    stored candles, and send each signal through the intake. Then check every instance's health."""
    started = time.perf_counter()
    result = TickResult()
    if instances is None:
        instances = list(StrategyInstance.objects.filter(enabled=True).select_related("exchange_config", "user"))
    instances = [item for item in instances if item.enabled and user_may_trade(user=item.user)]
    result.instances = len(instances)
    now_ms = int(now.timestamp() * 1000)
    due = _due(instances, now_ms)
    done: dict[str, dict[str, int]] = cache.get_many([_evaluated_key(item) for item in instances])
    due = [item for item in due if done.get(_evaluated_key(item.instance), {}).get(_series_name(item)) != item.open_ms]
    series = {item.series for item in due}
    confirm = {
        (item.instance.exchange_config.exchange_name, item.symbol, item.instance.confirm_timeframe)
        for item in due
        if item.instance.confirm_timeframe
    }
    result.series = len(series)
    # Enough candles for every warm-up, the confirm timeframe's RSI(14) and the correlation guard.
    window = min(MAX_WINDOW, max([item.strategy.warmup for item in due] + [CORRELATION_WINDOW + 1, 20 * 14 + 2]))
    if sync:
        for exchange_name, symbol, timeframe in sorted(series | confirm):
            try:
                candles_sync(exchange_name=exchange_name, symbol=symbol, timeframe=timeframe, now=now, warmup=window)
            except ExchangeError as exc:
                logger.warning("candle sync of %s %s %s failed: %s", exchange_name, symbol, timeframe, exc)
    rows = WINDOWS.update(series | confirm, count=window)
    frames: dict[Series, pd.DataFrame] = {}
    wanted: list[tuple[Due, str]] = []
    evaluated = {key: dict(value) for key, value in done.items()}
    batches: dict[tuple[str, tuple[tuple[str, int | float], ...]], list[Due]] = {}
    for item in due:
        candles = rows.get(item.series) or []
        if not candles or candles[-1][0] != item.open_ms:
            # Not stored yet (a stale feed) or quarantined: never traded on; looked at again next tick.
            result.skipped += 1
            continue
        evaluated.setdefault(_evaluated_key(item.instance), {})[_series_name(item)] = item.open_ms
        if item.series not in frames:
            frames[item.series] = candles_frame(candles)
        result.evaluated += 1
        # Every series of one strategy (kind and params) is evaluated in one pass (`last_many`).
        batches.setdefault((item.strategy.kind, tuple(sorted(item.strategy.params.items()))), []).append(item)
    for batch in batches.values():
        answers = batch[0].strategy.last_many([frames[item.series] for item in batch])
        for item, (entry, exit_) in zip(batch, answers, strict=True):
            if entry:
                wanted.append((item, SignalAction.ENTRY))
            elif exit_:
                wanted.append((item, SignalAction.EXIT))
    cache.set_many(evaluated, timeout=7 * 86400)
    for item, action in wanted:
        reason = _entry_block(item, rows) if action == SignalAction.ENTRY else None
        result.signals.append(_submit(item, action, blocked=reason, now=now))
    for instance in instances:
        if strategy_health_check(instance=instance, now=now):
            result.disabled.append(str(instance.pk))
    result.ms = (time.perf_counter() - started) * 1000
    return result


def _entry_block(item: Due, rows: Mapping[Series, list[FloatCandle]]) -> str | None:
    """Why an entry signal is not sent: the confirm timeframe disagrees, or the correlation guard."""
    instance = item.instance
    exchange_name = instance.exchange_config.exchange_name
    if instance.confirm_timeframe:
        higher = rows.get((exchange_name, item.symbol, instance.confirm_timeframe)) or []
        if not higher or not confirm_allows_entry(candles_frame(higher)):
            return f"not confirmed on {instance.confirm_timeframe} (RSI 14 is not below 50)"
    if instance.correlation_guard:
        open_symbols = set(
            PositionGroup.objects.filter(
                user_id=instance.user_id,
                exchange_config=instance.exchange_config,
                status__in=[s for s in GroupStatus.values if s not in (GroupStatus.CLOSED, GroupStatus.FAILED)],
            )
            .exclude(symbol=item.symbol)
            .values_list("symbol", flat=True)
        )
        if open_symbols:
            keys = [(exchange_name, symbol, item.timeframe) for symbol in open_symbols]
            tails = WINDOWS.update([*keys, item.series], count=max(CORRELATION_WINDOW + 1, len(rows[item.series])))
            closes = {key[1]: [row[4] for row in tails[key]] for key in keys}
            mine = [row[4] for row in tails[item.series] if row[0] <= item.open_ms]
            return correlation_block(mine, closes, max_correlation=float(instance.max_correlation))
    return None


def _plain(value: Decimal) -> Decimal:
    """Without the column's trailing zeros, never in exponent form (93656.180000 -> 93656.18, 100 -> 100)."""
    normalized = value.normalize()
    exponent = normalized.as_tuple().exponent
    return normalized.quantize(Decimal(1)) if isinstance(exponent, int) and exponent > 0 else normalized


def _close_price(item: Due) -> Decimal:
    """The stored (Decimal) close of the candle the signal is on."""
    return _plain(
        Candle.objects.get(
            exchange_name=item.instance.exchange_config.exchange_name,
            symbol=item.symbol,
            timeframe=item.timeframe,
            open_time=datetime.fromtimestamp(item.open_ms / 1000, tz=UTC),
        ).close
    )


def strategy_signal_body(
    *,
    instance: StrategyInstance,
    symbol: str,
    timeframe: str,
    open_ms: int,
    action: str,
    price: Decimal,
    sent_at: datetime,
) -> dict[str, Any]:
    """The alert a strategy signal is sent as: the webhook's format (docs/webhook.md#body), stamped with
    the tick that sends it (`sent_at`: the intake's stale-alert guard reads it, as it reads TradingView's
    `{{timenow}}`; the candle's close would look stale for a long timeframe evaluated late), with a trade
    id per instance, series, candle and action (the intake's dedupe key)."""
    entry = action == SignalAction.ENTRY
    strategy = SPECS[instance.kind]
    return {
        "secret": instance.user.webhook_secret,
        "source": "strategy",
        "timestamp": sent_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "tv": {
            "exchange": instance.exchange_config.exchange_name,
            "symbol": symbol,
            "timeframe": timeframe,
            "action": "buy" if entry else "sell",
            "entry_price": str(price),
            "close_price": str(price),
        },
        "strategy_info": {
            "trade_id": f"{instance.pk}:{symbol}:{timeframe}:{open_ms}:{action}",
            "alert_name": f"{instance.kind} strategy",
            "alert_message": strategy.entry_rule if entry else strategy.exit_rule,
        },
        "execution_intent": {
            "type": "signal" if entry else "exit",
            "side": "buy" if entry else "sell",
            "strategy": "grid",
        },
    }


def _submit(item: Due, action: str, *, blocked: str | None, now: datetime) -> dict[str, Any]:
    """Send one signal through the intake (unless `blocked`) and record it; evaluating the same candle
    again finds the record and sends nothing."""
    instance = item.instance
    price = _close_price(item)
    candle_open = datetime.fromtimestamp(item.open_ms / 1000, tz=UTC)
    try:
        with transaction.atomic():  # a savepoint: a second evaluation of this candle collides here
            record = StrategySignal.objects.create(
                instance=instance,
                symbol=item.symbol,
                timeframe=item.timeframe,
                candle_open=candle_open,
                action=action,
                price=price,
                outcome="blocked" if blocked else "",
                reason=blocked or "",
            )
    except IntegrityError:
        return {"symbol": item.symbol, "timeframe": item.timeframe, "action": action, "outcome": "already sent"}
    if blocked is None:
        body = strategy_signal_body(
            instance=instance,
            symbol=item.symbol,
            timeframe=item.timeframe,
            open_ms=item.open_ms,
            action=action,
            price=price,
            sent_at=now,
        )
        answer = strategy_signal_receive(user_id=str(instance.user_id), body=body)
        record.http_status = answer.status
        record.outcome = str(answer.body.get("classification") or answer.body.get("status") or answer.body.get("error"))
        record.reason = str(answer.body.get("reason") or answer.body.get("detail") or answer.body.get("message") or "")[
            :300
        ]
        record.signal_id = answer.body.get("signal_id")
        record.group_id = answer.body.get("group_id")
        record.save(update_fields=["http_status", "outcome", "reason", "signal_id", "group_id"])
    return {
        "instance": str(instance.pk),
        "symbol": item.symbol,
        "timeframe": item.timeframe,
        "action": action,
        "price": str(price),
        "outcome": record.outcome,
        "reason": record.reason,
        "group_id": str(record.group_id) if record.group_id else None,
    }
