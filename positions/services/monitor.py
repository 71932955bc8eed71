"""Fill monitoring and exit checks (docs/engine.md#fill-monitoring, docs/engine.md#exit-checks).

Cost grows with the number of symbols that have open orders, not with the number of orders: one
open-orders request per symbol (or one for the whole account when that is cheaper), then individual
look-ups only for orders that left the open list.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction

from accounts.logs import log_warning
from exchanges.exceptions import ExchangeError
from exchanges.models import ExchangeConfig
from exchanges.services import adapter_for

from .. import ledger
from ..choices import FINAL_ORDER_STATUSES, RESTING_ORDER_STATUSES, ExitPurpose, GroupStatus, TpMode
from ..config import engine_setting
from ..models import PositionGroup, Pyramid
from ..rules.exits import (
    ExitSettings,
    ExitState,
    GridLegView,
    PyramidHolding,
    TrailingState,
    dca_legs_to_cancel,
    emptied_group_done,
    exit_decide,
    market_exit_allowed,
    pyramid_tp_quantity,
    pyramids_at_take_profit,
)
from ..rules.position import base_quote, position_totals
from ..selectors import last_price_remember
from . import orders
from .exits import group_close, group_close_continue, market_sell_intent
from .market import rules_for
from .state import group_event

logger = logging.getLogger(__name__)

# Binance request weights: openOrders with a symbol costs 6, without one 80.
WEIGHT_OPEN_ORDERS_SYMBOL = 6
WEIGHT_OPEN_ORDERS_ALL = 80


@dataclass
class MonitorReport:
    configs: int = 0
    symbols: int = 0
    orders_checked: int = 0
    orders_updated: int = 0
    lookups: int = 0
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "configs": self.configs,
            "symbols": self.symbols,
            "orders_checked": self.orders_checked,
            "orders_updated": self.orders_updated,
            "lookups": self.lookups,
            "errors": self.errors[:20],
        }


def monitor_fills(*, config_ids: list[Any] | None = None) -> MonitorReport:
    """One pass over every config with watched orders."""
    report = MonitorReport()
    ids = ledger.configs_with_watched_orders()
    if config_ids is not None:
        ids &= {str(i) for i in config_ids} | set(config_ids)
    for config in ExchangeConfig.objects.filter(pk__in=ids, is_enabled=True):
        report.configs += 1
        try:
            _monitor_config(config, report)
        except ExchangeError as exc:
            report.errors.append(f"{config.exchange_name}: {exc}")
            logger.warning("monitor: %s: %s", config.pk, exc)
    return report


def _monitor_config(config: ExchangeConfig, report: MonitorReport) -> None:
    watched = ledger.orders_watched(config_id=config.pk)
    if not watched:
        return
    adapter = adapter_for(config)
    by_symbol: dict[str, list[ledger.Order]] = defaultdict(list)
    for order in watched:
        by_symbol[order.symbol].append(order)
    report.symbols += len(by_symbol)
    report.orders_checked += len(watched)
    open_states = {}
    if len(by_symbol) * WEIGHT_OPEN_ORDERS_SYMBOL > WEIGHT_OPEN_ORDERS_ALL:
        states = adapter.fetch_open_orders(None)
    else:
        states = [s for symbol in by_symbol for s in adapter.fetch_open_orders(symbol)]
    for listed in states:
        if listed.client_order_id:
            open_states[listed.client_order_id] = listed
    cycle = _CycleTrades(adapter)
    # Orders that may have new fills: resting ones that left the open list, and open ones that filled more.
    may_have_fills = [
        o
        for o in watched
        if (o.client_order_id not in open_states and o.status in RESTING_ORDER_STATUSES)
        or (o.client_order_id in open_states and open_states[o.client_order_id].filled_quantity != o.filled_quantity)
    ]
    cycle.prefetch(may_have_fills)
    for order in watched:
        state = open_states.get(order.client_order_id)
        if state is not None:
            changed = (
                state.filled_quantity != order.filled_quantity
                or orders.STATE_MAP.get(state.status) != order.status
                or not order.exchange_order_id
            )
            if changed:
                orders.order_apply_state(order_id=order.pk, state=state, adapter=cycle)
                report.orders_updated += 1
            continue
        # Left the open list (filled, cancelled) or never confirmed: look this one up.
        report.lookups += 1
        before = order.status
        outcome = orders.order_sync(order_id=order.pk, adapter=cycle)
        if outcome != orders.SETTLED:
            report.orders_updated += int(ledger.order_status(order_id=order.pk) != before)


class _CycleTrades:
    """The adapter for one monitor pass, with the account's trades fetched once per symbol.

    Booking a fill needs the order's own trades (fees, ids); asking for them order by order costs
    Binance weight 20 each — a pass in which 100 legs fill would spend 2,000. One request per symbol
    covers every order of the pass; an order whose trades are not in it yet is simply booked next pass.
    Likewise a fee paid in BNB is valued at BNB's price (`positions.services.fees`): asked once per pass,
    not once per order booked.
    """

    def __init__(self, adapter: Any) -> None:
        self._adapter = adapter
        self._trades: dict[str, tuple[Any, list[Any]]] = {}
        self._tickers: dict[str, Any] = {}  # symbol -> Ticker, or the ExchangeError the request raised

    def prefetch(self, watched: list[ledger.Order]) -> None:
        since: dict[str, Any] = {}
        for order in watched:
            start = order.created_at - timedelta(minutes=5)  # clock skew between us and the exchange
            since[order.symbol] = min(since.get(order.symbol, start), start)
        for symbol, start in since.items():
            self._trades[symbol] = (start, self._adapter.fetch_my_trades(symbol, since=start))

    def fetch_my_trades(self, symbol: str, since: Any = None) -> list[Any]:
        cached = self._trades.get(symbol)
        if cached is not None and since is not None and cached[0] <= since:
            return [t for t in cached[1] if t.timestamp is None or t.timestamp >= since]
        return self._adapter.fetch_my_trades(symbol, since=since)

    def fetch_ticker(self, symbol: str) -> Any:
        if symbol not in self._tickers:
            try:
                self._tickers[symbol] = self._adapter.fetch_ticker(symbol)
            except ExchangeError as exc:
                self._tickers[symbol] = exc
        known = self._tickers[symbol]
        if isinstance(known, ExchangeError):
            raise known
        return known

    def __getattr__(self, name: str) -> Any:
        return getattr(self._adapter, name)


def check_exits(*, prices: dict[tuple[str, str], Decimal] | None = None) -> dict[str, int]:
    """Take-profit (aggregate, pyramid), stop loss and trailing stop for every group holding a position;
    with `cancel_dca_beyond_percent`, the entry legs that price has left behind."""
    counts = {"checked": 0, "closing": 0, "continued": 0, "postponed": 0, "dca_cancelled": 0}
    for group in PositionGroup.objects.filter(status=GroupStatus.CLOSING):
        group_close_continue(group_id=group.pk)
        counts["continued"] += 1
    groups = list(
        PositionGroup.objects.filter(
            status__in=[GroupStatus.PARTIALLY_FILLED, GroupStatus.ACTIVE],
            filled_quantity__gt=0,
        ).select_related("exchange_config")
    )
    known: dict[tuple[str, str], Decimal | None] = dict(prices or {})  # None: the exchange has no last price
    for group in groups:
        key = (str(group.exchange_config_id), group.symbol)
        if key not in known:
            try:
                known[key] = adapter_for(group.exchange_config).fetch_ticker(group.symbol).last
            except ExchangeError as exc:
                log_warning("TRADING", f"{group.symbol}: no price for exit checks: {exc}", user=group.user)
                continue
        price = known[key]
        if price is None:
            continue
        last_price_remember(config_id=group.exchange_config_id, symbol=group.symbol, price=price)
        counts["checked"] += 1
        if group.status == GroupStatus.PARTIALLY_FILLED:
            counts["dca_cancelled"] += dca_legs_cancel_beyond(group=group, price=price)
        if group.tp_mode == TpMode.PYRAMID_AGGREGATE:
            pyramid_take_profits(group_id=group.pk, price=price)
        purpose = exit_trigger(group_id=group.pk, price=price)
        if not purpose:
            continue
        if not market_exit_may_start(group=group, purpose=purpose, trigger_price=price):
            counts["postponed"] += 1
        elif group_close(group_id=group.pk, purpose=purpose):
            counts["closing"] += 1
    _close_emptied_groups(known)
    return counts


def _percent(value: Any) -> Decimal:
    return Decimal(str(value))


def exit_settings(group: PositionGroup) -> ExitSettings:
    """The exit settings of a group's config snapshot, defaults from `positions.config`."""
    config = group.config
    stop = engine_setting(config, "stop_loss_percent")
    return ExitSettings(
        tp_mode=group.tp_mode,
        tp_aggregate_percent=ExitSettings.aggregate_percent_of(config),
        stop_loss_percent=None if stop is None else _percent(stop),
        trailing_enabled=bool(engine_setting(config, "trailing_enabled")),
        trailing_activation_percent=_percent(engine_setting(config, "trailing_activation_percent")),
        trailing_stop_percent=_percent(engine_setting(config, "trailing_stop_percent")),
    )


def exit_trigger(*, group_id: Any, price: Decimal) -> str | None:
    """Which exit (if any) `price` triggers; keeps the stop and trailing stop state under the row lock."""
    with transaction.atomic():
        group = PositionGroup.objects.select_for_update().get(pk=group_id)
        if group.status not in (GroupStatus.PARTIALLY_FILLED, GroupStatus.ACTIVE) or not group.avg_entry_price:
            return None
        state = ExitState(
            avg_entry=group.avg_entry_price,
            stop_loss_price=group.stop_loss_price,
            trailing=TrailingState(
                active=group.trailing_active, high=group.trailing_high, stop_price=group.trailing_stop_price
            ),
        )
        decision = exit_decide(state=state, price=price, settings=exit_settings(group))
        changed = {
            "stop_loss_price": decision.stop_loss_price,
            "trailing_active": decision.trailing.active,
            "trailing_high": decision.trailing.high,
            "trailing_stop_price": decision.trailing.stop_price,
        }
        fields = [name for name, value in changed.items() if getattr(group, name) != value]
        if fields:
            for name in fields:
                setattr(group, name, changed[name])
            group.save(update_fields=[*fields, "updated_at"])
    return decision.purpose


def market_exit_may_start(*, group: PositionGroup, purpose: str, trigger_price: Decimal) -> bool:
    """`slippage_action: reject`: a price-triggered market exit starts only while the latest price has not
    moved against it past `max_slippage_percent` since the price that triggered it (docs/engine.md#slippage).

    With the default `warn` nothing is asked of the exchange. A refused exit is only postponed: the next
    pass decides again on its own fresh price.
    """
    if engine_setting(group.config, "slippage_action") != "reject":
        return True
    limit = _percent(engine_setting(group.config, "max_slippage_percent"))
    try:
        latest = adapter_for(group.exchange_config).fetch_ticker(group.symbol).last
    except ExchangeError:
        latest = None  # nothing newer than the trigger's own price to compare with
    if market_exit_allowed(action="reject", reference=trigger_price, latest=latest, limit_percent=limit):
        return True
    message = (
        f"{ExitPurpose(purpose).label} at {trigger_price} not sent: the price is already {latest}, "
        f"more than {limit}% lower (slippage_action reject); decided again on the next check"
    )
    log_warning("TRADING", f"{group.symbol}: {message}", user=group.user, details={"group_id": str(group.pk)})
    group_event(group, "exit_postponed", message, {"trigger_price": str(trigger_price), "latest": str(latest)})
    return False


def dca_legs_cancel_beyond(*, group: PositionGroup, price: Decimal) -> int:
    """`cancel_dca_beyond_percent`: cancel the entry legs still resting in a pyramid whose last level the
    price has passed by more than that percentage (docs/engine.md#exit-checks). Returns how many."""
    beyond = engine_setting(group.config, "cancel_dca_beyond_percent")
    if beyond is None:
        return 0
    legs = [
        GridLegView(
            order_id=str(leg["id"]),
            pyramid=leg["pyramid_level"],
            level=leg["dca_level"],
            grid_price=leg["expected_price"],
            settled=leg["status"] in FINAL_ORDER_STATUSES,
        )
        for leg in group.dca_orders.values("id", "pyramid_level", "dca_level", "expected_price", "status")
    ]
    doomed = dca_legs_to_cancel(legs, side=group.side, price=price, beyond_percent=_percent(beyond))
    for order_id in doomed:
        orders.order_cancel(order_id=order_id)
    if doomed:
        group_event(
            group,
            "dca_cancelled",
            f"{len(doomed)} entry leg(s) cancelled: price {price} is more than {beyond}% past the last level",
            {"orders": list(doomed), "price": str(price)},
        )
    return len(doomed)


def _pyramid_holding(pyramid: Pyramid, base: str, quote: str) -> PyramidHolding:
    """One pyramid's own position from its entry legs' buy fills (fee-net quantity, cost incl. fees)."""
    totals = position_totals(ledger.pyramid_entry_fills(pyramid_id=pyramid.pk), base=base, quote=quote)
    return PyramidHolding(index=pyramid.index, held=totals.held, avg_cost=totals.avg_entry)


def pyramid_take_profits(*, group_id: Any, price: Decimal) -> int:
    """`pyramid_aggregate`: each pyramid sells its own filled quantity once price reaches its average + tp%."""
    group = PositionGroup.objects.select_related("exchange_config").get(pk=group_id)
    rules = rules_for(group)
    if rules is None:
        return 0
    base, quote = base_quote(group.symbol)
    tp_percent = ExitSettings.aggregate_percent_of(group.config)
    pending = {
        pyramid.index: pyramid
        for pyramid in Pyramid.objects.filter(group=group).exclude(tp_orders__purpose=ExitPurpose.TAKE_PROFIT_PYRAMID)
    }
    holdings = [_pyramid_holding(pyramid, base, quote) for pyramid in pending.values()]
    due = pyramids_at_take_profit(holdings, price=price, tp_percent=tp_percent)
    if due and not market_exit_may_start(group=group, purpose=ExitPurpose.TAKE_PROFIT_PYRAMID, trigger_price=price):
        return 0
    sent = 0
    for index in due:
        pyramid = pending[index]
        for leg in pyramid.orders.exclude(status__in=FINAL_ORDER_STATUSES):
            orders.order_cancel(order_id=leg.pk)
        holding = _pyramid_holding(pyramid, base, quote)  # a leg may have filled while being cancelled
        with transaction.atomic():
            locked = PositionGroup.objects.select_for_update().get(pk=group.pk)
            if locked.status not in (GroupStatus.PARTIALLY_FILLED, GroupStatus.ACTIVE):
                return sent
            quantity = pyramid_tp_quantity(
                pyramid_held=holding.held, group_held=locked.filled_quantity, price=price, rules=rules
            )
            if quantity is None:
                continue
            order = market_sell_intent(
                locked,
                quantity=quantity,
                purpose=ExitPurpose.TAKE_PROFIT_PYRAMID,
                reference_price=price,
                pyramid=pyramid,
            )
        orders.order_submit(order_id=order.pk)
        sent += 1
    return sent


def _close_emptied_groups(prices: dict[tuple[str, str], Decimal | None]) -> None:
    """Close active groups whose per-leg TPs sold everything sellable (`rules.exits.emptied_group_done`);
    see docs/engine.md#dust."""
    candidates = PositionGroup.objects.filter(status=GroupStatus.ACTIVE, sold_quantity__gt=0).select_related(
        "exchange_config"
    )
    for group in candidates:
        if ledger.orders_exist(group_id=group.pk, statuses=RESTING_ORDER_STATUSES):
            continue
        rules = rules_for(group)
        if rules is None:
            continue
        price = prices.get((str(group.exchange_config_id), group.symbol)) or group.avg_entry_price or Decimal("0")
        done = emptied_group_done(
            sold=group.sold_quantity, held=group.filled_quantity, orders_resting=False, price=price, rules=rules
        )
        if done:
            group_close(group_id=group.pk, purpose=ExitPurpose.TAKE_PROFIT_LEG)
