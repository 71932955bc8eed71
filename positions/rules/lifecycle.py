"""The group state machine: which status changes are allowed, and the status the entry fills call for.

`positions.services.state.group_transition` is the one place a status changes; it asks
`transition_allowed`. `positions.services.positions.group_recompute` asks `fill_state_target` after
every booked fill. See docs/engine.md#group-states.

    waiting → live → partially_filled → active → closing → closed
    any open state → failed (an unrecoverable error; the reason is stored)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType

from ..choices import GroupStatus as S
from ..choices import OrderStatus

ALLOWED_TRANSITIONS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        S.WAITING: frozenset({S.LIVE, S.PARTIALLY_FILLED, S.ACTIVE, S.CLOSING, S.CLOSED, S.FAILED}),
        S.LIVE: frozenset({S.PARTIALLY_FILLED, S.ACTIVE, S.CLOSING, S.CLOSED, S.FAILED}),
        # active → partially_filled: a new pyramid adds entry legs that have not filled yet.
        S.PARTIALLY_FILLED: frozenset({S.LIVE, S.ACTIVE, S.CLOSING, S.FAILED}),
        S.ACTIVE: frozenset({S.PARTIALLY_FILLED, S.CLOSING, S.FAILED}),
        S.CLOSING: frozenset({S.CLOSED, S.FAILED}),
        S.CLOSED: frozenset(),
        S.FAILED: frozenset(),
    }
)

# The statuses whose group follows its entry legs' fills (closing and final groups do not).
FOLLOWS_FILLS = frozenset({S.WAITING, S.LIVE, S.PARTIALLY_FILLED, S.ACTIVE})
# Entry legs that never were, or no longer are, part of the position's plan.
DROPPED_LEG_STATUSES = frozenset({OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.FAILED})


def transition_allowed(current: str, to: str) -> bool:
    """Whether a group may move from `current` to `to` (staying where it is always may)."""
    return current == to or to in ALLOWED_TRANSITIONS.get(current, frozenset())


@dataclass(frozen=True, slots=True)
class LegFill:
    """What the state machine needs of an entry leg: its order status and how much of it filled."""

    status: str
    filled_quantity: Decimal


def fill_state_target(current: str, legs: Iterable[LegFill]) -> str | None:
    """live → partially_filled → active as the entry legs fill; None when the status should stay.

    Cancelled, rejected and failed legs do not count: a group whose remaining legs all filled is active.
    """
    if current not in FOLLOWS_FILLS:
        return None
    # One pass over the legs (it runs after every fill): whether any counts, all counted filled, any filled part.
    counted = some_filled = False
    all_filled = True
    for leg in legs:
        if leg.status in DROPPED_LEG_STATUSES:
            continue
        counted = True
        if leg.status != OrderStatus.FILLED:
            all_filled = False
        if not some_filled and leg.filled_quantity > 0:
            some_filled = True
    if not counted:
        return None
    if all_filled:
        target: str = S.ACTIVE
    elif some_filled:
        target = S.PARTIALLY_FILLED
    else:
        return None
    return None if target == current else target
