"""The execution pool and the waiting queue (docs/engine.md#pool-and-queue): the statements the webhook
intake runs, and the services that promote, remove and delete queued signals.

The rules (room in the pool, room in the queue, promotion order) are `positions.rules.pool`. Whatever
depends on the pool is decided under one lock per user, taken by the same statement (`USER_LOCK`) in
the intake and in promotion, so a new entry and a promotion can never both take the last slot.
"""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.logs import audit, log_info, log_warning
from accounts.models import User
from core import sql
from exchanges.exceptions import ExchangeError
from exchanges.services import adapter_for

from .. import jobs
from ..choices import OPEN_GROUP_STATUSES, ProcessingStatus
from ..config import effective_config, engine_setting
from ..events import Event, event, publish_events
from ..grid import capital_for_pyramid
from ..hooks import GUARD_REFUSED, engine_event_emit
from ..models import EngineConfig, PositionGroup, QueuedSignal, WebhookSignal
from ..rules.guards import GuardRefusal, guard_settings, new_group_refusal
from ..rules.intake import open_group_plan
from ..rules.pool import pool_has_room, queue_expired, queue_rank
from ..webhook import parse_signal
from . import guards  # a module, not its names: guards -> orders -> state -> queue imports in a circle
from .opening import group_insert


@functools.cache
def user_lock_statement() -> str:
    """Lock the user's row while its pool is decided; no row when the user is inactive.

    NO KEY UPDATE, not UPDATE: a worker that holds one of this user's group rows may insert rows that
    reference the user (logs) and must not wait for us while we wait for that group.
    """
    return f"SELECT 1 AS locked FROM {sql.table(User)} WHERE id = %s AND is_active FOR NO KEY UPDATE"


@functools.cache
def pool_used_statement() -> str:
    """``SELECT count(*)`` of the groups holding a slot of the user bound to its one parameter: every
    group that is not closed or failed (pyramids take no extra slot)."""
    return (
        f"SELECT count(*) FROM {sql.table(PositionGroup)}"
        f" WHERE user_id = %s AND status IN ({sql.literals(OPEN_GROUP_STATUSES)})"
    )


@functools.cache
def queue_state_statement() -> str:
    """The user's queued signals and whether the identity bound to the last five parameters (user,
    exchange config, symbol, timeframe, side) is one of them, as two columns: `queued`, `queued_here`."""
    queue = sql.table(QueuedSignal)
    return (
        f"(SELECT count(*) FROM {queue} WHERE user_id = %s) AS queued,"
        f" EXISTS (SELECT 1 FROM {queue} WHERE user_id = %s AND exchange_config_id = %s AND symbol = %s"
        " AND timeframe = %s AND side = %s) AS queued_here"
    )


def queue_upsert_statement(
    *,
    user_id: uuid.UUID,
    signal_id: uuid.UUID,
    exchange_config_id: uuid.UUID,
    symbol: str,
    timeframe: str,
    side: str,
    entry_price: Decimal | None,
) -> sql.Step:
    """Queue a new-group signal, or replace the identity's queued one (new signal and price, count + 1).
    Its row's `replacement_count` says which. Admission was decided under the user's lock."""
    statement, params = sql.insert_statement(
        QueuedSignal,
        {
            "id": uuid.uuid4(),
            "user_id": user_id,
            "exchange_config_id": exchange_config_id,
            "signal_id": signal_id,
            "symbol": symbol,
            "timeframe": timeframe,
            "side": side,
            "entry_price": entry_price,
        },
    )
    return (
        statement.replace(sql.table(QueuedSignal), sql.table(QueuedSignal) + " AS q", 1)
        + " ON CONFLICT (user_id, exchange_config_id, symbol, timeframe, side) DO UPDATE"
        " SET signal_id = EXCLUDED.signal_id, entry_price = EXCLUDED.entry_price,"
        " replacement_count = q.replacement_count + 1, updated_at = EXCLUDED.updated_at"
        " RETURNING replacement_count",
        params,
    )


def queue_remove_statement(
    *, user_id: Any, exchange_config_id: Any, symbol: str, timeframe: str, side: str
) -> sql.Step:
    """Drop the queued signal of an identity; it returns a row when there was one."""
    return (
        f"DELETE FROM {sql.table(QueuedSignal)} WHERE user_id = %s AND exchange_config_id = %s AND symbol = %s"
        " AND timeframe = %s AND side = %s RETURNING 1 AS removed",
        [user_id, exchange_config_id, symbol, timeframe, side],
    )


def queue_event(user_id: Any, symbol: str | None = None) -> Event:
    """`queue.updated`: clients re-read `/api/queue` (no count query on the webhook path)."""
    return event(user_id, "queue.updated", {"symbol": symbol})


def pool_used(*, user_id: Any) -> int:
    cur = sql.cursor()
    cur.execute(pool_used_statement(), [user_id])
    row = cur.fetchone()
    assert row is not None
    return int(row["count"])


def queue_remove(*, user_id: Any, exchange_config_id: Any, symbol: str, timeframe: str, side: str) -> bool:
    """Drop the queued signal of an identity (an exit for it arrived, its group is closing);
    `queue.updated` once committed."""
    cur = sql.cursor()
    cur.execute(
        *queue_remove_statement(
            user_id=user_id, exchange_config_id=exchange_config_id, symbol=symbol, timeframe=timeframe, side=side
        )
    )
    if cur.fetchone() is None:
        return False
    publish_events([queue_event(user_id)])
    return True


def queue_delete(*, entry: QueuedSignal, actor: Any, ip: str | None = None) -> None:
    """An operator or the trader removes a queued signal."""
    with transaction.atomic():
        audit(
            user=actor,
            action="queue_remove",
            resource="queued_signal",
            resource_id=entry.pk,
            details={"symbol": entry.symbol, "timeframe": entry.timeframe},
            ip=ip,
        )
        entry.delete()
        publish_events([queue_event(entry.user_id)])


def queue_promote_after_commit(*, user_id: Any) -> None:
    """A slot was freed: promote once the freeing transaction commits."""
    jobs.enqueue_after_commit(jobs.PROMOTE_QUEUE, str(user_id))


def queue_rules(*, user_id: Any) -> list[str]:
    """The user's `queue_priority_rules`, in order (docs/engine.md#pool-and-queue)."""
    stored = EngineConfig.objects.filter(user_id=user_id).values_list("data", flat=True).first()
    return list(engine_setting(stored or {}, "queue_priority_rules"))


def queue_prices(*, entries: list[QueuedSignal]) -> dict[str, Decimal]:
    """Current prices of the queued symbols: one batched ticker request per exchange config, never one per
    entry. A market without a price ranks as no loss (`rules.pool.queued_loss_percent`)."""
    by_config: dict[Any, list[QueuedSignal]] = {}
    for entry in entries:
        by_config.setdefault(entry.exchange_config_id, []).append(entry)
    prices: dict[str, Decimal] = {}
    for members in by_config.values():
        try:
            tickers = adapter_for(members[0].exchange_config).fetch_tickers(sorted({e.symbol for e in members}))
        except ExchangeError as exc:
            log_warning("RISK", f"queue: no prices from {members[0].exchange_config.exchange_name}: {exc}")
            continue
        prices.update({symbol: t.last for symbol, t in tickers.items() if t.last})
    return prices


def queue_continuing(*, user_id: Any) -> set[tuple[str, str]]:
    """(symbol, timeframe) of the user's open groups: a queued signal of one of them continues it."""
    rows = PositionGroup.objects.filter(user_id=user_id, status__in=OPEN_GROUP_STATUSES).values_list(
        "symbol", "timeframe"
    )
    return {(symbol, timeframe) for symbol, timeframe in rows}


def queue_ordered(
    *, user: Any, prices: dict[str, Decimal] | None = None, fetch_prices: bool = False
) -> list[QueuedSignal]:
    """The user's queue in promotion order (`rules.pool.queue_rank` by the user's `queue_priority_rules`);
    with `fetch_prices`, current prices are asked for when `deepest_loss` ranks and none are given."""
    user_id = getattr(user, "pk", user)
    entries = list(QueuedSignal.objects.filter(user_id=user_id).select_related("signal", "exchange_config"))
    rules = queue_rules(user_id=user_id)
    if prices is None and fetch_prices and entries and "deepest_loss" in rules:
        prices = queue_prices(entries=entries)
    return queue_rank(entries, prices or {}, rules, queue_continuing(user_id=user_id))


def queue_expire(*, user_id: Any, now: datetime | None = None) -> int:
    """Drop the user's queued signals older than `queue_max_age_minutes`, each with a log line; one
    `queue.updated` event. Returns how many."""
    now = now or timezone.now()
    stored = EngineConfig.objects.filter(user_id=user_id).values_list("data", flat=True).first()
    max_age = engine_setting(stored or {}, "queue_max_age_minutes")
    expired = [
        entry
        for entry in QueuedSignal.objects.filter(user_id=user_id)
        if queue_expired(queued_at=entry.queued_at, now=now, max_age_minutes=max_age)
    ]
    for entry in expired:
        log_info(
            "RISK",
            f"Queued {entry.symbol} {entry.timeframe} expired after {max_age} min (queue_max_age_minutes)",
            user=user_id,
            details={"signal_id": str(entry.signal_id), "queued_at": entry.queued_at.isoformat()},
        )
        entry.delete()
    if expired:
        publish_events([queue_event(user_id)])
    return len(expired)


def queue_expire_all(*, now: datetime | None = None) -> int:
    """`queue_expire` for every user with queued signals (the periodic sweep)."""
    users = QueuedSignal.objects.values_list("user_id", flat=True).distinct()
    return sum(queue_expire(user_id=user_id, now=now) for user_id in list(users))


def queue_promote(
    *,
    user_id: Any,
    prices: dict[str, Decimal] | None = None,
    force: bool = False,
    entry_id: Any = None,
    actor: Any = None,
    refusals: dict[str, str] | None = None,
) -> list[str]:
    """Open groups for queued signals while the pool has room (or once, ignoring the cap, with force).

    Each entry is admitted by the `max_open_groups` of its own effective config (its symbol's and
    timeframe's overrides included), as the intake admits a new entry, and by the same guards
    (`rules.guards.new_group_refusal`: pause, daily loss, cooldown, exposure cap, on the state now). One a
    guard still refuses stays queued with the reason (`blocked_reason`, a log line and a `guard_refused`
    engine event when the reason changes) until a later promotion admits it or its maximum age expires
    it; the next entry is tried. Force ignores the pool's cap only, never a guard. `refusals`, when given,
    is filled with each entry a guard kept (its id -> the guard's reason).
    """
    promoted: list[str] = []
    queue_expire(user_id=user_id)
    if prices is None and entry_id is None:
        prices = _promotion_prices(user_id=user_id, force=force)
    with transaction.atomic():
        cur = sql.cursor()
        cur.execute(user_lock_statement(), [user_id])
        if cur.fetchone() is None:
            return promoted  # inactive: nothing opens for this user
        stored = EngineConfig.objects.filter(user_id=user_id).values_list("data", flat=True).first()
        entries = queue_ordered(user=user_id, prices=prices)
        if entry_id is not None:
            entries = [e for e in entries if str(e.pk) == str(entry_id)]
        for entry in entries:
            merged, grid = effective_config(stored, symbol=entry.symbol, timeframe=entry.timeframe)
            if not force and not pool_has_room(
                used=pool_used(user_id=user_id), max_open_groups=merged["max_open_groups"]
            ):
                break
            capital = capital_for_pyramid(grid, 0)
            refusal = _guard_refusal(entry=entry, merged=merged, capital=capital)
            if refusal is not None:
                _still_blocked(entry=entry, refusal=refusal)
                if refusals is not None:
                    refusals[str(entry.pk)] = refusal.message
                if force:
                    break
                continue
            group = promote_signal(entry=entry)
            entry.delete()
            promoted.append(str(group.pk))
            audit(
                user=actor,
                action="queue_promote",
                resource="queued_signal",
                resource_id=entry.pk,
                details={"group_id": str(group.pk), "forced": force},
            )
            log_info(
                "RISK",
                f"Promoted queued {entry.symbol} {entry.timeframe} into a group",
                user=user_id,
                details={"group_id": str(group.pk)},
            )
            if force:
                break
        if promoted:
            publish_events([queue_event(user_id)])
    return promoted


def _guard_refusal(*, entry: QueuedSignal, merged: Mapping[str, Any], capital: Decimal) -> GuardRefusal | None:
    """Whether a guard refuses the entry's new group now (the intake's admission rule on the state now,
    the groups this promotion opened already counted by their pyramids' capital)."""
    now = timezone.now()
    state = guards.guard_state_read(user=entry.user_id, symbol=entry.symbol, now=now)
    return new_group_refusal(state, guard_settings(merged), symbol=entry.symbol, capital=capital, now=now)


def _still_blocked(*, entry: QueuedSignal, refusal: GuardRefusal) -> None:
    """A guard keeps the entry queued: its reason is stored and, when it is new, logged and announced."""
    reason = refusal.message[:300]
    if entry.blocked_reason == reason:
        return
    QueuedSignal.objects.filter(pk=entry.pk).update(blocked_reason=reason)
    log_info(
        "RISK",
        f"Queued {entry.symbol} {entry.timeframe} kept waiting by the {refusal.guard} guard: {refusal.reason}",
        user=entry.user_id,
        details={"signal_id": str(entry.signal_id), "guard": refusal.guard},
    )
    engine_event_emit(
        kind=GUARD_REFUSED,
        user_id=entry.user_id,
        group_id="",
        data={
            "symbol": entry.symbol,
            "timeframe": entry.timeframe,
            "action": "promote",
            "signal_id": str(entry.signal_id),
            "guard": refusal.guard,
            "reason": reason,
            "outcome": "kept queued",
        },
    )
    publish_events([queue_event(entry.user_id, symbol=entry.symbol)])


def _promotion_prices(*, user_id: Any, force: bool) -> dict[str, Decimal]:
    """Current prices for `deepest_loss`, asked before promotion's transaction (no lock is held across the
    ticker request), and only when they can change what is promoted: two entries or more and a free slot."""
    if "deepest_loss" not in queue_rules(user_id=user_id):
        return {}
    waiting = list(QueuedSignal.objects.filter(user_id=user_id).select_related("exchange_config"))
    if len(waiting) < 2:
        return {}
    stored = EngineConfig.objects.filter(user_id=user_id).values_list("data", flat=True).first()
    room = pool_has_room(used=pool_used(user_id=user_id), max_open_groups=engine_setting(stored, "max_open_groups"))
    return queue_prices(entries=waiting) if force or room else {}


def promote_signal(*, entry: QueuedSignal) -> PositionGroup:
    """Open the group of a queued signal (the caller holds the user lock and has checked the pool)."""
    signal = entry.signal
    # The queued body was valid when it arrived; its price is the latest replacement's.
    parsed = dataclasses.replace(parse_signal(signal.body or {}), entry_price=entry.entry_price)
    stored = EngineConfig.objects.filter(user_id=entry.user_id).values_list("data", flat=True).first()
    merged, grid = effective_config(stored, symbol=entry.symbol, timeframe=entry.timeframe)
    now = timezone.now()
    batch = sql.Batch()
    published: list[Event] = []
    group_id = group_insert(
        batch,
        published,
        plan=open_group_plan(merged, grid, parsed, now),
        signal_id=signal.pk,
        user_id=entry.user_id,
        config_id=entry.exchange_config_id,
        symbol=entry.symbol,
        exchange_symbol="",  # taken from the market rules when the grid is computed
        timeframe=entry.timeframe,
        opened_by=parsed.source,
        now=now,
    )
    # The signal turns pending: its trigger announces it to the dispatcher on commit (positions.dispatch).
    sql.cursor().execute(
        *batch.ending(
            f"UPDATE {sql.table(WebhookSignal)} SET group_id = %s, processing_status = %s WHERE id = %s",
            [group_id, ProcessingStatus.PENDING, signal.pk],
        )
    )
    publish_events(published)
    return PositionGroup.objects.get(pk=group_id)
