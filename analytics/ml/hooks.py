"""The ML filter's registration with the intake (`positions.entry_filter`), done by `AnalyticsConfig.ready`."""

from __future__ import annotations

from core import sql
from positions.entry_filter import EntryQuery, EntryVerdict, entry_filter_register


def entry_filter(query: EntryQuery) -> sql.Steps[EntryVerdict]:
    """`analytics.ml.filter.entry_filter_provider`, loaded on the first entry that is filtered."""
    # Imported here: xgboost (and its 30 MB) loads only in a process that filters an entry, not in every
    # web process at start-up.
    from .filter import entry_filter_provider

    return (yield from entry_filter_provider(query))


def register() -> None:
    entry_filter_register(entry_filter)
