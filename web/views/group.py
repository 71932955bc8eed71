"""`/positions/<id>/`: one group, its pyramids and legs, orders, fills, events and candle chart; close,
stop averaging, risk block / unblock / skip once (docs/web.md#group).

Every action calls the service the API calls: `positions.services.exits.group_close_request`
(`POST /api/positions/<id>/close`), `positions.services.guards.group_stop_averaging`
(`POST /api/positions/<id>/stop-averaging`), `riskengine.services.risk_flag_set`
(`POST /api/risk/groups/<id>/{block,unblock,skip-once}`).
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone

from accounts.middleware import client_ip
from exchanges.candles.rules import CandleRow, timeframe_ms
from exchanges.candles.selectors import candles_range
from exchanges.exceptions import ExchangeError
from exchanges.services import public_adapter
from positions.choices import FINAL_ORDER_STATUSES, GroupStatus, OrderStatus
from positions.models import DCAOrder, ExitOrder, PositionGroup
from positions.selectors import group_pnl, last_prices, leg_and_pyramid_pnl
from positions.services.exits import CloseRefusedError, group_close_request
from positions.services.guards import GuardRefusedError, group_stop_averaging
from positions.services.processing import WAITING_FOR_MARKET_RULES
from riskengine.services import FlagRefusedError, risk_flag_set

from ..acting import may_act, trader_action
from ..data import group_page
from ..pages import AuthedRequest, Region, render_page

logger = logging.getLogger(__name__)

ACTIVE = (GroupStatus.WAITING, GroupStatus.LIVE, GroupStatus.PARTIALLY_FILLED, GroupStatus.ACTIVE)
CHART_CANDLES = 500  # at most this many candles around the group's life
CHART_BEFORE = 60  # candles shown before the group opened
CHART_AFTER = 150  # from a store that does not reach now: candles shown from the opening on
EXCHANGE_CACHE_S = 30  # candles fetched from the exchange are kept this long in Redis
EXCHANGE_FAILED_CACHE_S = 15  # an exchange that failed is not asked again for this long
FLAGS = {  # URL word -> (risk flag, value, message)
    "block": ("blocked", True, "Blocked: the risk engine will not close this group."),
    "unblock": ("blocked", False, "Unblocked: the risk engine may close this group again."),
    "skip-once": ("skip_once", True, "The risk engine skips this group in its next cycle."),
}


# ------------------------------------------------------------------------------------------------ reads


def _group(request: AuthedRequest) -> PositionGroup:
    """The group of the URL with its page's data, read once per request; 404 for another user's."""
    found = getattr(request, "_web_group", None)
    if found is None:
        found = group_page(request.user, request.resolver_match.kwargs["group_id"])  # type: ignore[union-attr]
        if found is None:
            raise Http404("No such position.")
        request._web_group = found  # type: ignore[attr-defined]
    return found


def _tp_progress(filled_price: Decimal | None, target: Decimal | None, price: Decimal | None) -> Decimal | None:
    """How far the price has come from a leg's fill to its take-profit, 0–100 %."""
    if filled_price is None or target is None or price is None or target == filled_price:
        return None
    progress = (price - filled_price) / (target - filled_price) * 100
    return max(Decimal(0), min(Decimal(100), progress)).quantize(Decimal("0.1"))


def _order_kind(order: DCAOrder | ExitOrder) -> str:
    if isinstance(order, DCAOrder):
        return f"Entry P{order.pyramid_level} L{order.dca_level}"
    return order.get_purpose_display()


def _order_key(order: DCAOrder | ExitOrder) -> tuple[Any, ...]:
    """Oldest first; at the same time entries before exits, by pyramid and level."""
    if isinstance(order, DCAOrder):
        return (order.created_at, 0, order.pyramid_level, order.dca_level, order.client_order_id)
    return (order.created_at, 1, 0, 0, order.client_order_id)


def _context(request: AuthedRequest) -> dict[str, Any]:
    cached = getattr(request, "_web_group_context", None)
    if cached is not None:
        return cached
    group = _group(request)
    price = last_prices(groups=[group]).get(group.symbol)
    breakdown = leg_and_pyramid_pnl(group=group, price=price)
    pyramids = []
    entry_orders: list[DCAOrder | ExitOrder] = []
    for pyramid in group.pyramids.all():
        levels = pyramid.levels if isinstance(pyramid.levels, list) else []
        legs = []
        for leg in pyramid.orders.all():
            entry_orders.append(leg)
            tp_orders = list(leg.tp_orders.all())
            tp_order = tp_orders[-1] if tp_orders else None
            target = tp_order.price if tp_order is not None and tp_order.price else leg.tp_price
            level = (
                levels[leg.dca_level] if leg.dca_level < len(levels) and isinstance(levels[leg.dca_level], dict) else {}
            )
            legs.append(
                {
                    "leg": leg,
                    "weight": level.get("weight_percent"),
                    "tp_target": target,
                    "tp_order": tp_order,
                    "progress": _tp_progress(leg.filled_price, target, price)
                    if leg.filled_quantity > 0 and group.is_open
                    else None,
                    "pnl": breakdown["legs"].get(str(leg.pk), {}),
                }
            )
        pyramids.append({"pyramid": pyramid, "legs": legs, "pnl": breakdown["pyramids"].get(str(pyramid.index), {})})
    exits = list(group.exit_orders.all())
    orders = sorted([*entry_orders, *exits], key=_order_key)
    events = list(group.events.all())
    # Why a group is still waiting: its market's rules have not loaded (docs/engine.md#group-states).
    waiting_reason = next(
        (e.message for e in events if e.kind == WAITING_FOR_MARKET_RULES and group.status == GroupStatus.WAITING), None
    )
    context = {
        "group": group,
        "price": price,
        "pnl": group_pnl(group=group, price=price),
        "pyramids": pyramids,
        "orders": [{"order": o, "kind": _order_kind(o)} for o in orders],
        "fills": list(group.fills.all()),
        "events": events,
        "waiting_reason": waiting_reason,
        "unfilled_legs": sum(1 for o in entry_orders if not o.filled_quantity and o.status not in FINAL_ORDER_STATUSES),
        "can_act": group.status in ACTIVE and group.user_id == request.user.pk and may_act(request.user),
    }
    request._web_group_context = context  # type: ignore[attr-defined]
    return context


REGIONS = {
    "head": Region("web/partials/group_head.html", _context),
    "detail": Region("web/partials/group_detail.html", _context),
}


@login_required
def group(request: AuthedRequest, group_id: uuid.UUID) -> HttpResponse:
    found = _group(request)
    return render_page(
        request,
        "web/group.html",
        REGIONS,
        {"candles_url": reverse("web:group-candles", args=[found.pk])},
    )


# ------------------------------------------------------------------------------------------------ chart


def _seconds(moment: datetime) -> int:
    return int(moment.timestamp())


def _exchange_candles(exchange_name: str, symbol: str, timeframe: str, start_ms: int) -> tuple[list[Any], str]:
    """Candles from the exchange (`fetch_ohlcv` through the public adapter), kept in Redis a short time;
    ([], why) when the exchange does not answer."""
    key = f"web:candles:{exchange_name}:{symbol}:{timeframe}:{start_ms}"
    cached = cache.get(key)
    if cached is not None:
        return cached["rows"], cached["error"]
    rows: list[Any] = []
    error = ""
    try:
        adapter = public_adapter(exchange_name)
        try:
            page = adapter.fetch_ohlcv(symbol, timeframe, since=start_ms, limit=CHART_CANDLES)
        finally:
            adapter.close()
        rows = [[int(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4])] for r in page]
    except (ExchangeError, ValueError, KeyError) as exc:
        logger.info("chart candles of %s %s %s from the exchange failed: %s", exchange_name, symbol, timeframe, exc)
        error = f"{exchange_name} did not answer for candles ({type(exc).__name__})."
    cache.set(key, {"rows": rows, "error": error}, EXCHANGE_FAILED_CACHE_S if error else EXCHANGE_CACHE_S)
    return rows, error


def _chart_lines(context: dict[str, Any]) -> list[dict[str, Any]]:
    group = context["group"]
    lines: list[dict[str, Any]] = []

    def line(price: Decimal | None, kind: str, title: str) -> None:
        if price:
            lines.append({"price": float(price), "kind": kind, "title": title})

    for item in context["pyramids"]:
        pyramid = item["pyramid"]
        line(pyramid.entry_price, "entry", f"Entry P{pyramid.index}")
        for leg in item["legs"]:
            order = leg["leg"]
            if order.status in (OrderStatus.CANCELED, OrderStatus.REJECTED) and not order.filled_quantity:
                continue
            if order.dca_level:
                line(order.filled_price or order.price, "leg", f"L{order.dca_level}")
            if order.filled_quantity and group.is_open:
                line(leg["tp_target"], "tp", f"TP L{order.dca_level}")
    for exit_order in group.exit_orders.all():
        if (
            exit_order.leg_id is None
            and exit_order.price
            and exit_order.status in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)
        ):
            line(exit_order.price, "tp", exit_order.get_purpose_display())
    line(group.avg_entry_price, "avg", "Average")
    line(group.stop_loss_price, "stop", "Stop")
    if group.trailing_active:
        line(group.trailing_stop_price, "trailing", "Trailing stop")
    return lines


def _rows(stored: list[CandleRow]) -> list[list[Any]]:
    return [[r.open_ms, float(r.open), float(r.high), float(r.low), float(r.close)] for r in stored]


def _stored_from(group: PositionGroup, start_ms: int, end_ms: int) -> list[list[Any]]:
    """Stored candles from the group's opening on (when the store does not reach now)."""
    exchange_name = group.exchange_config.exchange_name
    return _rows(
        candles_range(
            exchange_name=exchange_name,
            symbol=group.symbol,
            timeframe=group.timeframe,
            start_ms=start_ms - start_ms % timeframe_ms(group.timeframe),
            end_ms=end_ms,
            limit=CHART_BEFORE + CHART_AFTER,
        )
    )


@login_required
def group_candles(request: AuthedRequest, group_id: uuid.UUID) -> JsonResponse:
    """The chart's data as JSON: candles (the store, else the exchange), price lines and fill markers."""
    context = _context(request)
    group = context["group"]
    answer: dict[str, Any] = {"candles": [], "lines": _chart_lines(context), "markers": [], "source": None, "note": ""}
    try:
        interval = timeframe_ms(group.timeframe)
    except ValueError:
        answer["note"] = f"No candles for the timeframe {group.timeframe!r}."
        return JsonResponse(answer)
    now_ms = int(timezone.now().timestamp() * 1000)
    opened_ms = int(group.created_at.timestamp() * 1000)
    end_ms = now_ms if group.closed_at is None else min(now_ms, int(group.closed_at.timestamp() * 1000) + 30 * interval)
    start_ms = max(opened_ms - CHART_BEFORE * interval, end_ms - (CHART_CANDLES - 1) * interval)
    start_ms -= start_ms % interval
    exchange_name = group.exchange_config.exchange_name
    # The newest stored candles up to the end; used as they are when they reach it, else the exchange is
    # asked, and when it cannot answer, stored candles that cover the group's opening still make a chart.
    stored = candles_range(
        exchange_name=exchange_name, symbol=group.symbol, timeframe=group.timeframe, end_ms=end_ms, limit=CHART_CANDLES
    )
    stored_rows = _rows(stored)
    rows: list[Any] = []
    if stored_rows and stored_rows[-1][0] >= end_ms - 2 * interval:
        rows, answer["source"] = stored_rows, "store"
    else:
        rows, error = _exchange_candles(exchange_name, group.symbol, group.timeframe, start_ms)
        if rows:
            answer["source"] = "exchange"
        elif stored_rows and (older := _stored_from(group, opened_ms - CHART_BEFORE * interval, end_ms)):
            rows, answer["source"] = older, "store"
            newest = datetime.fromtimestamp(older[-1][0] / 1000, tz=UTC)
            answer["note"] = f"Stored candles (to {newest:%Y-%m-%d %H:%M} UTC): {error or 'the exchange has none.'}"
        else:
            answer["note"] = error or "No candles for this pair and timeframe, stored or from the exchange."
    answer["candles"] = [
        {"time": r[0] // 1000, "open": r[1], "high": r[2], "low": r[3], "close": r[4]} for r in rows if r[0] <= end_ms
    ]
    if answer["candles"]:
        first, last = answer["candles"][0]["time"], answer["candles"][-1]["time"]
        answer["focus"] = {"from": max(first, start_ms // 1000), "to": last}  # the group's life, first shown
        step = interval // 1000
        for fill in context["fills"]:
            at = _seconds(fill.executed_at)
            bar = at - (at - first) % step  # the candle the fill happened in
            if first <= bar <= last:
                buy = fill.side == "buy"
                answer["markers"].append(
                    {
                        "time": bar,
                        "position": "belowBar" if buy else "aboveBar",
                        "shape": "arrowUp" if buy else "arrowDown",
                        "kind": "buy" if buy else "sell",
                        "text": f"{'B' if buy else 'S'} {fill.quantity.normalize():f} @ {fill.price.normalize():f}",
                    }
                )
        answer["markers"].sort(key=lambda m: m["time"])
    return JsonResponse(answer)


# ------------------------------------------------------------------------------------------------ actions


def _own(request: AuthedRequest, group_id: uuid.UUID) -> PositionGroup:
    """The acting user's own group, as the API finds it; 404 otherwise."""
    found = PositionGroup.objects.filter(pk=group_id, user=request.user).first()
    if found is None:
        raise Http404("No such position.")
    return found


def _back(request: AuthedRequest, group_id: uuid.UUID, message: str, level: int = messages.SUCCESS) -> HttpResponse:
    messages.add_message(request, level, message)
    return redirect("web:group", group_id=group_id)


@trader_action
def group_close(request: AuthedRequest, group_id: uuid.UUID) -> HttpResponse:
    found = _own(request, group_id)
    try:
        group_close_request(group=found, actor=request.user, ip=client_ip(request))
    except CloseRefusedError as exc:
        return _back(request, group_id, str(exc), messages.WARNING)
    return _back(request, group_id, "Close requested: open orders are cancelled and the position sold at market.")


@trader_action
def group_stop(request: AuthedRequest, group_id: uuid.UUID) -> HttpResponse:
    found = _own(request, group_id)
    try:
        cancelled = group_stop_averaging(group=found, actor=request.user, ip=client_ip(request))
    except GuardRefusedError as exc:
        return _back(request, group_id, f"Cannot stop averaging: {exc}.", messages.WARNING)
    return _back(request, group_id, f"Averaging stopped: {cancelled} unfilled leg(s) cancelled.")


@trader_action
def group_flag(request: AuthedRequest, group_id: uuid.UUID, flag: str) -> HttpResponse:
    if flag not in FLAGS:
        raise Http404("No such action.")
    found = _own(request, group_id)
    name, value, done = FLAGS[flag]
    try:
        risk_flag_set(group=found, flag=name, value=value, actor=request.user)
    except FlagRefusedError as exc:
        return _back(request, group_id, f"Cannot change its risk flags: {exc}.", messages.WARNING)
    return _back(request, group_id, done)
