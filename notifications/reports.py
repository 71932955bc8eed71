"""The daily jobs: performance analysis at 01:00 UTC and the portfolio report at 08:00 UTC, stored as
`Report` rows and told through the user's channels; the low-balance warning (docs/processes.md#daily-reports).

The performance job also reads each strategy instance's health and runs the strategies' auto-disable
(`strategies.services.strategy_health_check`), telling the owner of an instance it turned off.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from accounts.models import User
from exchanges.exceptions import ExchangeError
from exchanges.selectors import exchange_config_list
from exchanges.services import adapter_for
from positions import selectors
from positions.choices import FINAL_GROUP_STATUSES, GroupStatus, OrderStatus
from positions.config import effective_config
from positions.models import DCAOrder, PositionGroup
from positions.services.configs import config_get
from strategies.rules import health_compute
from strategies.selectors import strategy_list
from strategies.services import strategy_health_check, strategy_trades

from .chart import line_chart_png
from .choices import EventType
from .models import Report
from .services import notify

logger = logging.getLogger(__name__)

ZERO = Decimal("0")
QUOTE = "USDT"
EQUITY_DAYS = 30


def _day_bounds(day: date) -> tuple[datetime, datetime]:
    start = datetime.combine(day, time(0), tzinfo=timezone.get_current_timezone())
    return start, start + timedelta(days=1)


def _s(value: Decimal | None) -> str | None:
    return None if value is None else f"{value.quantize(Decimal('0.01')):f}"


def _active_users() -> list[User]:
    """Users with an exchange config: the ones with anything to report."""
    return list(User.objects.filter(is_active=True, exchange_configs__isnull=False).distinct())


def performance_analyze(*, user: User, day: date) -> dict[str, Any]:
    """One user's closed groups of `day` (UTC): deals, wins, losses, realized PnL, fees, best and worst."""
    start, end = _day_bounds(day)
    closed = PositionGroup.objects.filter(user=user, status=GroupStatus.CLOSED, closed_at__gte=start, closed_at__lt=end)
    totals = closed.aggregate(
        deals=Count("id"),
        wins=Count("id", filter=Q(realized_pnl__gt=0)),
        losses=Count("id", filter=Q(realized_pnl__lt=0)),
        realized=Sum("realized_pnl"),
        fees=Sum("fees_quote"),
    )
    realized = totals["realized"] or ZERO
    deals = totals["deals"] or 0
    best = closed.order_by("-realized_pnl").first()
    worst = closed.order_by("realized_pnl").first()
    failed = PositionGroup.objects.filter(user=user, status=GroupStatus.FAILED, closed_at__gte=start, closed_at__lt=end)
    return {
        "day": day.isoformat(),
        "deals": deals,
        "wins": totals["wins"] or 0,
        "losses": totals["losses"] or 0,
        "win_rate": _s(Decimal(totals["wins"] or 0) / deals * 100) if deals else None,
        "realized_pnl": _s(realized),
        "fees": _s(totals["fees"] or ZERO),
        "failed_groups": failed.count(),
        "best": {"symbol": best.symbol, "pnl": _s(best.realized_pnl)} if best else None,
        "worst": {"symbol": worst.symbol, "pnl": _s(worst.realized_pnl)} if worst else None,
    }


def strategies_analyze(*, user: User, now: datetime) -> tuple[list[dict[str, Any]], int]:
    """Each strategy instance's health (docs/strategies.md#health), after the auto-disable has run on it;
    and how many it turned off now (each one is told by the strategies' own `strategy_disabled` event)."""
    rows: list[dict[str, Any]] = []
    disabled = 0
    for instance in strategy_list(user=user):
        reason = strategy_health_check(instance=instance, now=now)
        disabled += reason is not None
        rows.append(
            {
                "id": str(instance.pk),
                "kind": instance.kind,
                "enabled": instance.enabled if reason is None else False,
                "health": health_compute(strategy_trades(instance=instance), now=now).as_dict(),
                "disabled_reason": f"auto-disabled: {reason}" if reason else instance.disabled_reason,
            }
        )
    return rows, disabled


def daily_performance_run(*, day: date | None = None) -> dict[str, int]:
    """The 01:00 job: yesterday's performance of every user and of each strategy instance (auto-disable
    included), stored and told."""
    now = timezone.now()
    day = day or (now - timedelta(days=1)).date()
    stored = told = switched_off = 0
    for user in _active_users():
        data = performance_analyze(user=user, day=day)
        data["strategies"], disabled = strategies_analyze(user=user, now=now)
        switched_off += disabled
        with transaction.atomic():
            Report.objects.update_or_create(user=user, kind=Report.Kind.PERFORMANCE, day=day, defaults={"data": data})
            stored += 1
            text = (
                f"Daily performance {data['day']}: {data['deals']} deals, {data['wins']} won, "
                f"{data['losses']} lost, realized {data['realized_pnl']} {QUOTE}, fees {data['fees']}"
            )
            told += len(notify(user_id=user.pk, event_type=EventType.DAILY_REPORT, text=text))
    return {"reports": stored, "messages": told, "strategies_disabled": switched_off}


def equity_curve(*, user: User, end: date, days: int = EQUITY_DAYS) -> list[Decimal]:
    """Cumulative realized PnL at the end of each of the last `days` days up to `end` (included)."""
    start, _ = _day_bounds(end - timedelta(days=days - 1))
    before = (
        PositionGroup.objects.filter(user=user, status=GroupStatus.CLOSED, closed_at__lt=start).aggregate(
            total=Sum("realized_pnl")
        )["total"]
        or ZERO
    )
    per_day: dict[date, Decimal] = {}
    for closed_at, pnl in PositionGroup.objects.filter(
        user=user, status=GroupStatus.CLOSED, closed_at__gte=start
    ).values_list("closed_at", "realized_pnl"):
        if closed_at is not None:  # a closed group has its time; the filter above guarantees it
            per_day[closed_at.date()] = per_day.get(closed_at.date(), ZERO) + pnl
    curve: list[Decimal] = []
    running: Decimal = before
    for offset in range(days):
        day = end - timedelta(days=days - 1 - offset)
        running += per_day.get(day, ZERO)
        curve.append(running)
    return curve


def _balances(user: User) -> tuple[dict[str, dict[str, str]], dict[str, str]]:
    balances: dict[str, dict[str, str]] = {}
    problems: dict[str, str] = {}
    for config in exchange_config_list(user=user).filter(is_enabled=True):
        adapter = adapter_for(config)
        try:
            quote = adapter.fetch_balance().get(QUOTE)
        except ExchangeError as exc:
            problems[config.exchange_name] = str(exc)[:200]
            continue
        finally:
            adapter.close()
        if quote is not None:
            balances[config.exchange_name] = {"free": _s(quote.free) or "0", "total": _s(quote.total) or "0"}
    return balances, problems


def next_grid_capital(*, user: User) -> Decimal | None:
    """What the user's next new group would commit (pyramid 0's capital), or None when the grid gives no total."""
    _, grid = effective_config(config_get(user=user), symbol="", timeframe="")
    capital = grid.pyramid_capitals.get(0, grid.capital_usd)
    return capital


def portfolio_report(*, user: User, day: date) -> tuple[dict[str, Any], bytes]:
    """Balances, realized and unrealized PnL, open groups, capital locked in resting legs, the equity chart."""
    open_groups = list(PositionGroup.objects.filter(user=user).exclude(status__in=FINAL_GROUP_STATUSES))
    prices = selectors.last_prices(groups=open_groups)
    unrealized = ZERO
    for group in open_groups:
        price = prices.get(group.symbol)
        if price is not None and group.avg_entry_price:
            unrealized += (price - group.avg_entry_price) * group.filled_quantity
    locked = ZERO
    for price, quantity, filled in DCAOrder.objects.filter(
        group__user=user, status__in=[OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED]
    ).values_list("price", "quantity", "filled_quantity"):
        locked += (price or ZERO) * (quantity - filled)
    realized_all = PositionGroup.objects.filter(user=user).aggregate(total=Sum("realized_pnl"))["total"] or ZERO
    balances, problems = _balances(user)
    curve = equity_curve(user=user, end=day)
    curve[-1] += unrealized  # today's point is marked to market
    capital = next_grid_capital(user=user)
    free = sum((Decimal(b["free"]) for b in balances.values()), ZERO)
    data = {
        "day": day.isoformat(),
        "balances": balances,
        "balance_errors": problems,
        "realized_pnl": _s(realized_all),
        "unrealized_pnl": _s(unrealized),
        "open_groups": len(open_groups),
        "capital_locked": _s(locked),
        "next_grid_capital": _s(capital),
        "low_balance": bool(balances) and capital is not None and free < capital,
        "equity": [_s(v) for v in curve],
    }
    return data, line_chart_png(curve)


def daily_portfolio_run(*, day: date | None = None) -> dict[str, int]:
    """The 08:00 job: every user's portfolio report with its chart, stored and told; low-balance warnings."""
    day = day or timezone.now().date()
    stored = told = warned = 0
    for user in _active_users():
        data, png = portfolio_report(user=user, day=day)
        with transaction.atomic():
            report, _ = Report.objects.update_or_create(
                user=user, kind=Report.Kind.PORTFOLIO, day=day, defaults={"data": data, "chart_png": png}
            )
            stored += 1
            text = (
                f"Portfolio {data['day']}: {data['open_groups']} open groups, realized {data['realized_pnl']} {QUOTE}, "
                f"unrealized {data['unrealized_pnl']}, locked in resting legs {data['capital_locked']}"
            )
            # The equity chart goes with it: a file on email, Telegram and Discord, a link on Slack.
            told += len(notify(user_id=user.pk, event_type=EventType.DAILY_REPORT, text=text, report=report))
            if data["low_balance"]:
                warned += 1
                text = (
                    f"Low balance: free {QUOTE} cannot fund the next grid ({data['next_grid_capital']} {QUOTE} needed)"
                )
                notify(user_id=user.pk, event_type=EventType.LOW_BALANCE, text=text)
    return {"reports": stored, "messages": told, "low_balance": warned}
