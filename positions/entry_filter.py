"""The entry filter: a veto on entry signals that an app above `positions` provides (docs/ml.md#filter).

`positions` must not import the app that scores entries (analytics' ML filter), so that app registers a
provider here at start-up (its `AppConfig.ready`). The intake asks it about an entry (a new group, a
pyramid, a queued signal) only when the user's effective config has `ml_filter_enabled`; with the
filter off, or no provider registered, the webhook's path pays one dictionary lookup.

A provider is written as `core.sql` steps, like the intake's own transaction: it yields its statements
and is sent their first rows, so the same code runs on Django's connection and on the webhook route's
event loop (docs/architecture.md#intake), and its reads see the intake's transaction. It must be quick
and must not raise; one that fails lets the entry through (the trading path never sees its error).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from core import sql

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EntryQuery:
    """An entry the intake is about to accept."""

    user_id: uuid.UUID
    symbol: str  # unified, e.g. BTC/USDT
    timeframe: str  # the alert's, e.g. 1h
    at_ms: int  # the signal's time (or the intake's clock): only candles closed by then may be read
    threshold: float  # the user's `ml_filter_threshold`


@dataclass(frozen=True, slots=True)
class EntryVerdict:
    allowed: bool
    score: float | None = None  # the provider's confidence that the entry is good, when it scored one
    reason: str = ""  # why, stored on the signal when the entry is refused


EntryFilter = Callable[[EntryQuery], sql.Steps[EntryVerdict]]
_provider: list[EntryFilter] = []


def entry_filter_register(provider: EntryFilter) -> None:
    """Make `provider` the entry filter of this process (a second registration replaces the first)."""
    _provider[:] = [provider]


def entry_filter_unregister() -> None:
    _provider.clear()


def entry_filter_registered() -> EntryFilter | None:
    return _provider[0] if _provider else None


def entry_filter_steps(query: EntryQuery) -> sql.Steps[EntryVerdict]:
    """The registered provider's verdict on `query` (allowed when none is registered or it fails)."""
    provider = entry_filter_registered()
    if provider is None:
        return EntryVerdict(allowed=True, reason="no entry filter is installed")
    try:
        return (yield from provider(query))
    except Exception:  # the filter's failure must never refuse or break an entry
        logger.exception("entry filter failed on %s %s; the entry is let through", query.symbol, query.timeframe)
        return EntryVerdict(allowed=True, reason="the entry filter failed")
