"""Guards as pure admission rules (docs/engine.md#guards): each one refusing and releasing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D  # noqa: N817  (worked examples read better short)

from positions.rules.guards import (
    GuardSettings,
    GuardState,
    daily_loss_reached_by,
    new_group_refusal,
    pause_refusal,
    sequence_anomaly,
    stale_alert,
)

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
OFF = GuardSettings()


def refusal(state: GuardState, settings: GuardSettings = OFF, capital: str = "200") -> str | None:
    found = new_group_refusal(state, settings, symbol="BTC/USDT", capital=D(capital), now=NOW)
    return None if found is None else found.guard


def test_nothing_refuses_by_default() -> None:
    assert refusal(GuardState()) is None


def test_pause_user_and_system() -> None:
    assert refusal(GuardState(user_paused=True)) == "pause"
    assert refusal(GuardState(system_paused=True)) == "system_pause"
    # Pyramids pass a pause unless pause_blocks_pyramids.
    assert pause_refusal(GuardState(user_paused=True), new_group=False, settings=OFF) is None
    blocks = GuardSettings(pause_blocks_pyramids=True)
    found = pause_refusal(GuardState(user_paused=True), new_group=False, settings=blocks)
    assert found is not None and found.message == "pause: trading is paused: no pyramids (pause_blocks_pyramids)"


def test_daily_loss_limit() -> None:
    limit = GuardSettings(daily_loss_limit_usd=D("50"))
    assert refusal(GuardState(realized_today=D("-49.99")), limit) is None
    assert refusal(GuardState(realized_today=D("-50")), limit) == "daily_loss"
    assert refusal(GuardState(realized_today=D("0")), limit) is None  # after an operator's reset


def test_cooldown_after_a_loss() -> None:
    cooldown = GuardSettings(cooldown_minutes_after_loss=30)
    assert refusal(GuardState(last_loss_close_at=NOW - timedelta(minutes=29)), cooldown) == "cooldown"
    assert refusal(GuardState(last_loss_close_at=NOW - timedelta(minutes=30)), cooldown) is None


def test_exposure_cap_queues_or_rejects() -> None:
    cap = GuardSettings(max_total_exposure_usd=D("1000"))
    assert refusal(GuardState(exposure_usd=D("800")), cap) is None  # 800 + 200 = 1000: not past it
    found = new_group_refusal(GuardState(exposure_usd=D("800.01")), cap, symbol="X", capital=D("200"), now=NOW)
    assert found is not None and found.guard == "exposure" and found.queue
    reject = GuardSettings(max_total_exposure_usd=D("1000"), exposure_action="reject")
    found = new_group_refusal(GuardState(exposure_usd=D("900")), reject, symbol="X", capital=D("200"), now=NOW)
    assert found is not None and not found.queue


def test_stale_alert() -> None:
    assert stale_alert(signal_time=NOW - timedelta(seconds=301), now=NOW, max_lag_seconds=300) is not None
    assert stale_alert(signal_time=NOW - timedelta(seconds=300), now=NOW, max_lag_seconds=300) is None
    assert stale_alert(signal_time=NOW - timedelta(days=9), now=NOW, max_lag_seconds=0) is None  # off
    assert stale_alert(signal_time=None, now=NOW, max_lag_seconds=300) is None


def test_sequence_anomaly() -> None:
    assert sequence_anomaly(prev_market_position="flat", is_exit=False, has_group=True, queued=False)
    assert sequence_anomaly(prev_market_position="long", is_exit=False, has_group=True, queued=False) is None
    assert sequence_anomaly(prev_market_position="flat", is_exit=False, has_group=False, queued=False) is None
    assert sequence_anomaly(prev_market_position="long", is_exit=True, has_group=False, queued=False)
    assert sequence_anomaly(prev_market_position="long", is_exit=True, has_group=False, queued=True) is None


def test_daily_loss_reached_by_is_the_crossing_close_only() -> None:
    assert daily_loss_reached_by(realized_today=D("-55"), closed_pnl=D("-25"), limit=D("50"))
    assert daily_loss_reached_by(realized_today=D("-50"), closed_pnl=D("-50"), limit=D("50"))
    assert not daily_loss_reached_by(realized_today=D("-60"), closed_pnl=D("-5"), limit=D("50"))
    assert not daily_loss_reached_by(realized_today=D("-30"), closed_pnl=D("-30"), limit=D("50"))
    assert not daily_loss_reached_by(realized_today=D("-55"), closed_pnl=D("10"), limit=D("50"))
    assert not daily_loss_reached_by(realized_today=D("-55"), closed_pnl=D("-25"), limit=None)
