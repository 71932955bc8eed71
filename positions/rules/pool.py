"""The execution pool and the waiting queue as rules: admission and ranking (docs/engine.md#pool-and-queue).

The pool caps a user's open groups (`max_open_groups`); only a group's first entry takes a slot. A
new-group signal that finds the pool full waits in the queue, one entry per identity: a newer signal of
the same identity replaces it. The live intake and promotion (`positions.services.queue`) and the
backtester decide with these functions.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Final, Protocol

ZERO = Decimal("0")


@dataclass(frozen=True, slots=True)
class PoolState:
    """A user's pool and queue as read under the user's lock."""

    used: int  # groups holding a slot (every group that is not closed or failed)
    queued: int  # the user's queued signals
    queued_here: bool  # the alert's identity already has a queued signal


def pool_has_room(*, used: int, max_open_groups: int) -> bool:
    return used < max_open_groups


def queue_admits(*, state: PoolState, max_size: int | None) -> bool:
    """Whether a new-group signal may wait in the queue: a replacement always may, a new entry while the
    queue holds fewer than `max_size` (no limit when ``None``)."""
    return state.queued_here or max_size is None or state.queued < max_size


def queue_reason(replacement_count: int) -> str:
    """What the stored signal says about its queueing."""
    if replacement_count:
        return f"replaced the queued signal (replacement {replacement_count})"
    return "execution pool is full; queued"


QUEUE_RULES: Final = ("pyramid_continuation", "deepest_loss", "replacement_count", "fifo")
DEFAULT_QUEUE_RULES: Final = QUEUE_RULES


class Queued(Protocol):
    """What ranking reads of a queued signal (the model, or the backtester's own record)."""

    @property
    def symbol(self) -> str: ...
    @property
    def entry_price(self) -> Decimal: ...
    @property
    def replacement_count(self) -> int: ...
    @property
    def queued_at(self) -> datetime: ...


def queued_loss_percent(entry: Queued, price: Decimal | None) -> Decimal:
    """How far below the queued entry price the market is now, in percent (0 without a price)."""
    if price is None or not entry.entry_price:
        return ZERO
    return (entry.entry_price - price) / entry.entry_price * 100


def queue_sort_key(
    entry: Queued,
    *,
    prices: Mapping[str, Decimal],
    rules: Sequence[str],
    continuing: Collection[tuple[str, str]],
) -> tuple[Decimal | int | float, ...]:
    """The entry's key under `rules`, in their order (smaller promotes first); oldest first breaks what
    the rules leave tied, so the order is always total."""
    parts: list[Decimal | int | float] = []
    for rule in rules:
        if rule == "pyramid_continuation":
            # The timeframe is read only when some identity continues (a backtester's record may lack it).
            continues = bool(continuing) and (entry.symbol, str(getattr(entry, "timeframe", ""))) in continuing
            parts.append(0 if continues else 1)
        elif rule == "deepest_loss":
            parts.append(-queued_loss_percent(entry, prices.get(entry.symbol)))
        elif rule == "replacement_count":
            parts.append(-entry.replacement_count)
        elif rule == "fifo":
            parts.append(entry.queued_at.timestamp())
        else:
            raise ValueError(f"unknown queue priority rule {rule!r}")
    parts.append(entry.queued_at.timestamp())
    return tuple(parts)


def queue_rank[Q: Queued](
    entries: Iterable[Q],
    prices: Mapping[str, Decimal],
    rules: Sequence[str] = DEFAULT_QUEUE_RULES,
    continuing: Collection[tuple[str, str]] = frozenset(),
) -> list[Q]:
    """Promotion order by `queue_priority_rules` in their order (docs/engine.md#pool-and-queue):
    `pyramid_continuation` (the identity has an open group: `continuing` holds its (symbol, timeframe)),
    `deepest_loss` (current price furthest below the queued entry; `prices` by symbol), `replacement_count`
    (most replaced), `fifo` (oldest). Any may be left out or reordered; ties end oldest first."""
    return sorted(entries, key=lambda e: queue_sort_key(e, prices=prices, rules=rules, continuing=continuing))


def queue_expired(*, queued_at: datetime, now: datetime, max_age_minutes: int | None) -> bool:
    """Whether a queued signal has waited longer than `queue_max_age_minutes` (never when 0 or ``None``)."""
    return bool(max_age_minutes) and now - queued_at > timedelta(minutes=max_age_minutes or 0)
