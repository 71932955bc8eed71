"""Fill monitoring and exit conditions (SPEC §3.4, §4).

Cost grows with the number of symbols that have open orders, not with the number of orders: one
open-orders request per symbol (or one for the whole account when that is cheaper), then individual
look-ups only for orders that left the open list.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Q

from accounts.logs import log_warning
from exchanges.exceptions import ExchangeError
from exchanges.models import ExchangeConfig
from exchanges.services import adapter_for

from ..choices import ExitPurpose, GroupStatus, OrderStatus, TpMode
from ..models import DCAOrder, ExitOrder, PositionGroup
from . import orders
from .exits import group_close, group_close_continue, market_sell_intent

logger = logging.getLogger(__name__)

# Binance request weights: openOrders with a symbol costs 6, without one 80.
WEIGHT_OPEN_ORDERS_SYMBOL = 6
WEIGHT_OPEN_ORDERS_ALL = 80
WATCHED = [OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED, OrderStatus.UNKNOWN]


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


def _watched_orders(config_id: Any) -> list[DCAOrder | ExitOrder]:
    watch = Q(status__in=WATCHED) | Q(status=OrderStatus.PENDING, submit_attempts__gt=0)
    found: list[DCAOrder | ExitOrder] = []
    for model in (DCAOrder, ExitOrder):
        found += list(model.objects.filter(watch, exchange_config_id=config_id))
    return found


def monitor_fills(*, config_ids: list[Any] | None = None) -> MonitorReport:
    """One pass over every config with watched orders."""
    report = MonitorReport()
    watch = Q(status__in=WATCHED) | Q(status=OrderStatus.PENDING, submit_attempts__gt=0)
    ids = set(DCAOrder.objects.filter(watch).values_list("exchange_config_id", flat=True))
    ids |= set(ExitOrder.objects.filter(watch).values_list("exchange_config_id", flat=True))
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
    watched = _watched_orders(config.pk)
    if not watched:
        return
    adapter = adapter_for(config)
    by_symbol: dict[str, list[DCAOrder | ExitOrder]] = defaultdict(list)
    for order in watched:
        by_symbol[order.symbol].append(order)
    report.symbols += len(by_symbol)
    report.orders_checked += len(watched)
    open_states = {}
    if len(by_symbol) * WEIGHT_OPEN_ORDERS_SYMBOL > WEIGHT_OPEN_ORDERS_ALL:
        states = adapter.fetch_open_orders(None)
    else:
        states = [s for symbol in by_symbol for s in adapter.fetch_open_orders(symbol)]
    for state in states:
        if state.client_order_id:
            open_states[state.client_order_id] = state
    adapter = _CycleTrades(adapter)
    # Orders that may have new fills: resting ones that left the open list, and open ones that filled more.
    may_have_fills = [
        o
        for o in watched
        if (o.client_order_id not in open_states and o.status in orders.RESTING_ORDER_STATUSES)
        or (o.client_order_id in open_states and open_states[o.client_order_id].filled_quantity != o.filled_quantity)
    ]
    adapter.prefetch(may_have_fills)
    for order in watched:
        state = open_states.get(order.client_order_id)
        if state is not None:
            changed = (
                state.filled_quantity != order.filled_quantity
                or orders.STATE_MAP.get(state.status) != order.status
                or not order.exchange_order_id
            )
            if changed:
                orders.order_apply_state(order_id=order.pk, state=state, adapter=adapter)
                report.orders_updated += 1
            continue
        # Left the open list (filled, cancelled) or never confirmed: look this one up.
        report.lookups += 1
        before = order.status
        outcome = orders.order_sync(order_id=order.pk, adapter=adapter)
        if outcome != orders.SETTLED:
            report.orders_updated += int(type(order).objects.filter(pk=order.pk).exclude(status=before).exists())


class _CycleTrades:
    """The adapter for one monitor pass, with the account's trades fetched once per symbol.

    Booking a fill needs the order's own trades (fees, ids); asking for them order by order costs
    Binance weight 20 each — a pass in which 100 legs fill would spend 2,000. One request per symbol
    covers every order of the pass; an order whose trades are not in it yet is simply booked next pass.
    """

    def __init__(self, adapter: Any) -> None:
        self._adapter = adapter
        self._trades: dict[str, tuple[Any, list[Any]]] = {}

    def prefetch(self, watched: list[DCAOrder | ExitOrder]) -> None:
        from datetime import timedelta

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

    def __getattr__(self, name: str) -> Any:
        return getattr(self._adapter, name)


def check_exits(*, prices: dict[tuple[str, str], Decimal] | None = None) -> dict[str, int]:
    """Take-profit (aggregate, pyramid), stop loss and trailing stop for every group holding a position."""
    counts = {"checked": 0, "closing": 0, "continued": 0}
    for group in PositionGroup.objects.filter(status=GroupStatus.CLOSING):
        group_close_continue(group_id=group.pk)
        counts["continued"] += 1
    groups = list(
        PositionGroup.objects.filter(
            status__in=[GroupStatus.PARTIALLY_FILLED, GroupStatus.ACTIVE],
            filled_quantity__gt=0,
        ).select_related("exchange_config")
    )
    prices = dict(prices or {})
    for group in groups:
        key = (str(group.exchange_config_id), group.symbol)
        if key not in prices:
            try:
                prices[key] = adapter_for(group.exchange_config).fetch_ticker(group.symbol).last
            except ExchangeError as exc:
                log_warning("TRADING", f"{group.symbol}: no price for exit checks: {exc}", user=group.user)
                continue
        price = prices[key]
        if price is None:
            continue
        from ..selectors import last_price_remember

        last_price_remember(config_id=group.exchange_config_id, symbol=group.symbol, price=price)
        counts["checked"] += 1
        if group.tp_mode == TpMode.PYRAMID_AGGREGATE:
            pyramid_take_profits(group_id=group.pk, price=price)
        purpose = exit_trigger(group_id=group.pk, price=price)
        if purpose and group_close(group_id=group.pk, purpose=purpose):
            counts["closing"] += 1
    _close_emptied_groups(prices)
    return counts


def exit_trigger(*, group_id: Any, price: Decimal) -> str | None:
    """Which exit (if any) `price` triggers; updates the trailing stop state under the row lock."""
    with transaction.atomic():
        group = PositionGroup.objects.select_for_update().get(pk=group_id)
        if group.status not in (GroupStatus.PARTIALLY_FILLED, GroupStatus.ACTIVE) or not group.avg_entry_price:
            return None
        config = group.config or {}
        avg = group.avg_entry_price
        if group.tp_mode in (TpMode.AGGREGATE, TpMode.HYBRID):
            target = avg * (1 + Decimal(str(config.get("tp_aggregate_percent") or "1.5")) / 100)
            if price >= target:
                return ExitPurpose.TAKE_PROFIT_AGGREGATE
        stop_pct = config.get("stop_loss_percent")
        if stop_pct is not None:
            stop = avg * (1 - Decimal(str(stop_pct)) / 100)
            if group.stop_loss_price != stop:
                group.stop_loss_price = stop
                group.save(update_fields=["stop_loss_price", "updated_at"])
            if price <= stop:
                return ExitPurpose.STOP_LOSS
        if config.get("trailing_enabled"):
            return _trail(group, price, config)
    return None


def _trail(group: PositionGroup, price: Decimal, config: dict[str, Any]) -> str | None:
    """Activate at `trailing_activation_percent` profit; trail the highest price; never loosen."""
    activation = Decimal(str(config.get("trailing_activation_percent") or "5"))
    distance = Decimal(str(config.get("trailing_stop_percent") or "3"))
    avg = group.avg_entry_price
    fields: list[str] = []
    if not group.trailing_active:
        if (price / avg - 1) * 100 < activation:
            return None
        group.trailing_active = True
        group.trailing_high = price
        group.trailing_stop_price = price * (1 - distance / 100)
        fields += ["trailing_active", "trailing_high", "trailing_stop_price"]
    elif price > (group.trailing_high or price):
        group.trailing_high = price
        candidate = price * (1 - distance / 100)
        if candidate > (group.trailing_stop_price or Decimal("0")):
            group.trailing_stop_price = candidate
        fields += ["trailing_high", "trailing_stop_price"]
    if fields:
        group.save(update_fields=[*fields, "updated_at"])
    if group.trailing_stop_price is not None and price <= group.trailing_stop_price:
        return ExitPurpose.TRAILING_STOP
    return None


def _pyramid_average(pyramid_id: Any, base: str) -> tuple[Decimal, Decimal] | None:
    """(net quantity held, average cost incl. fees) of one pyramid's filled entry legs."""
    from ..models import Fill

    quantity = cost = Decimal("0")
    for fill in Fill.objects.filter(dca_order__pyramid_id=pyramid_id, side="buy"):
        fee_base = fill.fee if fill.fee_asset == base else Decimal("0")
        quantity += fill.quantity - fee_base
        cost += fill.price * fill.quantity + (fill.fee if fill.fee_asset and fill.fee_asset != base else Decimal("0"))
    if quantity <= 0:
        return None
    return quantity, cost / quantity


def pyramid_take_profits(*, group_id: Any, price: Decimal) -> int:
    """`pyramid_aggregate`: each pyramid sells its own filled quantity once price reaches its average + tp%."""

    from exchanges.precision import round_qty_down, validate_order

    from ..models import Pyramid
    from .market import rules_for

    group = PositionGroup.objects.select_related("exchange_config").get(pk=group_id)
    rules = rules_for(group)
    if rules is None:
        return 0
    base = group.symbol.split("/")[0]
    tp_percent = Decimal(str((group.config or {}).get("tp_aggregate_percent") or "1.5"))
    sent = 0
    for pyramid in Pyramid.objects.filter(group=group).exclude(tp_orders__purpose=ExitPurpose.TAKE_PROFIT_PYRAMID):
        held = _pyramid_average(pyramid.pk, base)
        if held is None or price < held[1] * (1 + tp_percent / 100):
            continue
        for leg in pyramid.orders.exclude(status__in=orders.FINAL_ORDER_STATUSES):
            orders.order_cancel(order_id=leg.pk)
        held = _pyramid_average(pyramid.pk, base)  # a leg may have filled while being cancelled
        quantity = round_qty_down(held[0], rules) if held else Decimal("0")
        if quantity <= 0 or validate_order(price, quantity, rules):
            continue
        with transaction.atomic():
            locked = PositionGroup.objects.select_for_update().get(pk=group.pk)
            if locked.status not in (GroupStatus.PARTIALLY_FILLED, GroupStatus.ACTIVE):
                return sent
            order = market_sell_intent(
                locked,
                quantity=min(quantity, locked.filled_quantity),
                purpose=ExitPurpose.TAKE_PROFIT_PYRAMID,
                reference_price=price,
                pyramid=pyramid,
            )
        orders.order_submit(order_id=order.pk)
        sent += 1
    return sent


def _close_emptied_groups(prices: dict[tuple[str, str], Decimal]) -> None:
    """Per-leg TPs sold everything sellable and no entry leg rests: the group is done.

    Buys pay their fee in the base asset and each TP sells its leg's net quantity rounded down to the
    step, so a remainder below the exchange's minimum quantity or notional is left behind: dust.
    """
    candidates = PositionGroup.objects.filter(status=GroupStatus.ACTIVE, sold_quantity__gt=0)
    for group in candidates:
        resting = (
            DCAOrder.objects.filter(group=group, status__in=orders.RESTING_ORDER_STATUSES).exists()
            or ExitOrder.objects.filter(group=group, status__in=orders.RESTING_ORDER_STATUSES).exists()
        )
        if resting:
            continue
        from exchanges.precision import round_qty_down

        from .market import rules_for

        rules = rules_for(group)
        if rules is None:
            continue
        remainder = round_qty_down(group.filled_quantity, rules)
        price = prices.get((str(group.exchange_config_id), group.symbol)) or group.avg_entry_price or Decimal("0")
        if remainder < rules.min_qty or remainder * price < rules.min_notional:
            group_close(group_id=group.pk, purpose=ExitPurpose.TAKE_PROFIT_LEG)
