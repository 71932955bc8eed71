"""The backtester's driver: the live engine's pure rules replayed over candles (docs/backtests.md).

Only the driver is the backtester's own: an in-memory book of orders walked by the fill model
(`exchanges.fillmodel`). Every decision is the live engine's rule, called with the backtest's state:

| what | rule |
|---|---|
| what an alert does (new group, pyramid, queue, exit, skips, guards) | `positions.rules.intake.decide` |
| the legs of a pyramid, rounded by the market rules | `positions.grid.compute_grid` |
| per-leg take-profit | `positions.rules.exits.leg_take_profit` |
| aggregate TP, stop loss, trailing stop | `positions.rules.exits.exit_decide` |
| pyramid take-profit | `positions.rules.exits.pyramids_at_take_profit`, `pyramid_tp_quantity` |
| what a close sells, dust, stale DCA legs | `positions.rules.exits` |
| held, cost, average, realized PnL, fees | `positions.rules.position.position_add` (`position_totals`' step) |
| group states | `positions.rules.lifecycle.fill_state_target` |
| the queue's promotion order and expiry | `positions.rules.pool` |
| the risk plan across symbols | `riskengine.rules.plan_offset`, `timer_update`, the take-profit cut |

Speed: a candle on which nothing can happen is skipped without looking at its Decimal prices. For each
symbol the book reduces to two numbers, the highest price a "price at or below" event waits for
(resting buys, a stop, a trailing stop, stale legs) and the lowest a "price at or above" event waits
for (resting sells, the aggregate or pyramid TP, trailing's new high); numpy finds the next candle whose
low or high reaches one, or that carries a signal. Comparing the candles' floats with those levels'
floats is exact for this purpose: rounding to the nearest float keeps the order of two decimals (it may
make them equal, and then the candle is walked and the Decimal comparison decides).
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Context, Decimal, localcontext
from typing import Any

import numpy as np

from accounts.choices import Role
from exchanges.candles.rules import CandleRow, timeframe_ms
from exchanges.fillmodel import BUY, SELL, fill_fee, marketable, walk_points
from exchanges.precision import MarketRules
from positions.choices import ExitPurpose, GroupStatus, OrderStatus, TpMode
from positions.config import ConfigError, effective_config, effective_config_shared, parse_engine_config
from positions.grid import GridError, capital_for_pyramid, compute_grid
from positions.rules.exits import (
    AGGREGATE_TP_MODES,
    PER_LEG_TP_MODES,
    ExitSettings,
    ExitState,
    GridLegView,
    PyramidHolding,
    aggregate_tp_price,
    close_quantity,
    dca_legs_to_cancel,
    emptied_group_done,
    exit_decide,
    leg_take_profit,
    pyramid_tp_quantity,
    pyramids_at_take_profit,
    stop_loss_price,
)
from positions.rules.guards import GuardState, guard_settings, new_group_refusal
from positions.rules.intake import (
    AddPyramid,
    Alert,
    ExitGroup,
    IntakeContext,
    IntakeLimits,
    OpenGroup,
    OpenNewGroup,
    PyramidPlan,
    QueueSignal,
    Rejected,
    Skipped,
    decide,
    open_group_plan,
)
from positions.rules.lifecycle import LegFill, fill_state_target
from positions.rules.pool import PoolState, pool_has_room, queue_expired, queue_rank
from positions.rules.position import NO_FILLS, FillData, PositionRunning, PositionTotals, position_add
from positions.webhook import ParsedSignal
from riskengine.rules import (
    GroupView,
    RestingTakeProfit,
    plan_offset,
    settings_from_config,
    take_profits_to_cut,
    take_profits_to_restore,
    timer_update,
)

from .report import build_result
from .types import ENTRY, BacktestError, BacktestRequest, BacktestResult, CandleSeries, Deal, FillRow, LegRecord, Signal

ZERO = Decimal("0")
INF = math.inf
SECRET = "backtest"
USER_ID = uuid.UUID(int=1)
USER_ID_TEXT = str(USER_ID)
CONFIG_ID = uuid.UUID(int=2)
EXCHANGE = "backtest"
TRADING = (GroupStatus.PARTIALLY_FILLED, GroupStatus.ACTIVE)
KIND_OF_PURPOSE: dict[str, str] = {
    ExitPurpose.TAKE_PROFIT_LEG: "tp",
    ExitPurpose.TAKE_PROFIT_AGGREGATE: "tp",
    ExitPurpose.TAKE_PROFIT_PYRAMID: "tp",
    ExitPurpose.EXIT_SIGNAL: "exit",
    ExitPurpose.STOP_LOSS: "stop",
    ExitPurpose.TRAILING_STOP: "stop",
    ExitPurpose.RISK: "risk",
}
DAY_MS = 86_400_000
LIMITS = IntakeLimits(rate_limit_per_minute=1 << 30)  # a backtest's alerts are never throttled
NO_GUARDS = GuardState()


# ------------------------------------------------------------------------------------------- the book


@dataclass(eq=False, slots=True)
class Order:
    """A resting or settled order of the in-memory book."""

    side: str
    kind: str  # entry, dca (buys); tp (sells)
    price: Decimal
    quantity: Decimal
    placed_at: int  # the walk point it was placed at: it can fill from the next one on
    pyramid: int = 0
    level: int = 0
    tp_percent: Decimal = ZERO
    status: str = OrderStatus.OPEN
    filled: Decimal = ZERO
    fill_price: Decimal | None = None
    fill_ms: int | None = None
    fee: Decimal = ZERO
    grid_price: Decimal = ZERO
    leg_fill: LegFill = LegFill(OrderStatus.OPEN, ZERO)  # (status, filled) as the state machine reads it


@dataclass(eq=False)
class Pyramid:
    index: int
    legs: list[Order]
    running: PositionRunning = NO_FILLS  # its own buys' totals (pyramid_aggregate)
    tp_done: bool = False  # pyramid_aggregate: its TP was sold


@dataclass(eq=False)
class Group:
    id: int
    symbol: str
    config: dict[str, Any]  # the effective config snapshot of the group
    config_json: str
    rules: MarketRules
    exit_settings: ExitSettings
    opened_ms: int
    created_at: datetime
    max_pyramids: int
    tp_mode: str
    status: str = GroupStatus.LIVE
    pyramids: list[Pyramid] = field(default_factory=list)
    buys: list[Order] = field(default_factory=list)  # resting entry legs
    sells: list[Order] = field(default_factory=list)  # resting take-profits
    running: PositionRunning = NO_FILLS
    totals: PositionTotals = NO_FILLS.totals()
    exit_state: ExitState = ExitState(avg_entry=ZERO)
    last_pyramid_candle: datetime | None = None
    timer_started_at: datetime | None = None
    timer_pyramids: int = 0
    version: int = 0  # bumped on every change of what the skip levels depend on
    timer_version: int = -1  # the version the risk timer was last updated at
    levels: tuple[float, float] = (-INF, INF)  # `Backtest._levels` at `levels_version`
    levels_version: int = -1
    invested: Decimal = ZERO
    deepest: int = 0
    segments: list[tuple[int, float, float]] = field(default_factory=list)  # (t, held, cost) from t on
    entry_legs: list[Order] = field(default_factory=list)  # every pyramid's legs, in order
    made_uuid: uuid.UUID | None = None

    @property
    def base(self) -> str:
        return self.rules.base

    @property
    def quote(self) -> str:
        return self.rules.quote

    def legs(self) -> Iterable[Order]:
        return self.entry_legs

    @property
    def uuid(self) -> uuid.UUID:
        """The id the intake's view of the group carries (made once)."""
        if self.made_uuid is None:
            self.made_uuid = uuid.UUID(int=self.id + 1000)
        return self.made_uuid


@dataclass(eq=False)
class QueuedEntry:
    """A queued signal as `positions.rules.pool` ranks it."""

    symbol: str
    timeframe: str
    entry_price: Decimal
    queued_at: datetime
    signal: Signal
    replacement_count: int = 0


# ------------------------------------------------------------------------------------------ the driver


class Backtest:
    def __init__(self, request: BacktestRequest, progress: Callable[[float], None] | None) -> None:
        self.request = request
        self.progress = progress
        self.timeframe = request.timeframe
        try:
            self.interval = timeframe_ms(request.timeframe)
        except ValueError as exc:
            raise BacktestError({"timeframe": [str(exc)]}) from None
        try:
            self.merged, self.grid = parse_engine_config(dict(request.config))
        except ConfigError as exc:
            raise BacktestError({f"config.{key}": reasons for key, reasons in exc.errors.items()}) from None
        self.config_json = json.dumps(dict(request.config), sort_keys=True, default=str)
        self.fee_rate = Decimal(request.fee_rate)
        self._series_setup()
        self._signals_setup()
        self.risk_settings = settings_from_config(self.merged)
        # The guards some layer of the config sets (an override may set one the top level leaves off):
        # only their amounts are worked out for the intake's decision.
        layers = [self.merged, *(o for o in (self.merged.get("overrides") or {}).values() if isinstance(o, dict))]
        self.guards_used = {
            key
            for key in ("max_total_exposure_usd", "daily_loss_limit_usd", "cooldown_minutes_after_loss")
            if any(layer.get(key) for layer in layers)
        }
        self.cash = self.initial = self._initial_capital()
        self.held = dict.fromkeys(self.symbols, ZERO)
        self.fees = ZERO
        self.realized = ZERO
        self.stamp = 0
        self.groups: dict[str, Group] = {}
        self.queue: list[QueuedEntry] = []
        self.next_id = 1
        self.deals: list[Deal] = []
        self.fill_rows: list[FillRow] = []
        self.outcomes: dict[str, int] = {}
        self.last_loss_close: dict[str, datetime] = {}
        self.closed_pnl: list[tuple[int, Decimal]] = []
        self.cur_price: dict[str, Decimal] = {}
        self.cur_t: dict[str, int] = dict.fromkeys(self.symbols, -1)
        self.snapshots: list[tuple[int, Decimal, Decimal, tuple[Decimal, ...], Decimal]] = []
        self.changed = False
        self.skip_cache: dict[str, tuple[int, int, int]] = {}  # symbol: (version, from t, next t)
        self.config_texts: dict[int, tuple[object, str]] = {}
        self.t = 0

    # -------------------------------------------------------------------------------------- input

    def _series_setup(self) -> None:
        if not self.request.candles:
            raise BacktestError({"candles": ["no candles given"]})
        self.series: dict[str, CandleSeries] = {}
        for symbol, given in self.request.candles.items():
            series = given if isinstance(given, CandleSeries) else CandleSeries.from_rows(given)
            if len(series) == 0:
                raise BacktestError({f"candles.{symbol}": ["no candles in the period"]})
            if symbol not in self.request.market_rules:
                raise BacktestError({"symbol": [f"no market rules for {symbol}"]})
            self.series[symbol] = series
        self.symbols = list(self.series)
        self.rules = {symbol: self.request.market_rules[symbol] for symbol in self.symbols}
        times = np.unique(np.concatenate([s.open_ms for s in self.series.values()]))
        self.times = times
        self.T = len(times)
        self.loc: dict[str, np.ndarray] = {}
        self.low: dict[str, np.ndarray] = {}
        self.high: dict[str, np.ndarray] = {}
        self.close_f: dict[str, np.ndarray] = {}
        for symbol, series in self.series.items():
            if len(series) == self.T:
                loc = np.arange(self.T)
                self.low[symbol], self.high[symbol], self.close_f[symbol] = series.low, series.high, series.close
            else:
                loc = np.full(self.T, -1, dtype=np.int64)
                where = np.searchsorted(times, series.open_ms)
                loc[where] = np.arange(len(series))
                for name, source in (("low", series.low), ("high", series.high), ("close_f", series.close)):
                    aligned = np.full(self.T, np.nan)
                    aligned[where] = source
                    getattr(self, name)[symbol] = aligned
            self.loc[symbol] = loc
        self.detail: dict[str, CandleSeries] = {}
        for symbol, given in (self.request.detail_candles or {}).items():
            if symbol in self.series:
                self.detail[symbol] = given if isinstance(given, CandleSeries) else CandleSeries.from_rows(given)

    def _signals_setup(self) -> None:
        by_t: dict[int, list[Signal]] = {}
        signals = self.request.signals
        # Each signal's candle (its index in its series) and that candle's place on the common time axis,
        # located for all of a symbol's signals at once.
        located: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for symbol, candles in self.series.items():
            at = np.array([s.time_ms for s in signals if s.symbol == symbol], dtype=np.int64)
            found = np.searchsorted(candles.open_ms, at, side="right") - 1
            place = np.searchsorted(self.times, candles.open_ms[np.maximum(found, 0)]) if len(at) else found
            located[symbol] = (found, place)
        seen = dict.fromkeys(self.series, 0)
        for number, signal in enumerate(signals, start=1):
            where = signal.source or f"signal {number}"
            series = self.series.get(signal.symbol)
            if series is None:
                raise BacktestError({where: [f"unknown symbol {signal.symbol!r}: no candles for it"]})
            indexes, places = located[signal.symbol]
            k = seen[signal.symbol]
            seen[signal.symbol] = k + 1
            index = int(indexes[k])
            if index < 0 or signal.time_ms >= int(series.open_ms[index]) + self.interval:
                moment = datetime.fromtimestamp(signal.time_ms / 1000, tz=UTC).isoformat()
                raise BacktestError({where: [f"no {self.timeframe} candle of {signal.symbol} at {moment}"]})
            by_t.setdefault(int(places[k]), []).append(signal)
        self.signals_at = by_t
        self.signal_ts = sorted(by_t)
        self.next_signal = 0  # the first of `signal_ts` not yet passed

    def _initial_capital(self) -> Decimal:
        if self.request.initial_capital is not None:
            return Decimal(self.request.initial_capital)
        per_group = sum((capital_for_pyramid(self.grid, i) for i in range(self.grid.max_pyramids)), ZERO)
        return per_group * min(len(self.symbols), int(self.merged["max_open_groups"]))

    # ----------------------------------------------------------------------------------- main loop

    def run(self) -> BacktestResult:
        started = time.perf_counter()
        t = 0
        report_every = max(self.T // 50, 1)
        next_report = report_every
        while True:
            t = self._next_t(t)
            if t >= self.T:
                break
            self._candle(t)
            if self.progress is not None and t >= next_report:
                self.progress(min(t / self.T * 100.0, 100.0))
                next_report = t + report_every
            t += 1
        result = self._result(time.perf_counter() - started)
        if self.progress is not None:
            self.progress(100.0)
        return result

    def _levels(self, group: Group) -> tuple[float, float]:
        """(the highest price a "price at or below" event waits for, the lowest an "at or above" one does)."""
        if group.levels_version == group.version:
            return group.levels
        group.levels = self._levels_now(group)
        group.levels_version = group.version
        return group.levels

    def _levels_now(self, group: Group) -> tuple[float, float]:
        low = max((float(o.price) for o in group.buys), default=-INF)
        high = min((float(o.price) for o in group.sells), default=INF)
        if group.status in TRADING and group.totals.avg_entry is not None:
            avg = group.totals.avg_entry
            settings = group.exit_settings
            if settings.tp_mode in AGGREGATE_TP_MODES:
                high = min(high, float(aggregate_tp_price(avg, settings.tp_aggregate_percent)))
            if settings.stop_loss_percent is not None:
                low = max(low, float(stop_loss_price(avg, settings.stop_loss_percent)))
            if settings.trailing_enabled:
                trailing = group.exit_state.trailing
                if trailing.active:
                    low = max(low, float(trailing.stop_price or ZERO))
                    high = min(high, float(trailing.high or ZERO))
                else:
                    high = min(high, float(avg * (1 + settings.trailing_activation_percent / 100)))
            if settings.tp_mode == TpMode.PYRAMID_AGGREGATE:
                for holding in self._holdings(group):
                    if holding.avg_cost is not None and holding.held > 0:
                        high = min(high, float(holding.avg_cost * (1 + settings.tp_aggregate_percent / 100)))
            beyond = group.config.get("cancel_dca_beyond_percent")
            if beyond is not None and group.status == GroupStatus.PARTIALLY_FILLED and group.buys:
                low = INF  # stale legs are judged at every point while some rest
            if group.status == GroupStatus.ACTIVE and group.totals.sold > 0 and not group.buys and not group.sells:
                low = INF  # an emptied group closes at its next check
        return low, high

    def _next_t(self, t: int) -> int:
        """The next candle at or after `t` on which something can happen."""
        if t >= self.T:
            return self.T
        signal_ts = self.signal_ts
        while self.next_signal < len(signal_ts) and signal_ts[self.next_signal] < t:  # t only grows
            self.next_signal += 1
        best = int(signal_ts[self.next_signal]) if self.next_signal < len(signal_ts) else self.T
        if self._risk_live():
            return t
        for symbol, group in self.groups.items():
            cached = self.skip_cache.get(symbol)
            if cached is not None and cached[0] == group.version and cached[1] <= t and cached[2] >= t:
                candidate = cached[2]
            else:
                low, high = self._levels(group)
                candidate = self._scan(symbol, t, low, high, best)
                if candidate < best or candidate == self.T:
                    self.skip_cache[symbol] = (group.version, t, candidate)
            best = min(best, candidate)
            if best == t:
                return t
        return best

    def _scan(self, symbol: str, start: int, low_level: float, high_level: float, limit: int) -> int:
        """The first candle from `start` (before `limit`) whose low reaches `low_level` or high `high_level`."""
        if low_level == -INF and high_level == INF:
            return self.T
        lows, highs = self.low[symbol], self.high[symbol]
        size = 32
        while start < limit:
            end = min(limit, start + size)
            hit = (lows[start:end] <= low_level) | (highs[start:end] >= high_level)
            index = int(hit.argmax())
            if hit[index]:
                return start + index
            start = end
            size *= 4
        return limit if limit < self.T else self.T

    def _candle(self, t: int) -> None:
        self.t = t
        self.changed = False
        close_ms = int(self.times[t]) + self.interval
        for symbol in self.symbols:
            local = int(self.loc[symbol][t])
            if local < 0:
                continue
            group = self.groups.get(symbol)
            if group is not None:
                low, high = self._levels(group)
                if self.low[symbol][t] <= low or self.high[symbol][t] >= high:
                    self._walk(symbol, t, local)
            self.cur_price[symbol] = self.series[symbol].rows[local].close
            self.cur_t[symbol] = t
        for signal in self.signals_at.get(t, ()):
            self._signal(signal, t, close_ms)
        if self.queue and pool_has_room(used=len(self.groups), max_open_groups=int(self.merged["max_open_groups"])):
            # Only a guard keeps an entry queued while the pool has room: the live engine's periodic
            # promotion tries it again, here at each candle the run stops at.
            self._promote(close_ms)
        if self.groups:
            self._timers(close_ms)
            if self._risk_live():
                self._risk_cycle(close_ms)
        if self.changed:
            self._snapshot(t)

    def _walk(self, symbol: str, t: int, local: int) -> None:
        row = self.series[symbol].rows[local]
        start_ms = int(self.times[t])
        detail = self.detail.get(symbol)
        candles: Sequence[CandleRow] = (row,)
        if detail is not None:
            first = int(np.searchsorted(detail.open_ms, start_ms))
            last = int(np.searchsorted(detail.open_ms, start_ms + self.interval))
            if last > first:
                candles = detail.rows[first:last]
        for candle in candles:
            points = walk_points(candle.open, candle.high, candle.low, candle.close)
            point_ms = (candle.open_ms, candle.open_ms, candle.open_ms, candle.open_ms)
            for price, at_ms in zip(points, point_ms, strict=True):
                group = self.groups.get(symbol)
                if group is None:
                    return
                self.stamp += 1
                self.cur_price[symbol] = price
                self.cur_t[symbol] = t
                low, high = self._levels(group)
                if low < float(price) < high:
                    continue  # the candle's skip test, point by point: nothing waits for this price
                self._point(group, price, at_ms)

    # ------------------------------------------------------------------------------- one walk point

    def _point(self, group: Group, price: Decimal, at_ms: int) -> None:
        stamp = self.stamp
        if group.buys:
            hit = [o for o in group.buys if o.placed_at < stamp and price <= o.price]
            if hit:
                hit.sort(key=lambda o: -o.price)
                for order in hit:
                    group.buys.remove(order)
                    self._buy_fill(group, order, order.price, at_ms)
        if group.sells:
            hit = [o for o in group.sells if o.placed_at < stamp and price >= o.price]
            if hit:
                hit.sort(key=lambda o: o.price)
                for order in hit:
                    group.sells.remove(order)
                    order.status = OrderStatus.FILLED
                    self._sell_fill(group, order.price, order.quantity, "tp", at_ms)
        self._checks(group, price, at_ms)

    def _checks(self, group: Group, price: Decimal, at_ms: int) -> None:
        """The monitor's pass at one price: stale legs, pyramid TPs, aggregate TP / stop / trailing,
        emptied groups (`positions.services.monitor.monitor_fills`)."""
        if group.status not in TRADING:
            return
        if group.status == GroupStatus.PARTIALLY_FILLED and group.buys:
            beyond = group.config.get("cancel_dca_beyond_percent")
            if beyond is not None:
                self._stale_legs(group, price, Decimal(str(beyond)))
        if group.tp_mode == TpMode.PYRAMID_AGGREGATE:
            self._pyramid_take_profits(group, price, at_ms)
            if group.symbol not in self.groups:
                return
        avg = group.totals.avg_entry
        if avg is not None:
            current = group.exit_state
            if current.avg_entry != avg:  # the live group row's average follows its fills
                current = ExitState(avg, current.stop_loss_price, current.trailing)
            decision = exit_decide(state=current, price=price, settings=group.exit_settings)
            state = ExitState(avg, decision.stop_loss_price, decision.trailing)
            if state != group.exit_state:
                group.exit_state = state
                group.version += 1
            if decision.purpose:
                self._close(group, price, decision.purpose, at_ms)
                return
        if self._emptied(group, price):
            self._close(group, price, ExitPurpose.TAKE_PROFIT_LEG, at_ms)

    @staticmethod
    def _emptied(group: Group, price: Decimal) -> bool:
        """Take-profits sold everything sellable and nothing rests (`rules.exits.emptied_group_done`)."""
        if group.status != GroupStatus.ACTIVE or group.buys or group.sells:
            return False
        return emptied_group_done(
            sold=group.totals.sold, held=group.totals.held, orders_resting=False, price=price, rules=group.rules
        )

    def _stale_legs(self, group: Group, price: Decimal, beyond: Decimal) -> None:
        views = [
            GridLegView(
                order_id=str(id(o)),
                pyramid=o.pyramid,
                level=o.level,
                grid_price=o.grid_price,
                settled=o.status != OrderStatus.OPEN,
            )
            for o in group.legs()
        ]
        doomed = set(dca_legs_to_cancel(views, side="long", price=price, beyond_percent=beyond))
        if doomed:
            for order in [o for o in group.buys if str(id(o)) in doomed]:
                self._cancel(group, order)
            self._status(group)

    def _holdings(self, group: Group) -> list[PyramidHolding]:
        out = []
        for pyramid in group.pyramids:
            if pyramid.tp_done:
                continue
            totals = pyramid.running.totals()
            out.append(PyramidHolding(index=pyramid.index, held=totals.held, avg_cost=totals.avg_entry))
        return out

    def _pyramid_take_profits(self, group: Group, price: Decimal, at_ms: int) -> None:
        tp_percent = group.exit_settings.tp_aggregate_percent
        due = pyramids_at_take_profit(self._holdings(group), price=price, tp_percent=tp_percent)
        for index in due:
            pyramid = group.pyramids[index]
            for order in [o for o in group.buys if o.pyramid == index]:
                self._cancel(group, order)
            totals = pyramid.running.totals()
            quantity = pyramid_tp_quantity(
                pyramid_held=totals.held, group_held=group.totals.held, price=price, rules=group.rules
            )
            pyramid.tp_done = True
            group.version += 1
            if quantity is None:
                continue
            self._sell_fill(group, price, quantity, "tp", at_ms)
        if due:
            self._status(group)
            if self._emptied(group, price):
                self._close(group, price, ExitPurpose.TAKE_PROFIT_PYRAMID, at_ms)

    # -------------------------------------------------------------------------------------- fills

    def _buy_fill(self, group: Group, order: Order, price: Decimal, at_ms: int) -> None:
        fee = fill_fee(BUY, price=price, quantity=order.quantity, rate=self.fee_rate)
        fill = FillData("buy", price, order.quantity, fee, group.base)
        order.status, order.filled, order.fill_price, order.fill_ms, order.fee = (
            OrderStatus.FILLED,
            order.quantity,
            price,
            at_ms,
            fee,
        )
        order.leg_fill = LegFill(OrderStatus.FILLED, order.quantity)
        pyramid = group.pyramids[order.pyramid]
        pyramid.running = position_add(pyramid.running, fill, base=group.base, quote=group.quote)
        self._book(group, fill, order.kind, at_ms)
        group.deepest = max(group.deepest, order.level)
        group.invested = max(group.invested, group.totals.cost)
        self._status(group)
        if group.tp_mode in PER_LEG_TP_MODES:
            tp = leg_take_profit(
                net_filled=order.quantity - fee,
                placed=ZERO,
                fill_price=price,
                tp_percent=order.tp_percent,
                rules=group.rules,
            )
            if tp is not None:
                group.sells.append(Order(SELL, "tp", tp.price, tp.quantity, self.stamp, order.pyramid, order.level))

    def _sell_fill(self, group: Group, price: Decimal, quantity: Decimal, kind: str, at_ms: int) -> None:
        fee = fill_fee(SELL, price=price, quantity=quantity, rate=self.fee_rate)
        self._book(group, FillData("sell", price, quantity, fee, group.quote), kind, at_ms)

    def _book(self, group: Group, fill: FillData, kind: str, at_ms: int) -> None:
        """A fill into the group's position and the account (as the simulator's balances move)."""
        before = group.totals.realized_pnl
        group.running = position_add(group.running, fill, base=group.base, quote=group.quote)
        group.totals = group.running.totals()
        self.realized += group.totals.realized_pnl - before
        if fill.side == "buy":
            self.cash -= fill.price * fill.quantity
            self.held[group.symbol] += fill.quantity - fill.fee
            self.fees += fill.fee * fill.price
        else:
            self.cash += fill.price * fill.quantity - fill.fee
            self.held[group.symbol] -= fill.quantity
            self.fees += fill.fee
        self.fill_rows.append(
            FillRow(at_ms, fill.side, fill.price, fill.quantity, fill.fee, fill.fee_asset, kind, group.symbol, group.id)
        )
        group.segments.append((self.t, float(group.totals.held), float(group.totals.cost)))
        group.version += 1
        self.changed = True

    def _cancel(self, group: Group, order: Order) -> None:
        order.status = OrderStatus.CANCELED
        order.leg_fill = LegFill(OrderStatus.CANCELED, order.filled)
        if order in group.buys:
            group.buys.remove(order)
        if order in group.sells:
            group.sells.remove(order)
        group.version += 1
        self.changed = True

    def _status(self, group: Group) -> None:
        legs = [o.leg_fill for o in group.entry_legs]
        target = fill_state_target(group.status, legs)
        if target is not None:
            group.status = target
            group.version += 1

    # ------------------------------------------------------------------------------------ signals

    def _signal(self, signal: Signal, t: int, close_ms: int) -> None:
        symbol = signal.symbol
        entry_filter = self.request.entry_filter
        if signal.action == ENTRY and entry_filter is not None and not entry_filter(signal.time_ms, symbol):
            self._count("filtered")
            return
        now = datetime.fromtimestamp(close_ms / 1000, tz=UTC)
        price = signal.price if signal.price is not None else self.cur_price[symbol]
        outcome = decide(self._context(symbol, now), self._alert(signal, price, now), now)
        if isinstance(outcome, OpenNewGroup):
            self._open(symbol, outcome, close_ms, now)
        elif isinstance(outcome, AddPyramid):
            adding = self.groups[symbol]
            adding.last_pyramid_candle = outcome.candle
            self._pyramid(adding, outcome.pyramid, close_ms)
        elif isinstance(outcome, QueueSignal):
            self._enqueue(signal, symbol, price, now)
        elif isinstance(outcome, ExitGroup):
            self.queue = [q for q in self.queue if q.symbol != symbol]
            group = self.groups.get(symbol)
            if outcome.group_id is not None and group is not None:
                self._close(group, self.cur_price[symbol], ExitPurpose.EXIT_SIGNAL, close_ms)
                self._count("exit")
            else:
                self._count("exit_queued_removed")
        elif isinstance(outcome, Skipped):
            # A guard's reason carries amounts ("daily_loss: realized loss today 15.28 ..."): count by guard.
            self._count(f"{outcome.status}: {outcome.reason.split(': ', 1)[0]}")
        elif isinstance(outcome, Rejected):
            self._count(f"rejected: {outcome.error.detail}")

    def _count(self, what: str) -> None:
        self.outcomes[what] = self.outcomes.get(what, 0) + 1

    def _context(self, symbol: str, now: datetime) -> IntakeContext:
        group = self.groups.get(symbol)
        open_group = None
        if group is not None:
            open_group = OpenGroup(
                id=group.uuid,
                user_id=USER_ID,
                symbol=symbol,
                timeframe=self.timeframe,
                side="long",
                status=group.status,
                pyramid_count=len(group.pyramids),
                max_pyramids=group.max_pyramids,
                last_pyramid_candle=group.last_pyramid_candle,
                config=group.config_json,
                filled_quantity=group.totals.held,
                avg_entry_price=group.totals.avg_entry,
                realized_pnl=group.totals.realized_pnl,
            )
        pool = PoolState(
            used=len(self.groups),
            queued=len(self.queue),
            queued_here=any(q.symbol == symbol for q in self.queue),
        )
        return IntakeContext(
            secret=SECRET,
            config_id=CONFIG_ID,
            engine_config=self.config_json,
            recent=0,
            group=open_group,
            limits=LIMITS,
            pool=pool,
            guards=self._guard_state(symbol, now),
            role=Role.TRADER,
        )

    def _guard_state(self, symbol: str, now: datetime) -> GuardState:
        used = self.guards_used
        if not used:
            return NO_GUARDS
        exposure = realized_today = None
        if "max_total_exposure_usd" in used:
            exposure = sum(
                (g.totals.cost + sum((o.price * o.quantity for o in g.buys), ZERO) for g in self.groups.values()),
                ZERO,
            )
        if "daily_loss_limit_usd" in used:
            day = int(now.timestamp() * 1000) // DAY_MS
            realized_today = sum((pnl for at, pnl in self.closed_pnl if at // DAY_MS == day), ZERO)
        return GuardState(
            exposure_usd=exposure, realized_today=realized_today, last_loss_close_at=self.last_loss_close.get(symbol)
        )

    def _alert(self, signal: Signal, price: Decimal, now: datetime) -> Alert:
        is_exit = signal.action != ENTRY
        parsed = ParsedSignal(
            secret="",
            source="backtest",
            exchange=EXCHANGE,
            raw_symbol=signal.symbol,
            timeframe=self.timeframe,
            action="exit" if is_exit else "buy",
            intent_type="exit" if is_exit else "signal",
            intent_side="sell" if is_exit else "buy",
            strategy="grid",
            trade_id="",
            tv_timestamp=now.isoformat(),
            signal_time=now,
            entry_price=None if is_exit else price,
            close_price=price,
            order_size=None,
            max_slippage_percent=None,
            body={},
        )
        return Alert(
            user_id=USER_ID_TEXT,
            raw=b"",
            ip=None,
            started=0.0,
            body={"secret": SECRET},
            parsed=parsed,
            symbol=signal.symbol,
            exchange_symbol=self.rules[signal.symbol].exchange_symbol,
            internal=True,
        )

    # --------------------------------------------------------------------------- groups and legs

    def _open(self, symbol: str, outcome: OpenNewGroup, at_ms: int, now: datetime) -> None:
        config = dict(outcome.config)
        # The intake hands out one memoized config per symbol: encode it once. The entry keeps the object
        # alive, so its id cannot be reused by another.
        known = self.config_texts.get(id(outcome.config))
        if known is None:
            known = self.config_texts[id(outcome.config)] = (
                outcome.config,
                json.dumps(config, sort_keys=True, default=str),
            )
        config_json = known[1]
        stop = config.get("stop_loss_percent")
        group = Group(
            id=self.next_id,
            symbol=symbol,
            config=config,
            config_json=config_json,
            rules=self.rules[symbol],
            exit_settings=ExitSettings(
                tp_mode=outcome.tp_mode,
                tp_aggregate_percent=ExitSettings.aggregate_percent_of(config),
                stop_loss_percent=None if stop is None else Decimal(str(stop)),
                trailing_enabled=bool(config["trailing_enabled"]),
                trailing_activation_percent=Decimal(str(config["trailing_activation_percent"])),
                trailing_stop_percent=Decimal(str(config["trailing_stop_percent"])),
            ),
            opened_ms=at_ms,
            created_at=now,
            max_pyramids=outcome.max_pyramids,
            tp_mode=outcome.tp_mode,
            last_pyramid_candle=outcome.candle,
        )
        self.next_id += 1
        self.groups[symbol] = group
        self.skip_cache.pop(symbol, None)
        self._count("new_entry")
        if not self._pyramid(group, outcome.pyramid, at_ms):
            del self.groups[symbol]
            self._promote(at_ms)

    def _pyramid(self, group: Group, plan: PyramidPlan, at_ms: int) -> bool:
        """Place a pyramid's legs at the current price (`positions.services.processing`); False when its
        grid cannot be ordered (the signal is rejected with the grid's reason)."""
        _, grid = effective_config_shared(group.config_json, symbol=group.symbol, timeframe=self.timeframe)
        if plan.capital_usd != capital_for_pyramid(grid, plan.index):  # the signal's own order size
            grid = dataclasses.replace(
                grid, pyramid_capitals={**dict(grid.pyramid_capitals), plan.index: plan.capital_usd}
            )
        assert plan.entry_price is not None
        try:
            legs = compute_grid(config=grid, pyramid_index=plan.index, entry_price=plan.entry_price, rules=group.rules)
        except GridError as exc:
            self._count(f"rejected: {exc.reason}")
            return False
        if plan.index > 0:
            self._count("pyramid")
        current = self.cur_price[group.symbol]
        orders = [
            Order(
                BUY,
                "entry" if leg.level == 0 else "dca",
                leg.price,
                leg.quantity,
                self.stamp,
                plan.index,
                leg.level,
                leg.tp_percent,
                grid_price=leg.price,
            )
            for leg in legs
        ]
        group.pyramids.append(Pyramid(plan.index, orders))
        group.entry_legs.extend(orders)
        group.version += 1
        self.changed = True
        for order, leg in zip(orders, legs, strict=True):
            market = leg.level == 0 and plan.entry_order_type == "market"
            if market or marketable(BUY, order.price, current):
                self._buy_fill(group, order, current, at_ms)
            else:
                group.buys.append(order)
        self._status(group)
        return True

    def _close(self, group: Group, price: Decimal, purpose: str, at_ms: int) -> None:
        """Cancel what rests, sell what is held at market, record the deal, free the slot, promote."""
        for order in [*group.buys, *group.sells]:
            self._cancel(group, order)
        quantity = close_quantity(held=group.totals.held, reference_price=price, rules=group.rules)
        if quantity is not None:
            self._sell_fill(group, price, quantity, KIND_OF_PURPOSE.get(purpose, "exit"), at_ms)
        group.status = GroupStatus.CLOSED
        self._deal(group, at_ms, purpose)
        del self.groups[group.symbol]
        self.skip_cache.pop(group.symbol, None)
        pnl = group.totals.realized_pnl
        self.closed_pnl.append((at_ms, pnl))
        if pnl < 0:
            self.last_loss_close[group.symbol] = datetime.fromtimestamp(at_ms / 1000, tz=UTC)
        self.changed = True
        self._promote(at_ms)

    # -------------------------------------------------------------------------------- the queue

    def _enqueue(self, signal: Signal, symbol: str, price: Decimal, now: datetime) -> None:
        for entry in self.queue:
            if entry.symbol == symbol:
                entry.entry_price, entry.signal = price, signal
                entry.replacement_count += 1
                self._count("queued_replaced")
                return
        self.queue.append(QueuedEntry(symbol, self.timeframe, price, now, signal))
        self._count("queued")

    def _promote(self, at_ms: int) -> None:
        """Open queued signals while the pool has room (`positions.services.queue.queue_promote`)."""
        now = datetime.fromtimestamp(at_ms / 1000, tz=UTC)
        max_age = self.merged.get("queue_max_age_minutes")
        kept = [q for q in self.queue if not queue_expired(queued_at=q.queued_at, now=now, max_age_minutes=max_age)]
        if len(kept) != len(self.queue):
            self._count("queue_expired")
            self.queue = kept
        blocked: set[int] = set()  # the entries a guard keeps queued this time (by id)
        while self.queue and pool_has_room(used=len(self.groups), max_open_groups=int(self.merged["max_open_groups"])):
            waiting = [q for q in self.queue if id(q) not in blocked]
            if not waiting:
                break
            prices = {q.symbol: self.cur_price[q.symbol] for q in waiting if q.symbol in self.cur_price}
            continuing = {(s, self.timeframe) for s in self.groups}
            ranked = queue_rank(waiting, prices, self.merged["queue_priority_rules"], continuing)
            entry = ranked[0]
            if entry.symbol in self.groups or entry.symbol not in self.cur_price:
                self.queue.remove(entry)
                continue
            merged, grid = effective_config(self.request.config, symbol=entry.symbol, timeframe=self.timeframe)
            # The guards admit a promotion as they admit a new entry (`queue_promote`): one still refused
            # stays queued, and the next ranked entry is tried.
            refusal = new_group_refusal(
                self._guard_state(entry.symbol, now),
                guard_settings(merged),
                symbol=entry.symbol,
                capital=capital_for_pyramid(grid, 0),
                now=now,
            )
            if refusal is not None:
                blocked.add(id(entry))
                self._count(f"queue_blocked: {refusal.guard}")
                continue
            self.queue.remove(entry)
            parsed = self._alert(entry.signal, entry.entry_price, now).parsed
            assert parsed is not None
            plan = open_group_plan(merged, grid, parsed, now)
            self._count("promoted")
            self._open(entry.symbol, plan, at_ms, now)

    # ----------------------------------------------------------------------------- the risk engine

    def _view(self, group: Group) -> GroupView:
        return GroupView(
            group_id=str(group.id),
            market=(EXCHANGE, group.symbol),
            status=group.status,
            held=group.totals.held,
            cost=group.totals.cost,
            pyramids=len(group.pyramids),
            max_pyramids=group.max_pyramids,
            legs_unsent=0,
            legs_unfilled=len(group.buys),
            created_at=group.created_at,
            timer_started_at=group.timer_started_at,
            timer_pyramids=group.timer_pyramids,
            fee_rate=self.fee_rate,
        )

    def _timers(self, close_ms: int) -> None:
        if not self.risk_settings.enabled:
            return
        now = datetime.fromtimestamp(close_ms / 1000, tz=UTC)
        for group in self.groups.values():
            # The timer moves only when what it reads (pyramids, legs) changed: after one of the group's events.
            if group.timer_version == group.version:
                continue
            started, pyramids = timer_update(self._view(group), self.risk_settings, now)
            group.timer_started_at, group.timer_pyramids = started, pyramids
            group.timer_version = group.version

    def _risk_live(self) -> bool:
        """Whether the risk engine could act now: it needs a loser whose timer runs and another group."""
        if not self.risk_settings.enabled or len(self.groups) < 2:
            return False
        return any(g.timer_started_at is not None for g in self.groups.values())

    def _risk_cycle(self, close_ms: int) -> None:
        now = datetime.fromtimestamp(close_ms / 1000, tz=UTC)
        views = [self._view(g) for g in self.groups.values() if g.status in TRADING]
        prices = {(EXCHANGE, s): self.cur_price[s] for s in self.groups if s in self.cur_price}
        rules = {(EXCHANGE, s): self.rules[s] for s in self.groups}
        decision = plan_offset(views, prices, rules, self.risk_settings, now)
        if not decision.offset or decision.plan is None:
            return
        plan = decision.plan
        self._count("risk_offset")
        by_id = {str(g.id): g for g in self.groups.values()}
        for sale in plan.winners:
            winner = by_id[sale.group_id]
            self._risk_sale(winner, sale.price, sale.quantity, close_ms)
        loser = by_id[plan.loser.group_id]
        self._close(loser, plan.loser.price, ExitPurpose.RISK, close_ms)

    def _risk_sale(self, group: Group, price: Decimal, quantity: Decimal, at_ms: int) -> None:
        """A winner's partial close: its take-profits cut to what it will hold, the sale, the cut part
        placed again where it still fits (`riskengine.services.risk_action_execute`)."""
        resting = [RestingTakeProfit(str(id(o)), o.price, o.quantity) for o in group.sells]
        by_id = {str(id(o)): o for o in group.sells}
        cut_ids = take_profits_to_cut(resting, keep=group.totals.held - quantity)
        cut = [r for r in resting if r.order_id in cut_ids]
        for order_id in cut_ids:
            self._cancel(group, by_id[order_id])
        self._sell_fill(group, price, quantity, "risk", at_ms)
        room = group.totals.held - sum((o.quantity for o in group.sells), ZERO)
        for order_id, again in take_profits_to_restore(cut, room=room, rules=group.rules):
            old = by_id[order_id]
            group.sells.append(Order(SELL, "tp", old.price, again, self.stamp, old.pyramid, old.level))
        group.version += 1

    # -------------------------------------------------------------------------------- the result

    def _snapshot(self, t: int) -> None:
        locked = sum((o.price * o.quantity for g in self.groups.values() for o in g.buys), ZERO)
        self.snapshots.append((t, self.cash, self.realized, tuple(self.held[s] for s in self.symbols), locked))

    def _floating_drawdown(self, group: Group, end_t: int) -> float:
        """The deal's worst unrealized loss at a candle's low (after the exit fee), in % of its cost then.

        Each fill starts a segment of constant held and cost, up to the next fill's candle (the last one
        to the deal's end); numpy takes each segment's lowest low at once (`fmin` skips missing candles)."""
        if not group.segments:
            return 0.0
        starts = np.array([start for start, _, _ in group.segments], dtype=np.int64)
        held = np.array([held for _, held, _ in group.segments])
        cost = np.array([cost for _, _, cost in group.segments])
        first, last = int(starts[0]), max(end_t, int(starts[-1]))
        lows = np.fmin.reduceat(self.low[group.symbol][first : last + 1], starts - first)
        with np.errstate(divide="ignore", invalid="ignore"):
            loss = (cost - held * lows * (1 - float(self.fee_rate))) / cost * 100.0
        loss = loss[(held > 0) & (cost > 0) & np.isfinite(loss)]
        return float(max(loss.max(), 0.0)) if len(loss) else 0.0

    def _deal(self, group: Group, closed_ms: int | None, reason: str) -> None:
        totals = group.totals
        fees = totals.fees_quote
        self.deals.append(
            Deal(
                id=group.id,
                symbol=group.symbol,
                opened_ms=group.opened_ms,
                closed_ms=closed_ms,
                close_reason=str(reason),
                pyramids=len(group.pyramids),
                safety_orders_used=group.deepest,
                invested=group.invested,
                realized_pnl=totals.realized_pnl,
                fees=fees,
                return_pct=float(totals.realized_pnl / group.invested * 100) if group.invested > 0 else None,
                max_floating_drawdown_pct=self._floating_drawdown(group, self.t),
                legs=tuple(
                    LegRecord(o.pyramid, o.level, o.grid_price, o.quantity, o.fill_ms, o.fill_price, o.fee)
                    for o in group.legs()
                ),
            )
        )

    def _result(self, seconds: float) -> BacktestResult:
        for group in list(self.groups.values()):
            self._deal(group, None, "open")
        return build_result(self, seconds)


def run_backtest(request: BacktestRequest, progress: Callable[[float], None] | None = None) -> BacktestResult:
    """Replay `request` through the engine's rules (docs/backtests.md). Raises `BacktestError` on bad input.

    The arithmetic runs in Python's default decimal context (28 digits, half-even), whatever context the
    calling thread has been left with: ccxt's synchronous client, for one, sets its thread's rounding to
    half-up. The same alerts then give the same amounts to the last digit wherever the backtest runs.
    """
    with localcontext(Context(prec=28, rounding=ROUND_HALF_EVEN)):
        return Backtest(request, progress).run()
