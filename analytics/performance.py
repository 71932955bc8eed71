"""The live account's performance (docs/performance.md), read from the fills ledger: what
`GET /api/metrics/performance` answers and the performance page shows.

Each group's fills are walked in execution order with the engine's own position arithmetic
(`positions.rules.position.position_totals`), giving after every fill what the group holds, what that
cost and what it has realized. From those:

- realized PnL today, this week, this month (UTC calendar periods) and in all, each credited at the time
  of the sell that realized it;
- unrealized PnL of open groups at the last prices the exit checks keep (`positions.selectors.last_prices`);
- a daily equity curve: realized, and total = realized + what was held at each day's end marked at that
  day's close from the candle store (today: the last price); a day of a symbol without candles counts
  its holding at cost;
- deals (closed groups): win/loss statistics, best and worst, the histogram of their returns;
- drawdown, Sharpe and Sortino on the total curve over a capital base, by `analytics.metrics`;
- per-pair exposure, pool usage and the capital locked in resting entry legs.

Money is Decimal (strings in the answer); ratios are floats.
"""

from __future__ import annotations

import math
from collections import OrderedDict, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
from django.db.models import BigIntegerField, Count, F, Func, Max, Prefetch, Q

from accounts.models import User
from core.chart import line_chart_png
from exchanges.candles.selectors import candles_range_many
from exchanges.models import ExchangeConfig
from positions.choices import FINAL_GROUP_STATUSES, GroupStatus
from positions.config import effective_config
from positions.models import Fill, PositionGroup
from positions.rules.position import NO_FILLS, FillData, base_quote, position_add, position_totals
from positions.selectors import last_prices, resting_entry_notional
from positions.services.configs import config_get
from positions.services.queue import pool_used

from . import metrics

ZERO = Decimal("0")
DAY_MS = 86_400_000
HISTOGRAM_BINS = 20


def _s(value: Decimal | None) -> str | None:
    return None if value is None else f"{value.quantize(Decimal('1e-8')).normalize():f}"


def _f(value: float | None, places: int = 4) -> float | None:
    return None if value is None or not math.isfinite(value) else round(value, places)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class FillStep:
    """A group's state right after one of its fills."""

    at: datetime
    held: Decimal
    cost: Decimal
    realized: Decimal  # the group's realized PnL so far
    realized_delta: Decimal  # what this fill realized


@dataclass
class GroupWalk:
    group: PositionGroup
    steps: list[FillStep]
    invested: Decimal  # quote spent on every buy, fees included

    @property
    def realized(self) -> Decimal:
        return self.steps[-1].realized if self.steps else ZERO


def _walk(group: PositionGroup, fills: list[tuple[datetime, FillData]]) -> GroupWalk:
    base, quote = base_quote(group.symbol)
    steps: list[FillStep] = []
    previous = ZERO
    running = NO_FILLS
    for at, fill in fills:
        # The running fold `position_totals` makes, one fill at a time (not a fold of each prefix again).
        running = position_add(running, fill, base=base, quote=quote)
        totals = running.totals()
        steps.append(
            FillStep(
                at=at,
                held=totals.held,
                cost=totals.cost,
                realized=totals.realized_pnl,
                realized_delta=totals.realized_pnl - previous,
            )
        )
        previous = totals.realized_pnl
    invested = position_totals([fill for _, fill in fills if fill.side == "buy"], base=base, quote=quote).cost
    return GroupWalk(group=group, steps=steps, invested=invested)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_US = Func(
    F("executed_at"), template="(extract(epoch FROM %(expressions)s) * 1000000)::bigint", output_field=BigIntegerField()
)


# The walks are the user's whole fill history folded: they change only when a fill is booked or a group
# opens, ends or is saved. Each process keeps the latest walks of its recent users with the version they
# were read at (two small aggregates), so a page re-read on every live event does not fold the history
# again (docs/performance.md).
_WALKS_KEPT = 64
_walks_kept: OrderedDict[Any, tuple[tuple[Any, ...], list[GroupWalk]]] = OrderedDict()


def _walks_version(user: User) -> tuple[Any, ...]:
    groups = PositionGroup.objects.filter(user=user).aggregate(
        count=Count("pk"),
        final=Count("pk", filter=Q(status__in=FINAL_GROUP_STATUSES)),
        closed=Max("closed_at"),
        saved=Max("updated_at"),
    )
    fills = Fill.objects.filter(group__user=user).aggregate(count=Count("pk"), last=Max("recorded_at"))
    return (*groups.values(), *fills.values())


def _walks(user: User) -> list[GroupWalk]:
    version = _walks_version(user)
    kept = _walks_kept.get(user.pk)
    if kept is not None and kept[0] == version:
        _walks_kept.move_to_end(user.pk)
        return kept[1]
    walks = _walks_read(user)
    _walks_kept[user.pk] = (version, walks)
    while len(_walks_kept) > _WALKS_KEPT:
        _walks_kept.popitem(last=False)
    return walks


def _walks_read(user: User) -> list[GroupWalk]:
    groups = {
        group.pk: group
        for group in PositionGroup.objects.filter(user=user)
        # Prefetched, not joined: the user's few configs are made once and shared, not once per group.
        .prefetch_related(Prefetch("exchange_config", ExchangeConfig.objects.only("id", "exchange_name")))
        # What the numbers read of a group: whole rows of hundreds of groups cost more than the sums.
        .only(
            "id",
            "symbol",
            "timeframe",
            "status",
            "closed_at",
            "exchange_config_id",
        )
        .order_by("created_at")
    }
    fills: dict[Any, list[tuple[datetime, FillData]]] = defaultdict(list)
    # Times as whole microseconds since the epoch: thousands of timestamptz values cost more to parse than
    # everything else this page reads.
    rows = (
        Fill.objects.filter(group__user=user)
        .annotate(at_us=_EPOCH_US)
        .order_by("group_id", "executed_at", "pk")
        .values_list("group_id", "at_us", "side", "price", "quantity", "fee", "fee_asset", "fee_quote_value")
    )
    for group_id, at_us, side, price, quantity, fee, fee_asset, fee_value in rows:
        at = _EPOCH + timedelta(microseconds=at_us)
        fill = FillData(side, price, quantity, fee, fee_asset, fee_value)
        fills[group_id].append((at, fill))
    return [_walk(groups[group_id], group_fills) for group_id, group_fills in fills.items() if group_id in groups]


def _closes(walks: Iterable[GroupWalk], first: date, last: date) -> dict[tuple[str, str], dict[date, Decimal]]:
    """Daily closes of every (exchange, symbol) held at some point, from the candle store."""
    wanted = {(walk.group.exchange_config.exchange_name, walk.group.symbol) for walk in walks}
    found = candles_range_many(
        markets=list(wanted), timeframe="1d", start_ms=_ms(_day_start(first)), end_ms=_ms(_day_start(last))
    )
    return {
        market: {datetime.fromtimestamp(row.open_ms / 1000, tz=UTC).date(): row.close for row in rows}
        for market, rows in found.items()
    }


def _floating_by_day(
    walks: Iterable[GroupWalk], closes: dict[tuple[str, str], dict[date, Decimal]], today: date
) -> dict[date, Decimal]:
    """Unrealized PnL at the end of each past day: each group's holding then, at that day's close (a day
    without a close: at cost, i.e. nothing)."""
    floating: dict[date, Decimal] = defaultdict(lambda: ZERO)
    for walk in walks:
        if not walk.steps:
            continue
        series = closes.get((walk.group.exchange_config.exchange_name, walk.group.symbol), {})
        if not series:
            continue  # no close on any day: counted at cost every day, i.e. nothing
        day = walk.steps[0].at.astimezone(UTC).date()
        index = -1
        while day < today:
            end = _day_start(day + timedelta(days=1))
            while index + 1 < len(walk.steps) and walk.steps[index + 1].at < end:
                index += 1
            step = walk.steps[index]
            if step.held <= 0 and index == len(walk.steps) - 1:
                break  # nothing held after its last fill: the group is done
            close = series.get(day)
            if step.held > 0 and close is not None:
                floating[day] += close * step.held - step.cost
            day += timedelta(days=1)
    return floating


def _histogram(returns: list[float]) -> list[dict[str, Any]]:
    """Deal returns (%) in at most HISTOGRAM_BINS bins of a whole-percent width."""
    if not returns:
        return []
    low, high = math.floor(min(returns)), math.ceil(max(returns))
    if high == low:
        high = low + 1
    width = max(1, math.ceil((high - low) / HISTOGRAM_BINS))
    bins = [{"from": edge, "to": edge + width, "count": 0} for edge in range(low, high, width)]
    for value in returns:
        index = min(int((value - low) // width), len(bins) - 1)
        bins[index]["count"] += 1
    return bins


def _deal(walk: GroupWalk) -> dict[str, Any]:
    group = walk.group
    realized = walk.realized
    return {
        "group_id": str(group.pk),
        "symbol": group.symbol,
        "timeframe": group.timeframe,
        "closed_at": group.closed_at.isoformat() if group.closed_at else None,
        "invested": _s(walk.invested),
        "realized_pnl": _s(realized),
        "return_pct": _f(float(realized / walk.invested * 100)) if walk.invested else None,
    }


def capital_base(*, user: User) -> Decimal:
    """What returns are measured on: the grid's capital per group × the pool's size (the most the engine
    would commit at once), from the user's config."""
    config = config_get(user=user)
    _, grid = effective_config(config, symbol="", timeframe="")
    per_group = grid.pyramid_capitals.get(0, grid.capital_usd) or ZERO
    return per_group * Decimal(int(config["max_open_groups"]))


def performance_compute(*, user: User, now: datetime, capital: Decimal | None = None) -> dict[str, Any]:
    """The user's performance numbers as of `now` (docs/performance.md#numbers)."""
    walks = _walks(user)
    today = now.astimezone(UTC).date()
    starts = {
        "day": _day_start(today),
        "week": _day_start(today - timedelta(days=today.weekday())),
        "month": _day_start(today.replace(day=1)),
    }
    realized_in = dict.fromkeys(starts, ZERO)
    realized_all = ZERO
    events: list[tuple[datetime, Decimal]] = []
    for walk in walks:
        for step in walk.steps:
            if step.realized_delta:
                events.append((step.at, step.realized_delta))
                realized_all += step.realized_delta
                for name, start in starts.items():
                    if step.at >= start:
                        realized_in[name] += step.realized_delta
    events.sort(key=lambda item: item[0])

    # Unrealized now, and the exposure per pair.
    open_walks = [walk for walk in walks if walk.group.status not in FINAL_GROUP_STATUSES and walk.steps]
    prices = last_prices(groups=[walk.group for walk in open_walks])
    unrealized = ZERO
    unpriced: list[str] = []
    exposure: dict[str, dict[str, Decimal]] = {}
    for walk in open_walks:
        last = walk.steps[-1]
        if last.held <= 0:
            continue
        row = exposure.setdefault(walk.group.symbol, {"held": ZERO, "cost": ZERO, "value": ZERO, "unrealized": ZERO})
        row["held"] += last.held
        row["cost"] += last.cost
        price = prices.get(walk.group.symbol)
        if price is None:
            unpriced.append(walk.group.symbol)
            row["value"] += last.cost
            continue
        row["value"] += price * last.held
        row["unrealized"] += price * last.held - last.cost
        unrealized += price * last.held - last.cost
    locked = resting_entry_notional(user_id=user.pk)

    # The daily curve: realized and marked to market at each day's close.
    first_day = min((walk.steps[0].at.astimezone(UTC).date() for walk in walks if walk.steps), default=today)
    closes = _closes([walk for walk in walks if walk.steps], first_day, today)
    realized_by_day: dict[date, Decimal] = defaultdict(lambda: ZERO)
    for at, delta in events:
        realized_by_day[at.astimezone(UTC).date()] += delta
    floating_by_day = _floating_by_day(walks, closes, today)
    daily: list[dict[str, Any]] = []
    running = ZERO
    for offset in range((today - first_day).days + 1):
        day = first_day + timedelta(days=offset)
        running += realized_by_day[day]
        floating = unrealized if day == today else floating_by_day.get(day, ZERO)
        daily.append({"day": day.isoformat(), "realized": running, "total": running + floating})

    base = capital if capital is not None else capital_base(user=user)
    times = [_ms(_day_start(date.fromisoformat(row["day"]))) for row in daily]
    equity = [float(base + row["total"]) for row in daily]
    measured = base > 0 and len(equity) > 0
    returns = metrics.simple_returns(metrics.daily_values(times, equity)) if measured else np.empty(0)
    drawdowns = metrics.drawdowns_pct(equity) if measured else np.empty(0)
    money_peak = ZERO
    max_drawdown_money = ZERO
    for row in daily:
        money_peak = max(money_peak, row["total"])
        max_drawdown_money = max(max_drawdown_money, money_peak - row["total"])

    closed = sorted(
        (walk for walk in walks if walk.group.status == GroupStatus.CLOSED),
        key=lambda walk: walk.group.closed_at or now,
    )
    stats = metrics.deal_stats([walk.realized for walk in closed])
    deals = [_deal(walk) for walk in closed]
    ranked = sorted(deals, key=lambda deal: Decimal(deal["realized_pnl"]))
    pool_max = int(config_get(user=user)["max_open_groups"])
    return {
        "as_of": now.isoformat(),
        "capital_base": _s(base),
        "realized_pnl": {name: _s(value) for name, value in realized_in.items()} | {"all": _s(realized_all)},
        "unrealized_pnl": _s(unrealized),
        "unpriced_symbols": sorted(set(unpriced)),
        "total_pnl": _s(realized_all + unrealized),
        "equity": [{"day": row["day"], "realized": _s(row["realized"]), "total": _s(row["total"])} for row in daily],
        "pnl_by_day": [
            {"day": row["day"], "pnl": _s(realized_by_day[date.fromisoformat(row["day"])])} for row in daily
        ],
        "pnl_by_week": _by_period(realized_by_day, lambda day: (day - timedelta(days=day.weekday())).isoformat()),
        "pnl_by_month": _by_period(realized_by_day, lambda day: day.strftime("%Y-%m")),
        "deals": {key: _f(value) if isinstance(value, float) else value for key, value in stats.as_dict().items()},
        "best_deals": ranked[::-1][:5],
        "worst_deals": ranked[:5],
        "return_histogram": _histogram([deal["return_pct"] for deal in deals if deal["return_pct"] is not None]),
        "drawdown": {
            "max_pct": _f(float(max(drawdowns))) if len(drawdowns) else 0.0,
            "current_pct": _f(float(drawdowns[-1])) if len(drawdowns) else 0.0,
            "max": _s(max_drawdown_money),
        },
        "sharpe": _f(metrics.sharpe(returns)) if len(returns) else None,
        "sortino": _f(metrics.sortino(returns)) if len(returns) else None,
        "profit_factor": _f(stats.profit_factor),
        "exposure": [
            {
                "symbol": symbol,
                "held": _s(row["held"]),
                "cost": _s(row["cost"]),
                "value": _s(row["value"]),
                "unrealized": _s(row["unrealized"]),
                "locked_in_resting_legs": _s(locked.get(symbol, ZERO)),
            }
            for symbol, row in sorted(exposure.items())
        ],
        "pool": {"used": pool_used(user_id=user.pk), "max": pool_max},
        "capital_locked": _s(sum(locked.values(), ZERO)),
        "capital_locked_by_symbol": {symbol: _s(value) for symbol, value in sorted(locked.items())},
    }


def _by_period(realized_by_day: dict[date, Decimal], label: Any) -> list[dict[str, Any]]:
    totals: dict[str, Decimal] = {}
    for day, value in sorted(realized_by_day.items()):
        totals[label(day)] = totals.get(label(day), ZERO) + value
    return [{"period": period, "pnl": _s(value)} for period, value in totals.items()]


def performance_csv_rows(numbers: dict[str, Any]) -> list[list[Any]]:
    """The numbers as CSV rows: a summary block, then the daily curve."""
    rows: list[list[Any]] = [["metric", "value"]]
    for name, value in numbers["realized_pnl"].items():
        rows.append([f"realized_pnl_{name}", value])
    for name in ("unrealized_pnl", "total_pnl", "capital_base", "capital_locked", "sharpe", "sortino", "profit_factor"):
        rows.append([name, numbers[name]])
    for name, value in numbers["drawdown"].items():
        rows.append([f"drawdown_{name}", value])
    for name, value in numbers["deals"].items():
        rows.append([name, value])
    rows.append(["pool_used", numbers["pool"]["used"]])
    rows.append(["pool_max", numbers["pool"]["max"]])
    rows.append([])
    rows.append(["day", "realized_pnl_that_day", "realized", "total"])
    by_day = {row["day"]: row["pnl"] for row in numbers["pnl_by_day"]}
    for row in numbers["equity"]:
        rows.append([row["day"], by_day.get(row["day"]), row["realized"], row["total"]])
    return rows


def performance_chart_png(numbers: dict[str, Any]) -> bytes:
    """The total equity curve (PnL marked to market, per day) as a PNG."""
    return line_chart_png([Decimal(row["total"]) for row in numbers["equity"]])
