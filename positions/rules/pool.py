"""The execution pool and the waiting queue as rules: admission and ranking (docs/engine.md#pool-and-queue).

The pool caps a user's open groups (`max_open_groups`); only a group's first entry takes a slot. A
new-group signal that finds the pool full waits in the queue, one entry per identity: a newer signal of
the same identity replaces it. The live intake and promotion (`positions.services.queue`) and the
backtester decide with these functions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

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


def queue_rank[Q: Queued](entries: Iterable[Q], prices: Mapping[str, Decimal]) -> list[Q]:
    """Promotion order: deepest loss first (price below the queued entry), then most replaced, then
    oldest."""
    return sorted(
        entries,
        key=lambda e: (-queued_loss_percent(e, prices.get(e.symbol)), -e.replacement_count, e.queued_at),
    )
