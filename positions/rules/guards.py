"""Guards as admission rules beside the intake's (docs/engine.md#guards): switches that stop damage without
waiting for TradingView. Pure: the intake's read statement reads the state (`GuardState`), the intake's
decision (`positions.rules.intake.decide`) asks these functions, and a refusal names its guard and why.

- pause (the user's, or system-wide by an operator): no new groups; pyramids too with
  `pause_blocks_pyramids`; running grids and take-profits keep working;
- exposure cap `max_total_exposure_usd` (filled cost plus resting entry notional): a new group that would
  pass it is queued or refused (`exposure_action`);
- daily loss limit `daily_loss_limit_usd` (realized since 00:00 UTC, or since an operator's reset);
- cooldown `cooldown_minutes_after_loss` on a symbol after a group closed at a loss there;
- stale alerts `max_alert_lag_seconds` (0 = off);
- missed alerts: `prev_market_position` that contradicts what the engine holds flags the signal.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Final

from core.jsontypes import JSONValue

ZERO: Final = Decimal("0")
EXPOSURE_ACTIONS: Final = ("queue", "reject")


@dataclass(frozen=True, slots=True)
class GuardSettings:
    """The guard keys of a resolved engine config (defaults: `positions.config`)."""

    pause_blocks_pyramids: bool = False
    max_total_exposure_usd: Decimal | None = None
    exposure_action: str = "queue"
    daily_loss_limit_usd: Decimal | None = None
    cooldown_minutes_after_loss: int = 0
    max_alert_lag_seconds: int = 300


@dataclass(frozen=True, slots=True)
class GuardState:
    """What the intake's read statement found (amounts only where a limit asks for them)."""

    user_paused: bool = False
    system_paused: bool = False
    # filled cost of open groups + resting entry notional + capital of pyramids whose legs are not written yet
    exposure_usd: Decimal | None = None
    realized_today: Decimal | None = None  # realized PnL of groups closed since the day's start or a reset
    last_loss_close_at: datetime | None = None  # the latest close at a loss on the alert's symbol


@dataclass(frozen=True, slots=True)
class GuardRefusal:
    """A guard says no: `guard` names it, `reason` says why; `queue` asks to queue instead of refusing."""

    guard: str
    reason: str
    queue: bool = False

    @property
    def message(self) -> str:
        return f"{self.guard}: {self.reason}"


def guard_settings(config: Mapping[str, JSONValue]) -> GuardSettings:
    """`GuardSettings` from a resolved engine config."""

    def amount(key: str) -> Decimal | None:
        value = config.get(key)
        return None if value is None else Decimal(str(value))

    return GuardSettings(
        pause_blocks_pyramids=bool(config.get("pause_blocks_pyramids")),
        max_total_exposure_usd=amount("max_total_exposure_usd"),
        exposure_action=str(config.get("exposure_action") or "queue"),
        daily_loss_limit_usd=amount("daily_loss_limit_usd"),
        cooldown_minutes_after_loss=int(str(config.get("cooldown_minutes_after_loss") or 0)),
        max_alert_lag_seconds=int(str(config.get("max_alert_lag_seconds") or 0)),
    )


def stale_alert(*, signal_time: datetime | None, now: datetime, max_lag_seconds: int) -> GuardRefusal | None:
    """An alert whose own timestamp is older than `max_alert_lag_seconds` (0: off; no timestamp: fresh)."""
    if not max_lag_seconds or signal_time is None:
        return None
    lag = (now - signal_time).total_seconds()
    if lag <= max_lag_seconds:
        return None
    return GuardRefusal(
        "stale_alert", f"the alert is {int(lag)} s old, more than max_alert_lag_seconds {max_lag_seconds}"
    )


def pause_refusal(state: GuardState, *, new_group: bool, settings: GuardSettings) -> GuardRefusal | None:
    if not new_group and not settings.pause_blocks_pyramids:
        return None
    what = "new groups" if new_group else "pyramids (pause_blocks_pyramids)"
    if state.system_paused:
        return GuardRefusal("system_pause", f"an operator paused trading for everyone: no {what}")
    if state.user_paused:
        return GuardRefusal("pause", f"trading is paused: no {what}")
    return None


def new_group_refusal(
    state: GuardState, settings: GuardSettings, *, symbol: str, capital: Decimal, now: datetime
) -> GuardRefusal | None:
    """Whether a guard stops a new group of `capital` USD on `symbol` now (the first that does)."""
    paused = pause_refusal(state, new_group=True, settings=settings)
    if paused is not None:
        return paused
    limit = settings.daily_loss_limit_usd
    if limit is not None and state.realized_today is not None and -state.realized_today >= limit:
        return GuardRefusal(
            "daily_loss",
            f"realized loss today {-state.realized_today:.2f} reached daily_loss_limit_usd {limit}"
            " (until 00:00 UTC or an operator's reset)",
        )
    cooldown = settings.cooldown_minutes_after_loss
    if cooldown and state.last_loss_close_at is not None:
        until = state.last_loss_close_at + timedelta(minutes=cooldown)
        if now < until:
            left = int((until - now).total_seconds() // 60) + 1
            return GuardRefusal(
                "cooldown", f"{symbol} closed at a loss; cooldown_minutes_after_loss {cooldown} ({left} min left)"
            )
    cap = settings.max_total_exposure_usd
    if cap is not None and state.exposure_usd is not None and state.exposure_usd + capital > cap:
        return GuardRefusal(
            "exposure",
            f"exposure {state.exposure_usd:.2f} + {capital:.2f} would pass max_total_exposure_usd {cap}",
            queue=settings.exposure_action == "queue",
        )
    return None


def sequence_anomaly(*, prev_market_position: str | None, is_exit: bool, has_group: bool, queued: bool) -> str | None:
    """Why the alert contradicts what the engine holds (a missed alert), or ``None``.

    TradingView says the strategy was flat but a group is open; or an exit arrives for nothing open or
    queued. The signal is still handled by the other rules; it is only flagged.
    """
    prev = (prev_market_position or "").strip().lower()
    if not is_exit and prev == "flat" and has_group:
        return "TradingView says the strategy was flat, but a group is open for this symbol"
    if is_exit and not has_group and not queued:
        return "an exit arrived with nothing open or queued for this symbol"
    return None


def daily_loss_reached_by(*, realized_today: Decimal, closed_pnl: Decimal, limit: Decimal | None) -> bool:
    """Whether the close that realized `closed_pnl` (already counted in `realized_today`) is the one that took
    today's realized loss to `limit`: the loss was under the limit without it and is at or over it with it."""
    if limit is None or closed_pnl >= 0:
        return False
    loss_now = -realized_today
    return loss_now + closed_pnl < limit <= loss_now
