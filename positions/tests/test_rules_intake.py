"""The intake's decision and the pool's rules, without a database: plain data in, an outcome out."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from positions.choices import GroupStatus, SignalClassification, SignalStatus
from positions.rules.intake import (
    NEEDS_POOL,
    AddPyramid,
    Alert,
    ExitGroup,
    IntakeContext,
    IntakeLimits,
    OpenGroup,
    OpenNewGroup,
    QueueSignal,
    Rejected,
    Skipped,
    decide,
)
from positions.rules.pool import PoolState, pool_has_room, queue_admits, queue_rank, queue_reason
from positions.webhook import WebhookError, alert_template, decode_body, parse_signal

NOW = datetime(2026, 11, 27, 10, 7, 30, tzinfo=UTC)
USER = uuid.UUID(int=1)
CONFIG = uuid.UUID(int=2)
SECRET = "s3cret-value"


def _alert(**changes: object) -> Alert:
    body = alert_template(secret=SECRET, exchange="simulator")
    body["timestamp"] = NOW.isoformat()
    body["tv"].update(
        symbol="BTCUSDT",
        timeframe="60",
        action="buy",
        market_position="long",
        market_position_size="1",
        prev_market_position="flat",
        prev_market_position_size="0",
        entry_price="100",
        close_price="100",
        order_size="1",
    )
    body["strategy_info"].update(trade_id="t1", alert_name="grid", alert_message="")
    for key, value in changes.items():
        section, _, name = key.partition("__")
        if name:
            body[section][name] = value
        else:
            body[section] = value
    raw = json.dumps(body).encode()
    body = decode_body(raw)  # as the intake reads it: numbers as Decimal
    return Alert(
        user_id=str(USER),
        raw=raw,
        ip="10.0.0.1",
        started=0.0,
        body=body,
        parsed=parse_signal(body),
        symbol="BTC/USDT",
        exchange_symbol="BTCUSDT",
    )


def _context(**changes: object) -> IntakeContext:
    values: dict[str, object] = {
        "secret": SECRET,
        "config_id": CONFIG,
        "engine_config": None,
        "recent": 0,
        "group": None,
        "limits": IntakeLimits(rate_limit_per_minute=300),
        "pool": PoolState(used=0, queued=0, queued_here=False),
    }
    values.update(changes)
    return IntakeContext(**values)  # type: ignore[arg-type]


def _group(**changes: object) -> OpenGroup:
    values: dict[str, object] = {
        "id": uuid.UUID(int=3),
        "user_id": USER,
        "symbol": "BTC/USDT",
        "timeframe": "1h",
        "side": "long",
        "status": GroupStatus.LIVE,
        "pyramid_count": 1,
        "max_pyramids": 5,
        "last_pyramid_candle": NOW.replace(minute=0, second=0) - timedelta(hours=1),
        "config": json.dumps({"max_pyramids": 5}),
        "filled_quantity": Decimal("0"),
        "avg_entry_price": None,
        "realized_pnl": Decimal("0"),
    }
    values.update(changes)
    return OpenGroup(**values)  # type: ignore[arg-type]


def test_a_new_entry_with_room_opens_a_group_with_pyramid_zero_in_the_signals_candle():
    outcome = decide(_context(), _alert(), NOW)
    assert isinstance(outcome, OpenNewGroup)
    assert outcome.candle == datetime(2026, 11, 27, 10, tzinfo=UTC)
    assert outcome.pyramid.index == 0 and outcome.pyramid.entry_price == Decimal("100")
    assert sum(level.weight_percent for level in outcome.pyramid.levels) == 100
    assert outcome.max_pyramids == outcome.config["max_pyramids"]


def test_without_an_open_group_the_pool_must_be_read_under_the_lock_first():
    assert decide(_context(pool=None), _alert(), NOW) is NEEDS_POOL
    assert decide(_context(pool=None), _alert(tv__action="sell", execution_intent__type="exit"), NOW) is NEEDS_POOL


def test_a_full_pool_queues_and_a_full_queue_ignores():
    full = _context(engine_config=json.dumps({"max_open_groups": 2, "queue_max_size": 1}))
    queued = decide(dataclass_replace(full, pool=PoolState(used=2, queued=0, queued_here=False)), _alert(), NOW)
    assert queued == QueueSignal(entry_price=Decimal("100"), replaces=False)
    replaced = decide(dataclass_replace(full, pool=PoolState(used=2, queued=1, queued_here=True)), _alert(), NOW)
    assert replaced == QueueSignal(entry_price=Decimal("100"), replaces=True)
    refused = decide(dataclass_replace(full, pool=PoolState(used=2, queued=1, queued_here=False)), _alert(), NOW)
    assert isinstance(refused, Skipped) and refused.status == SignalStatus.IGNORED
    assert refused.classification == SignalClassification.QUEUED and "queue is full (1)" in refused.reason


def test_per_symbol_overrides_decide_the_pool_cap():
    stored = {"max_open_groups": 1, "overrides": {"BTC/USDT": {"max_open_groups": 3}}}
    outcome = decide(
        _context(engine_config=json.dumps(stored), pool=PoolState(used=2, queued=0, queued_here=False)), _alert(), NOW
    )
    assert isinstance(outcome, OpenNewGroup)


def test_an_open_group_takes_a_pyramid_once_per_candle_up_to_its_maximum():
    added = decide(_context(group=_group(), pool=None), _alert(), NOW)
    assert isinstance(added, AddPyramid) and added.pyramid.index == 1
    same_candle = decide(_context(group=_group(last_pyramid_candle=added.candle)), _alert(), NOW)
    assert isinstance(same_candle, Skipped) and same_candle.status == SignalStatus.DUPLICATE
    assert same_candle.note.startswith("Pyramid duplicate")
    full = decide(_context(group=_group(pyramid_count=5)), _alert(), NOW)
    assert isinstance(full, Skipped) and full.reason == "max pyramids reached (5)"
    closing = decide(_context(group=_group(status=GroupStatus.CLOSING)), _alert(), NOW)
    assert isinstance(closing, Skipped) and closing.reason == "the position is closing"


def test_the_signals_order_size_is_the_pyramids_capital_only_when_the_config_says_so():
    sized = _alert(tv__order_size="37.5")
    assert decide(_context(), sized, NOW).pyramid.capital_usd != Decimal("37.5")
    config = json.dumps({"use_signal_size": True})
    assert decide(_context(engine_config=config), sized, NOW).pyramid.capital_usd == Decimal("37.5")


def test_exits():
    exit_alert = _alert(tv__action="sell", execution_intent__type="exit")
    assert decide(_context(group=_group()), exit_alert, NOW) == ExitGroup(uuid.UUID(int=3))
    closing = decide(_context(group=_group(status=GroupStatus.CLOSING)), exit_alert, NOW)
    assert isinstance(closing, Skipped) and closing.reason == "the position is already closing"
    queued = decide(_context(pool=PoolState(used=10, queued=1, queued_here=True)), exit_alert, NOW)
    assert queued == ExitGroup(None, reason="the queued entry for this position was removed")
    nothing = decide(_context(), exit_alert, NOW)
    assert isinstance(nothing, Skipped) and nothing.reason == "no open position for this symbol and timeframe"


@pytest.mark.parametrize(
    ("context", "alert", "status", "code"),
    [
        (None, _alert(), 404, "not_found"),
        ("ip", _alert(), 403, "ip_not_allowed"),
        (_context(), _alert(secret=""), 401, "secret_missing"),
        (_context(), _alert(secret="wrong"), 403, "secret_invalid"),
        (_context(recent=300), _alert(), 429, "throttled"),
        (_context(config_id=None), _alert(), 400, "unknown_exchange"),
    ],
)
def test_refusals_name_their_reason(context, alert, status, code):
    if context == "ip":
        context = _context(limits=IntakeLimits(rate_limit_per_minute=300, allowed_ips=frozenset({"10.9.9.9"})))
    outcome = decide(context, alert, NOW)
    assert isinstance(outcome, Rejected)
    assert (outcome.error.status, outcome.error.code) == (status, code)
    assert outcome.user_known is (context is not None)


def test_refusals_come_in_order_a_wrong_secret_before_the_rate_limit_and_the_schema():
    broken = dataclass_replace(
        _alert(secret="wrong"), schema_error=WebhookError(400, "invalid", "bad", {"tv.symbol": ["missing"]})
    )
    outcome = decide(_context(recent=10_000), broken, NOW)
    assert isinstance(outcome, Rejected) and outcome.error.code == "secret_invalid"
    envelope = dataclass_replace(_alert(), envelope_error=WebhookError(413, "payload_too_large", "big"))
    assert decide(_context(), envelope, NOW) == Rejected(envelope.envelope_error, user_known=False)


def test_pool_rules():
    assert pool_has_room(used=9, max_open_groups=10) and not pool_has_room(used=10, max_open_groups=10)
    state = PoolState(used=10, queued=3, queued_here=False)
    assert queue_admits(state=state, max_size=None) and not queue_admits(state=state, max_size=3)
    assert queue_admits(state=PoolState(used=10, queued=3, queued_here=True), max_size=3)
    assert queue_reason(0) == "execution pool is full; queued"
    assert queue_reason(2) == "replaced the queued signal (replacement 2)"


def test_the_queue_promotes_the_deepest_loss_then_the_most_replaced_then_the_oldest():
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class Entry:
        name: str
        symbol: str
        entry_price: Decimal
        replacement_count: int
        queued_at: datetime

    entries = [
        Entry("old", "ETH/USDT", Decimal("100"), 0, NOW - timedelta(hours=2)),
        Entry("replaced", "ETH/USDT", Decimal("100"), 3, NOW),
        Entry("deep", "BTC/USDT", Decimal("100"), 0, NOW),
        Entry("new", "SOL/USDT", Decimal("100"), 0, NOW - timedelta(hours=1)),
    ]
    prices = {"BTC/USDT": Decimal("90"), "ETH/USDT": Decimal("100")}
    assert [e.name for e in queue_rank(entries, prices)] == ["deep", "replaced", "old", "new"]


def dataclass_replace(instance, **changes):
    import dataclasses

    return dataclasses.replace(instance, **changes)
