"""Queue ranking by `queue_priority_rules`, hand-built per rule and per rule order; expiry (no database)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D  # noqa: N817  (worked examples read better short)

import pytest

from positions.config import ConfigError, parse_engine_config
from positions.rules.pool import queue_expired, queue_rank

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Entry:
    name: str
    symbol: str
    entry_price: D
    replacement_count: int
    queued_at: datetime
    timeframe: str = "1h"


# oldest → newest: fifo; BTC 10 % under its entry, ETH 2 %; "replaced" twice; SOL continues an open group.
OLD = Entry("old", "XRP/USDT", D("1"), 0, NOW - timedelta(hours=3))
DEEP = Entry("deep", "BTC/USDT", D("100"), 0, NOW - timedelta(hours=2))
REPLACED = Entry("replaced", "ETH/USDT", D("100"), 2, NOW - timedelta(hours=1))
PYRAMID = Entry("pyramid", "SOL/USDT", D("100"), 0, NOW)
ENTRIES = [PYRAMID, REPLACED, DEEP, OLD]
PRICES = {"BTC/USDT": D("90"), "ETH/USDT": D("98")}
CONTINUING = {("SOL/USDT", "1h")}


def rank(rules: list[str]) -> list[str]:
    return [e.name for e in queue_rank(ENTRIES, PRICES, rules, CONTINUING)]


def test_default_order_pyramid_then_deepest_loss_then_replacements_then_oldest() -> None:
    assert rank(["pyramid_continuation", "deepest_loss", "replacement_count", "fifo"]) == [
        "pyramid",  # its identity has an open group
        "deep",  # 10 % below its entry
        "replaced",  # 2 % below
        "old",
    ]


def test_each_rule_alone() -> None:
    assert rank(["pyramid_continuation"])[0] == "pyramid"
    assert rank(["pyramid_continuation"])[1:] == ["old", "deep", "replaced"]  # the rest: oldest first
    assert rank(["deepest_loss"]) == ["deep", "replaced", "old", "pyramid"]
    assert rank(["replacement_count"]) == ["replaced", "old", "deep", "pyramid"]
    assert rank(["fifo"]) == ["old", "deep", "replaced", "pyramid"]
    assert rank([]) == ["old", "deep", "replaced", "pyramid"]


def test_rule_order_changes_the_ranking() -> None:
    assert rank(["replacement_count", "deepest_loss"]) == ["replaced", "deep", "old", "pyramid"]
    assert rank(["deepest_loss", "pyramid_continuation"]) == ["deep", "replaced", "pyramid", "old"]
    assert rank(["fifo", "deepest_loss"]) == ["old", "deep", "replaced", "pyramid"]


def test_without_prices_deepest_loss_ties_and_the_next_rule_decides() -> None:
    assert [e.name for e in queue_rank(ENTRIES, {}, ["deepest_loss", "replacement_count"])] == [
        "replaced",
        "old",
        "deep",
        "pyramid",
    ]


def test_expiry() -> None:
    assert queue_expired(queued_at=NOW - timedelta(minutes=1441), now=NOW, max_age_minutes=1440)
    assert not queue_expired(queued_at=NOW - timedelta(minutes=1440), now=NOW, max_age_minutes=1440)
    assert not queue_expired(queued_at=NOW - timedelta(days=30), now=NOW, max_age_minutes=0)


@pytest.mark.parametrize(
    ("rules", "reason"),
    [
        (["fifo", "bogus"], "must be a list of rule names"),
        (["fifo", "fifo"], "must not name a rule twice"),
        ("fifo", "must be a list of rule names"),
    ],
)
def test_queue_rules_are_validated(rules: object, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_engine_config({"queue_priority_rules": rules})
    assert reason in caught.value.errors["queue_priority_rules"][0]


def test_queue_rules_may_be_reordered_or_removed() -> None:
    merged, _ = parse_engine_config({"queue_priority_rules": ["fifo"], "queue_max_age_minutes": 0})
    assert merged["queue_priority_rules"] == ["fifo"] and merged["queue_max_age_minutes"] == 0
    with pytest.raises(ConfigError) as caught:
        parse_engine_config({"queue_max_age_minutes": -1})
    assert "queue_max_age_minutes" in caught.value.errors
