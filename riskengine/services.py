"""Execution pool and waiting queue (SPEC §3.5). Other apps call these functions, never the models."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from django.db import transaction

from accounts.logs import audit, log_info
from positions.choices import OPEN_GROUP_STATUSES

from .models import QueuedSignal


def pool_used_statement() -> str:
    """``SELECT count(*)`` of the groups holding a slot of the user bound to its one parameter: every
    group that is not closed or failed (pyramids take no extra slot). The webhook intake embeds it."""
    from positions.models import PositionGroup
    from core.sql import literals, table

    return (
        f"SELECT count(*) FROM {table(PositionGroup)}"
        f" WHERE user_id = %s AND status IN ({literals(OPEN_GROUP_STATUSES)})"
    )


def pool_used(*, user_id: Any) -> int:
    from core.sql import cursor

    cur = cursor()
    cur.execute(pool_used_statement(), [user_id])
    return int(cur.fetchone()[0])


def pool_has_room(*, user_id: Any, max_open_groups: int) -> bool:
    return pool_used(user_id=user_id) < max_open_groups


def queue_upsert_statement(
    *,
    user_id: Any,
    signal_id: Any,
    exchange_config_id: Any,
    symbol: str,
    timeframe: str,
    side: str,
    entry_price: Decimal,
    max_size: int | None,
) -> tuple[str, list[Any]]:
    """The statement that queues a new-group signal; a newer one for the same identity replaces it (new
    price, count + 1). It returns the replacement count (`queue_reason`), or no row when the queue
    already holds `max_size` entries and this is not a replacement.

    Run by the webhook intake under the user's row lock, in its transaction: one statement on the
    webhook's hot path. The caller sends `queue_event` once committed.
    """
    from core.sql import insert_statement, table

    queue = table(QueuedSignal)
    statement, params = insert_statement(
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
    # INSERT ... VALUES (...) becomes INSERT ... SELECT ... WHERE <room in the queue, or a replacement>.
    columns, _, placeholders = statement.partition(" VALUES ")
    return (
        f"{columns.replace(queue, queue + ' AS q', 1)} SELECT {placeholders[1:-1]}"
        f" WHERE %s OR (SELECT count(*) FROM {queue} WHERE user_id = %s) < %s"
        " OR EXISTS (SELECT 1 FROM {queue} WHERE user_id = %s AND exchange_config_id = %s AND symbol = %s"
        " AND timeframe = %s AND side = %s)"
        " ON CONFLICT (user_id, exchange_config_id, symbol, timeframe, side) DO UPDATE"
        " SET signal_id = EXCLUDED.signal_id, entry_price = EXCLUDED.entry_price,"
        " replacement_count = q.replacement_count + 1, updated_at = EXCLUDED.updated_at"
        " RETURNING replacement_count".replace("{queue}", queue),
        [
            *params,
            max_size is None,
            user_id,
            max_size or 0,
            user_id,
            exchange_config_id,
            symbol,
            timeframe,
            side,
        ],
    )


def queue_reason(replacement_count: int) -> str:
    if replacement_count:
        return f"replaced the queued signal (replacement {replacement_count})"
    return "execution pool is full; queued"


def queue_remove_statement(
    *, user_id: Any, exchange_config_id: Any, symbol: str, timeframe: str, side: str
) -> tuple[str, list[Any]]:
    """The statement that drops the queued signal of an identity; it returns a row when there was one."""
    from core.sql import table

    return (
        f"DELETE FROM {table(QueuedSignal)} WHERE user_id = %s AND exchange_config_id = %s AND symbol = %s"
        " AND timeframe = %s AND side = %s RETURNING 1",
        [user_id, exchange_config_id, symbol, timeframe, side],
    )


def queue_remove(*, user_id: Any, exchange_config_id: Any, symbol: str, timeframe: str, side: str) -> bool:
    """Drop the queued signal of an identity (an exit for it arrived); `queue.updated` once committed."""
    from core import sql

    cur = sql.cursor()
    cur.execute(
        *queue_remove_statement(
            user_id=user_id, exchange_config_id=exchange_config_id, symbol=symbol, timeframe=timeframe, side=side
        )
    )
    if cur.fetchone() is None:
        return False
    _publish(user_id)
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
        _publish(entry.user_id)


def queue_event(user_id: Any, symbol: str | None = None):  # type: ignore[no-untyped-def]
    """`queue.updated`: clients re-read `/api/queue` (no count query on the webhook path)."""
    from positions.events import event

    return event(user_id, "queue.updated", {"symbol": symbol})


def _publish(user_id: Any, symbol: str | None = None) -> None:
    """`queue.updated` after commit."""
    from positions.events import publish_events

    publish_events([queue_event(user_id, symbol)])


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
