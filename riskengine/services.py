"""Execution pool and waiting queue (SPEC §3.5). Other apps call these functions, never the models."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from django.db import transaction

from accounts.logs import audit, log_info
from positions.choices import OPEN_GROUP_STATUSES

from .models import QueuedSignal


def pool_used(*, user_id: Any) -> int:
    """Groups holding a slot: every group that is not closed or failed (pyramids take no extra slot)."""
    from positions.models import PositionGroup
    from positions.services.sql import cursor, table

    cur = cursor()
    cur.execute(
        f"SELECT count(*) FROM {table(PositionGroup)} WHERE user_id = %s AND status = ANY(%s)",
        [user_id, [str(s) for s in OPEN_GROUP_STATUSES]],
    )
    return int(cur.fetchone()[0])


def pool_has_room(*, user_id: Any, max_open_groups: int) -> bool:
    return pool_used(user_id=user_id) < max_open_groups


def queue_upsert(
    *,
    user_id: Any,
    signal_id: Any,
    exchange_config_id: Any,
    symbol: str,
    timeframe: str,
    side: str,
    entry_price: Decimal,
    max_size: int | None,
) -> tuple[bool, str]:
    """Queue a new-group signal; a newer one for the same identity replaces it (new price, count + 1).

    Called by the webhook intake under the user's row lock (raw SQL: this is the webhook's hot path).
    Returns (queued, reason); not queued when the waiting queue is full.
    """
    from positions.services.sql import cursor, row_insert, table

    identity = [user_id, exchange_config_id, symbol, timeframe, side]
    cur = cursor()
    cur.execute(
        f"UPDATE {table(QueuedSignal)} SET signal_id = %s, entry_price = %s,"
        " replacement_count = replacement_count + 1, updated_at = now()"
        " WHERE user_id = %s AND exchange_config_id = %s AND symbol = %s AND timeframe = %s AND side = %s"
        " RETURNING replacement_count",
        [signal_id, entry_price, *identity],
    )
    replaced = cur.fetchone()
    if replaced is not None:
        _publish(user_id, symbol=symbol)
        return True, f"replaced the queued signal (replacement {replaced[0]})"
    if max_size is not None:
        cur.execute(f"SELECT count(*) FROM {table(QueuedSignal)} WHERE user_id = %s", [user_id])
        if cur.fetchone()[0] >= max_size:
            return False, f"the waiting queue is full ({max_size})"
    row_insert(
        cur,
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
    _publish(user_id, symbol=symbol)
    return True, "execution pool is full; queued"


def queue_remove(*, user_id: Any, exchange_config_id: Any, symbol: str, timeframe: str, side: str) -> bool:
    deleted, _ = QueuedSignal.objects.filter(
        user_id=user_id, exchange_config_id=exchange_config_id, symbol=symbol, timeframe=timeframe, side=side
    ).delete()
    if deleted:
        _publish(user_id)
    return bool(deleted)


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
        _publish(entry.user_id)


def _publish(user_id: Any, symbol: str | None = None) -> None:
    """`queue.updated` after commit; clients re-read `/api/queue` (no count query on the webhook path)."""
    from positions.events import publish

    publish(user_id, "queue.updated", {"symbol": symbol})


def queue_promote_after_commit(*, user_id: Any) -> None:
    from .tasks import promote_queue

    key = str(user_id)
    transaction.on_commit(lambda: promote_queue.delay(key))


def _priority(entries: list[QueuedSignal], prices: dict[str, Decimal]) -> list[QueuedSignal]:
    """Deepest loss first (price below the queued entry), then most replaced, then oldest."""

    def loss(entry: QueuedSignal) -> Decimal:
        price = prices.get(entry.symbol)
        if price is None or not entry.entry_price:
            return Decimal("0")
        return (entry.entry_price - price) / entry.entry_price * 100

    return sorted(entries, key=lambda e: (-loss(e), -e.replacement_count, e.queued_at))


def queue_ordered(*, user: Any, prices: dict[str, Decimal] | None = None) -> list[QueuedSignal]:
    entries = list(QueuedSignal.objects.filter(user=user).select_related("signal", "exchange_config"))
    return _priority(entries, prices or {})


def queue_promote(
    *,
    user_id: Any,
    prices: dict[str, Decimal] | None = None,
    force: bool = False,
    entry_id: Any = None,
    actor: Any = None,
) -> list[str]:
    """Open groups for queued signals while the pool has room (or once, ignoring the cap, with force)."""
    from accounts.models import User
    from positions.models import EngineConfig
    from positions.services.intake import promote_signal

    promoted: list[str] = []
    with transaction.atomic():
        user = User.objects.select_for_update().get(pk=user_id)
        stored = EngineConfig.objects.filter(user=user).values_list("data", flat=True).first() or {}
        max_open = int(stored.get("max_open_groups", 10))
        entries = queue_ordered(user=user, prices=prices)
        if entry_id is not None:
            entries = [e for e in entries if str(e.pk) == str(entry_id)]
        for entry in entries:
            if not force and not pool_has_room(user_id=user.pk, max_open_groups=max_open):
                break
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
                user=user,
                details={"group_id": str(group.pk)},
            )
            if force:
                break
        if promoted:
            _publish(user.pk)
    return promoted
