"""The risk engine's executor: read, plan (`riskengine.rules.plan_offset`), store, execute
(docs/engine.md#risk-engine).

A cycle for one user:

1. reads the user's open groups and their legs, and the prices of their markets (one batched ticker
   request per exchange; `risk_cycle` shares one request per exchange among every user);
2. keeps each group's eligibility timer, decides with the pure plan and stores the decision as a risk
   action ("nothing done" with the same reason as the user's latest action updates that row);
3. for an offset, commits everything in one transaction before any exchange call: the loser turns
   `closing` (purpose `risk`), each winner gets its market-sell intent with a client order id; then
   the loser is closed by the exit path (`group_close_continue`), each winner's resting take-profits are
   cut to what it will still hold (highest price first), its sell is fitted under the group's row lock to
   what the fills hold beyond the group's other sells still out, and sent; the realized amounts are read
   back from the fills.

One executor per user at a time (a PostgreSQL advisory lock, which the server releases if its holder
dies). An action still `executing` after a crash is resumed by the next cycle: every step is idempotent
(intents are looked up by client id before any resend; the loser's close is the exit path's own).
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone

from accounts.logs import audit, log_info, log_warning
from core.locks import advisory_lock_try, advisory_locks_try
from exchanges.client_ids import client_order_id_for
from exchanges.exceptions import ExchangeError
from exchanges.precision import MarketRules, round_qty_down, validate_order
from exchanges.selectors import market_rule_get, market_rules_get_many
from exchanges.services import adapter_for
from positions import ledger
from positions.choices import (
    FINAL_ORDER_STATUSES,
    RESTING_ORDER_STATUSES,
    UNSETTLED_ORDER_STATUSES,
    ExitPurpose,
    GroupStatus,
    OrderStatus,
    OrderType,
)
from positions.config import resolve_engine_config
from positions.events import event, publish_events
from positions.hooks import RISK_OFFSET, engine_event_emit
from positions.models import EngineConfig, ExitOrder, PositionGroup
from positions.rules.position import base_quote, position_totals
from positions.services import orders
from positions.services.exits import group_close_continue, market_sell_intent
from positions.services.flags import group_set_risk_flags
from positions.services.queue import queue_remove
from positions.services.state import group_event, group_transition

from .models import RiskAction, RiskActionKind, RiskActionStatus
from .rules import (
    DEFAULT_TAKER_FEE_RATE,
    TRADING_STATUSES,
    GroupView,
    MarketKey,
    RestingTakeProfit,
    RiskDecision,
    RiskSettings,
    plan_offset,
    settings_from_config,
    take_profits_to_cut,
    take_profits_to_restore,
    timer_update,
)

logger = logging.getLogger(__name__)

# Namespace (first key) of the per-user executor lock; positions' send lock uses 0x5E4D.
RISK_LOCK_NAMESPACE = 0x5215
# Statuses shown by the risk API (closing groups are shown, never chosen).
SHOWN_STATUSES = (*TRADING_STATUSES, GroupStatus.CLOSING)
# Taker fee rates we know per exchange name; others pay Binance's default.
TAKER_FEE_RATES: Mapping[str, Decimal] = {"simulator": Decimal("0.001"), "binance": Decimal("0.001")}
ZERO = Decimal("0")
# Orders that may yet rest on the exchange though we have no answer for them: never sent, or sent with
# no answer (a timeout, a 5xx).
UNSENT_OR_UNKNOWN = (OrderStatus.PENDING, OrderStatus.UNKNOWN)


class RiskBusyError(Exception):
    """Another process is running this user's risk cycle now."""


# ------------------------------------------------------------------------------------------- reading


def risk_settings(*, user_id: Any) -> tuple[RiskSettings, dict[str, Any]]:
    """The user's risk settings and the resolved config they came from (defaults: `positions.config`)."""
    stored = EngineConfig.objects.filter(user_id=user_id).values_list("data", flat=True).first() or {}
    config = resolve_engine_config({k: v for k, v in stored.items() if k != "overrides"})
    return settings_from_config(config), config


def _settings_of(stored: Mapping[str, Any] | None) -> RiskSettings:
    """`RiskSettings` of a stored config, memoized by content (a cycle reads every user's at once)."""
    return _settings_cached(json.dumps(stored or {}, sort_keys=True, default=str))


@functools.lru_cache(maxsize=1024)
def _settings_cached(stored_json: str) -> RiskSettings:
    stored = json.loads(stored_json)
    return settings_from_config(resolve_engine_config({k: v for k, v in stored.items() if k != "overrides"}))


def _groups(user_ids: Iterable[Any]) -> list[PositionGroup]:
    """The open groups of `user_ids` with their leg counts (one query)."""
    unsent = Q(dca_orders__status=OrderStatus.PENDING, dca_orders__submit_attempts=0)
    # Rejected or failed legs never fill and cancelled ones are done with: only legs still out count.
    unfilled = Q(dca_orders__status__in=[OrderStatus.PENDING, OrderStatus.UNKNOWN, *RESTING_ORDER_STATUSES])
    return list(
        PositionGroup.objects.filter(user_id__in=list(user_ids), status__in=SHOWN_STATUSES)
        .select_related("exchange_config")
        .annotate(
            legs_unsent=Count("dca_orders", filter=unsent),
            legs_unfilled=Count("dca_orders", filter=unfilled),
            legs=Count("dca_orders"),
        )
        .order_by("created_at")
    )


def _view(group: PositionGroup) -> GroupView:
    legs = int(getattr(group, "legs", 0))
    return GroupView(
        group_id=str(group.pk),
        market=(str(group.exchange_config_id), group.symbol),
        status=group.status,
        held=group.filled_quantity,
        cost=group.total_cost,
        pyramids=group.pyramid_count,
        max_pyramids=group.max_pyramids,
        # a pyramid whose grid has not been laid yet has no legs: nothing of it is sent
        legs_unsent=int(getattr(group, "legs_unsent", 0)) + (1 if legs == 0 else 0),
        legs_unfilled=int(getattr(group, "legs_unfilled", 0)),
        created_at=group.created_at,
        timer_started_at=group.risk_timer_started_at,
        timer_pyramids=group.risk_timer_pyramids,
        blocked=group.risk_blocked,
        skip_once=group.risk_skip_once,
        fee_rate=TAKER_FEE_RATES.get(group.exchange_config.exchange_name, DEFAULT_TAKER_FEE_RATE),
    )


def risk_prices(*, groups: Iterable[PositionGroup]) -> tuple[dict[MarketKey, Decimal], int]:
    """The last price of every market of `groups`: one batched ticker request per exchange (by name; any
    of its configs asks for everyone, market data being public). Returns the prices and the number of
    requests made. A market without a price is left out (its groups are shown without numbers)."""
    by_exchange: dict[str, list[PositionGroup]] = defaultdict(list)
    for group in groups:
        by_exchange[group.exchange_config.exchange_name].append(group)
    prices: dict[MarketKey, Decimal] = {}
    requests = 0
    for name, members in by_exchange.items():
        symbols = sorted({g.symbol for g in members})
        requests += 1
        try:
            tickers = adapter_for(members[0].exchange_config).fetch_tickers(symbols)
        except ExchangeError as exc:
            log_warning("RISK", f"{name}: no prices for the risk cycle: {exc}")
            continue
        for group in members:
            ticker = tickers.get(group.symbol)
            if ticker is not None and ticker.last:
                prices[(str(group.exchange_config_id), group.symbol)] = ticker.last
    return prices, requests


def _rules(groups: Iterable[PositionGroup]) -> dict[MarketKey, MarketRules]:
    """The market rules of the groups' markets, read together (a fixed number of reads for any number of
    markets: the risk page lists every open group)."""
    groups = list(groups)
    known = market_rules_get_many(markets=[(g.exchange_config.exchange_name, g.symbol) for g in groups])
    found: dict[MarketKey, MarketRules] = {}
    for group in groups:
        rules = known.get((group.exchange_config.exchange_name, group.symbol))
        if rules is not None:
            found[(str(group.exchange_config_id), group.symbol)] = rules
    return found


def risk_preview(
    *, user_id: Any, prices: Mapping[MarketKey, Decimal] | None = None, now: datetime | None = None
) -> tuple[RiskDecision, RiskSettings, dict[str, Any]]:
    """What a cycle would decide now, without storing or sending anything (the API's view)."""
    settings, config = risk_settings(user_id=user_id)
    groups = _groups([user_id])
    if prices is None:
        prices, _ = risk_prices(groups=groups)
    decision = plan_offset([_view(g) for g in groups], prices, _rules(groups), settings, now or timezone.now())
    return decision, settings, config


# ------------------------------------------------------------------------------------------ the cycle


def _user_lock(user_id: Any) -> contextlib.AbstractContextManager[bool]:
    """Whether this process may run the user's cycle now (never waits); see the module docstring."""
    return advisory_lock_try(RISK_LOCK_NAMESPACE, user_id)


def _users_lock(user_ids: list[Any]) -> contextlib.AbstractContextManager[set[str]]:
    """The users whose cycle this process may run now (one statement for all; never waits); see the module
    docstring. A cycle over every user holds them for its length (well under a second)."""
    return advisory_locks_try(RISK_LOCK_NAMESPACE, user_ids)


def risk_cycle(*, trigger: str = "beat") -> dict[str, int]:
    """One cycle for every user with a trading group, prices fetched once per exchange for all of them."""
    counts = {"users": 0, "offsets": 0, "ticker_requests": 0, "busy": 0, "resumed": 0}
    counts["resumed"] = risk_actions_resume()
    user_ids = list(
        PositionGroup.objects.filter(status__in=TRADING_STATUSES).values_list("user_id", flat=True).distinct()
    )
    started = time.perf_counter()
    groups = _groups(user_ids)
    read = time.perf_counter()
    prices, counts["ticker_requests"] = risk_prices(groups=groups)
    priced = time.perf_counter()
    rules = _rules(groups)
    by_user: dict[Any, list[PositionGroup]] = defaultdict(list)
    for group in groups:
        by_user[group.user_id].append(group)
    stored = dict(EngineConfig.objects.filter(user_id__in=list(by_user)).values_list("user_id", "data"))
    # Each user's latest action, read once for all (a "nothing done" equal to it is folded into it).
    latest = {
        action.user_id: action
        for action in RiskAction.objects.filter(user_id__in=list(by_user))
        .order_by("user_id", "-created_at")
        .distinct("user_id")
    }
    with _users_lock(list(by_user)) as ours:
        for user_id, members in by_user.items():
            counts["users"] += 1
            if str(user_id) not in ours:
                counts["busy"] += 1  # that user's cycle is running elsewhere (run now, a fill)
                continue
            action = _evaluate(
                user_id=user_id,
                trigger=trigger,
                groups=members,
                prices=prices,
                rules=rules,
                settings=_settings_of(stored.get(user_id)),
                locked=True,
                latest=latest,
            )
            if action.kind == RiskActionKind.OFFSET:
                counts["offsets"] += 1
    # Where a cycle's time goes (bench/risk_cycle.py reports it): reading groups, prices, the rest.
    counts["read_ms"] = int((read - started) * 1000)
    counts["prices_ms"] = int((priced - read) * 1000)
    counts["decide_ms"] = int((time.perf_counter() - priced) * 1000)
    return counts


def risk_evaluate(*, user_id: Any, trigger: str = "run_now", actor: Any = None) -> RiskAction:
    """One cycle for one user now (the API's "run now", a fill). Raises `RiskBusyError` while another
    process runs this user's cycle."""
    if trigger == "run_now":
        audit(user=actor, action="risk_run_now", resource="user", resource_id=user_id, details={})
    groups = _groups([user_id])
    prices, _ = risk_prices(groups=groups)
    return _evaluate(user_id=user_id, trigger=trigger, groups=groups, prices=prices, rules=_rules(groups))


def _evaluate(
    *,
    user_id: Any,
    trigger: str,
    groups: list[PositionGroup],
    prices: Mapping[MarketKey, Decimal],
    rules: Mapping[MarketKey, MarketRules],
    settings: RiskSettings | None = None,
    locked: bool = False,
    latest: Mapping[Any, RiskAction] | None = None,
) -> RiskAction:
    """One user's cycle; `locked`: the caller holds the user's executor lock; `latest`: each user's latest
    action, read by the caller."""
    with contextlib.ExitStack() as stack:
        if not locked and not stack.enter_context(_user_lock(user_id)):
            raise RiskBusyError(f"a risk cycle of user {user_id} is running")
        if settings is None:
            settings, _ = risk_settings(user_id=user_id)
        now = timezone.now()
        views = [_view(g) for g in groups]
        _timers_keep(views, settings, now)
        decision = plan_offset(views, prices, rules, settings, now)
        action = _store(user_id=user_id, trigger=trigger, decision=decision, now=now, latest=latest)
        if action.status == RiskActionStatus.EXECUTING:
            risk_action_execute(action_id=action.pk)
            action.refresh_from_db()
        return action


def _timers_keep(views: list[GroupView], settings: RiskSettings, now: datetime) -> None:
    """Store each group's eligibility timer where this look changed it: one UPDATE per distinct new value
    (a cycle starts most timers at the same `now`; Django's bulk_update cost ~25 ms per user here)."""
    changed: dict[tuple[datetime | None, int], list[str]] = defaultdict(list)
    for view in views:
        if view.status not in TRADING_STATUSES:
            continue
        started, pyramids = timer_update(view, settings, now)
        if (started, pyramids) != (view.timer_started_at, view.timer_pyramids):
            changed[(started, pyramids)].append(view.group_id)
    for (started, pyramids), ids in changed.items():
        PositionGroup.objects.filter(pk__in=ids).update(risk_timer_started_at=started, risk_timer_pyramids=pyramids)


def _store(
    *, user_id: Any, trigger: str, decision: RiskDecision, now: datetime, latest: Mapping[Any, RiskAction] | None
) -> RiskAction:
    """Store the decision; for an offset, commit the loser's close and the winners' sell intents with it."""
    with transaction.atomic():
        if decision.skip_once_consumed:
            PositionGroup.objects.filter(pk__in=decision.skip_once_consumed).update(risk_skip_once=False)
        if not decision.offset:
            return _store_nothing(user_id=user_id, trigger=trigger, decision=decision, now=now, latest=latest)
        plan = decision.plan
        assert plan is not None
        ids = [plan.loser.group_id, *(w.group_id for w in plan.winners)]
        locked = {str(g.pk): g for g in PositionGroup.objects.select_for_update().filter(pk__in=ids).order_by("pk")}
        changed = [
            gid
            for gid in ids
            if gid not in locked or locked[gid].status not in TRADING_STATUSES or locked[gid].risk_blocked
        ]
        if changed:
            decision = RiskDecision(decision.groups, None, "a group changed while the plan was made; next cycle")
            return _store_nothing(user_id=user_id, trigger=trigger, decision=decision, now=now, latest=latest)
        loser = locked[plan.loser.group_id]
        action = RiskAction.objects.create(
            user_id=user_id,
            kind=RiskActionKind.OFFSET,
            status=RiskActionStatus.EXECUTING,
            trigger=trigger,
            reason=decision.reason,
            plan=plan.as_json(),
            loser_group=loser,
            created_at=now,
            last_seen_at=now,
        )
        sells: dict[str, str] = {}
        for sale in plan.winners:
            order = market_sell_intent(
                locked[sale.group_id], quantity=sale.quantity, purpose=ExitPurpose.RISK, reference_price=sale.price
            )
            sells[sale.group_id] = str(order.pk)
        action.orders = sells
        action.save(update_fields=["orders"])
        loser.close_reason = ExitPurpose.RISK
        loser.save(update_fields=["close_reason", "updated_at"])
        reason = f"risk offset: covered by {len(plan.winners)} winner(s) (action {action.pk})"
        group_transition(group_id=loser.pk, to=GroupStatus.CLOSING, locked=loser, reason=reason)
        queue_remove(
            user_id=loser.user_id,
            exchange_config_id=loser.exchange_config_id,
            symbol=loser.symbol,
            timeframe=loser.timeframe,
            side=loser.side,
        )
        log_info(
            "RISK",
            f"Offsetting {loser.symbol} ({plan.required.quantize(Decimal('0.01'))} required) with "
            + ", ".join(f"{w.symbol} {w.quantity}" for w in plan.winners),
            user=user_id,
            details={"action_id": str(action.pk)},
        )
        _publish(action)
    return action


def _store_nothing(
    *, user_id: Any, trigger: str, decision: RiskDecision, now: datetime, latest: Mapping[Any, RiskAction] | None
) -> RiskAction:
    """ "Nothing done": the user's latest action with the same reason is updated instead of a new row."""
    plan = decision.plan.as_json() if decision.plan is not None else None
    # No row lock: the user's executor lock (`_user_lock`) already keeps other cycles of this user out.
    last = (
        latest.get(user_id)
        if latest is not None
        else RiskAction.objects.filter(user_id=user_id).order_by("-created_at").first()
    )
    if last is not None and last.kind == RiskActionKind.NONE and last.reason == decision.reason:
        last.repeats += 1
        last.last_seen_at = now
        last.plan = plan
        last.trigger = trigger
        last.save(update_fields=["repeats", "last_seen_at", "plan", "trigger"])
        return last
    action = RiskAction.objects.create(
        user_id=user_id,
        kind=RiskActionKind.NONE,
        status=RiskActionStatus.DECIDED,
        trigger=trigger,
        reason=decision.reason,
        plan=plan,
        created_at=now,
        last_seen_at=now,
    )
    _publish(action)
    return action


# -------------------------------------------------------------------------------------------- execute


def risk_action_execute(*, action_id: Any) -> str:
    """Send an offset's orders (idempotent: safe to run again after any crash or error).

    The loser goes through the exit path; each winner first cuts its resting take-profits to what it will
    still hold, then sends its sell. Done once every order of the offset has settled: the realized amounts
    are read from the fills then.
    """
    action = RiskAction.objects.get(pk=action_id)
    if action.status != RiskActionStatus.EXECUTING:
        return action.status
    pending = False
    loser_done = ("closed", "group is closed")
    if action.loser_group_id is not None and group_close_continue(group_id=action.loser_group_id) not in loser_done:
        pending = True
    for group_id, order_id in (action.orders or {}).items():
        order = ExitOrder.objects.select_related("group", "exchange_config").get(pk=order_id)
        if order.status in FINAL_ORDER_STATUSES:
            continue
        adapter = adapter_for(order.exchange_config)
        if not _take_profits_cut(group=order.group, sale=order, adapter=adapter):
            pending = True
            continue
        outcome = _sale_send(order_id=order.pk, adapter=adapter)
        if outcome in (orders.RETRY, orders.UNKNOWN):
            pending = True
            continue
        order.refresh_from_db()
        if order.status not in FINAL_ORDER_STATUSES:
            orders.order_sync(order_id=order.pk, adapter=adapter)
            order.refresh_from_db()
        if order.status not in FINAL_ORDER_STATUSES:
            pending = True
        else:
            _take_profits_restore(group_id=group_id, adapter=adapter)
    if pending:
        return "pending"
    return _finish(action)


def _working_sells(group_id: Any, *, besides: Any) -> Decimal:
    """What the group's unsettled sells other than `besides` still hold of its base: resting or unsent
    take-profits, and market sells whose outcome we do not know yet (a pyramid TP, an earlier offset's
    sale that may have filled unbooked). Each of them may take base the exchange would not give us twice."""
    rows = (
        ExitOrder.objects.filter(group_id=group_id, status__in=UNSETTLED_ORDER_STATUSES)
        .exclude(pk=besides)
        .values_list("quantity", "filled_quantity")
    )
    return sum((quantity - filled for quantity, filled in rows), ZERO)


def _take_profits_cut(*, group: PositionGroup, sale: ExitOrder, adapter: Any) -> bool:
    """Cancel the winner's resting take-profits, highest price first, until what stays resting is no more
    than it will hold after its sale (and any other market sell still out) (docs/engine.md#risk-engine). The
    part of a cancelled TP that still fits is placed again afterwards (`_take_profits_restore`). False while
    a cancel is not confirmed (the sell waits: a TP resting on the exchange holds the base it would sell)."""
    group.refresh_from_db()
    markets_out = ExitOrder.objects.filter(
        group=group, order_type=OrderType.MARKET, status__in=UNSETTLED_ORDER_STATUSES
    ).exclude(pk=sale.pk)
    keep = group.filled_quantity - sale.quantity - sum((o.quantity - o.filled_quantity for o in markets_out), ZERO)
    # A TP whose placement outcome is unknown may rest on the exchange too: it counts, and is cancelled
    # (looked up first) like the others.
    resting = list(
        ExitOrder.objects.filter(
            group=group, order_type=OrderType.LIMIT, status__in=[*RESTING_ORDER_STATUSES, *UNSENT_OR_UNKNOWN]
        ).order_by("-price")
    )
    doomed = set(
        take_profits_to_cut(
            [RestingTakeProfit(str(tp.pk), tp.price or ZERO, tp.quantity - tp.filled_quantity) for tp in resting],
            keep=keep,
        )
    )
    for tp in resting:
        if str(tp.pk) not in doomed:
            continue
        if orders.order_cancel(order_id=tp.pk, adapter=adapter) == orders.RETRY:
            return False
        tp.refresh_from_db()
        if tp.status == OrderStatus.CANCELED:
            ExitOrder.objects.filter(pk=tp.pk).update(last_error="cancelled by the risk engine (resized)")
    return True


def _sale_send(*, order_id: Any, adapter: Any) -> str:
    """Fit a winner's sale (`_sale_fit`) and send it, the sale's send lock held from the fit to the send so
    that nobody else sends, cancels or resizes it in between. RETRY while another process holds it."""
    with advisory_lock_try(orders.SEND_LOCK_NAMESPACE, order_id) as ours:
        # The send lock is a session lock: `_sale_fit` and `order_submit` take it again (it is re-entrant).
        if not ours or not _sale_fit(order_id=order_id):
            return orders.RETRY
        return orders.order_submit(order_id=order_id, adapter=adapter)


def _sale_fit(*, order_id: Any) -> bool:
    """Before a winner's sale is first sent, fit it to what the group holds and may sell
    (docs/engine.md#risk-engine): under the group's exit lock — its row lock, under which the monitor books
    fills (and places the TPs that follow them) and an exit decides to close — the holding is read again
    from the fills (a TP may have sold since the plan, booked just before) and every other unsettled sell
    of the group is set aside. A sale too big shrinks to what fits (rounded down to the step); one that
    nothing valid fits, or whose group is no longer trading (its own close sells what it holds), is
    cancelled unsent with the reason recorded, and realizes nothing. A take-profit placed after this sees
    the sale among the group's working sells and leaves its room. False while another process is sending
    it."""
    with advisory_lock_try(orders.SEND_LOCK_NAMESPACE, order_id) as ours:
        if not ours:
            return False
        with transaction.atomic():
            # The order's row, then its group's: the order in which `orders.order_apply_state` books fills.
            sale = ExitOrder.objects.select_for_update(of=("self",)).get(pk=order_id)
            if sale.status != OrderStatus.PENDING or sale.submit_attempts:
                return True  # sent before: it is looked up, never changed
            group = (
                PositionGroup.objects.select_for_update(of=("self",))
                .select_related("exchange_config")
                .get(pk=sale.group_id)
            )
            base, quote = base_quote(group.symbol)
            held = position_totals(ledger.group_fills(group_id=group.pk), base=base, quote=quote).held
            room = max(held - _working_sells(group.pk, besides=sale.pk), ZERO)
            rules = market_rule_get(exchange_name=group.exchange_config.exchange_name, symbol=group.symbol)
            why = f"the group holds {_s(held)}, {_s(room)} of it beyond its other working sells"
            if group.status not in TRADING_STATUSES:
                quantity, why = ZERO, f"the group is {group.status}: its own close sells what it holds"
            elif sale.quantity <= room:
                return True
            elif rules is None:
                quantity, why = ZERO, f"{why}, and no market rules to fit the sale to it"
            else:
                quantity = round_qty_down(room, rules)
            price = sale.reference_price
            if quantity <= 0 or (rules is not None and price is not None and validate_order(price, quantity, rules)):
                sale.status, sale.canceled_at = OrderStatus.CANCELED, timezone.now()
                sale.last_error = f"nothing left to sell, not sent: {why}"
                kind = "risk_sale_skipped"
            else:
                sale.last_error = f"resized from {_s(sale.quantity)}: {why}"
                sale.quantity = quantity
                kind = "risk_sale_resized"
            sale.save(update_fields=["status", "canceled_at", "quantity", "last_error", "updated_at"])
            group_event(group, kind, f"risk sale {sale.client_order_id}: {sale.last_error}", {"order": str(sale.pk)})
            log_warning(
                "RISK", f"{group.symbol} risk sale {sale.client_order_id}: {sale.last_error}", user=group.user_id
            )
    return True


def _take_profits_restore(*, group_id: Any, adapter: Any) -> None:
    """After the winner's sell: place again, at its own price, the part of each TP the risk engine
    cancelled that the group still holds (lowest price first, so the nearest targets stay)."""
    with transaction.atomic():
        group = PositionGroup.objects.select_for_update().select_related("exchange_config").get(pk=group_id)
        if group.status not in TRADING_STATUSES:
            return
        rules = market_rule_get(exchange_name=group.exchange_config.exchange_name, symbol=group.symbol)
        if rules is None:
            return
        room = group.filled_quantity - _working_sells(group.pk, besides=None)
        cut = ExitOrder.objects.filter(
            group=group, status=OrderStatus.CANCELED, last_error="cancelled by the risk engine (resized)"
        ).order_by("price")
        placed: list[Any] = []
        cut_list = list(cut)
        ExitOrder.objects.filter(pk__in=[tp.pk for tp in cut_list]).update(last_error="cancelled by the risk engine")
        by_id = {str(tp.pk): tp for tp in cut_list}
        again = take_profits_to_restore(
            [
                RestingTakeProfit(str(tp.pk), tp.price, tp.quantity - tp.filled_quantity)
                for tp in cut_list
                if tp.price is not None
            ],
            room=room,
            rules=rules,
        )
        for tp_id, quantity in again:
            tp = by_id[tp_id]
            order_id = uuid.uuid4()
            placed.append(
                ExitOrder.objects.create(
                    id=order_id,
                    group=group,
                    exchange_config_id=group.exchange_config_id,
                    symbol=group.symbol,
                    side="sell",
                    order_type=OrderType.LIMIT,
                    price=tp.price,
                    quantity=quantity,
                    client_order_id=client_order_id_for(order_id),
                    purpose=tp.purpose,
                    leg_id=tp.leg_id,
                    pyramid_id=tp.pyramid_id,
                )
            )
    for order in placed:
        orders.order_submit(order_id=order.pk, adapter=adapter)


def _realized_by(order_ids: Iterable[str], group_id: Any) -> Decimal:
    """What the fills of `order_ids` realized in their group when they happened: each one's share of the
    group's realized PnL at that point (net proceeds less the average cost held just before it). Fills
    booked later (a leg bought after the sale) do not change it, whenever this is read."""
    group = PositionGroup.objects.get(pk=group_id)
    base, _, quote = group.symbol.partition("/")
    wanted = {str(i) for i in order_ids}
    fills = list(group.fills.order_by("executed_at", "pk"))
    data = [ledger.as_fill_data(f) for f in fills]
    realized = ZERO
    for index, fill in enumerate(fills):
        if str(fill.exit_order_id) in wanted:
            after = position_totals(data[: index + 1], base=base, quote=quote).realized_pnl
            realized += after - position_totals(data[:index], base=base, quote=quote).realized_pnl
    return realized


def _finish(action: RiskAction) -> str:
    winners = {gid: _realized_by([oid], gid) for gid, oid in (action.orders or {}).items()}
    loser = ZERO
    if action.loser_group_id is not None:
        closes = ExitOrder.objects.filter(group_id=action.loser_group_id, purpose=ExitPurpose.RISK)
        loser = _realized_by([str(pk) for pk in closes.values_list("pk", flat=True)], action.loser_group_id)
    net = loser + sum(winners.values(), ZERO)
    action.realized = {
        "loser": _s(loser),
        "winners": {gid: _s(amount) for gid, amount in winners.items()},
        "net": _s(net),
    }
    action.status = RiskActionStatus.DONE
    action.save(update_fields=["realized", "status"])
    log_info("RISK", f"Offset done: net {net.quantize(Decimal('0.00000001'))}", user=action.user_id)
    _publish(action)
    _announce(action)
    return RiskActionStatus.DONE


def _announce(action: RiskAction) -> None:
    """The offset for the apps above (notifications): the loser and each winner with what it realized."""
    plan = action.plan or {}
    loser = plan.get("loser") or {}
    realized = action.realized or {}
    winners = [
        {"symbol": winner.get("symbol"), "realized": realized.get("winners", {}).get(str(winner.get("group_id")))}
        for winner in plan.get("winners") or []
    ]
    data = {
        "symbol": loser.get("symbol"),
        "loser_quantity": loser.get("quantity"),
        "loser_realized": realized.get("loser"),
        "winners": winners,
        "net": realized.get("net"),
        "action_id": str(action.pk),
    }
    engine_event_emit(kind=RISK_OFFSET, user_id=action.user_id, group_id=action.loser_group_id or "", data=data)


def risk_actions_resume() -> int:
    """Continue every offset still executing (after a crash or an unconfirmed order)."""
    count = 0
    executing = RiskAction.objects.filter(status=RiskActionStatus.EXECUTING).values_list("pk", "user_id")
    for action_id, user_id in list(executing):
        with _user_lock(user_id) as ours:
            if not ours:
                continue  # its user's executor is running now (and executes it)
            try:
                risk_action_execute(action_id=action_id)
            except ExchangeError as exc:
                logger.warning("risk action %s: %s", action_id, exc)
            count += 1
    return count


def _s(value: Decimal) -> str:
    text = f"{value.normalize():f}"
    return "0" if text in ("-0", "0") else text


# ------------------------------------------------------------------------------------------- flags


class FlagRefusedError(Exception):
    """A flag cannot be set on this group (closed or closing); the message says why."""


def risk_flag_set(*, group: PositionGroup, flag: str, value: bool, actor: Any) -> PositionGroup:
    """Block, unblock or skip-once a group (audited by `group_set_risk_flags`; a `risk.action` event)."""
    if group.status not in TRADING_STATUSES and not (flag == "blocked" and not value):
        raise FlagRefusedError(f"the group is {group.status}")
    if flag == "blocked":
        updated = group_set_risk_flags(group_id=group.pk, blocked=value, actor=actor)
    elif flag == "skip_once":
        updated = group_set_risk_flags(group_id=group.pk, skip_once=value, actor=actor)
    else:
        raise ValueError(f"unknown risk flag {flag!r}")
    publish_events(
        [
            event(
                group.user_id,
                "risk.action",
                {
                    "kind": "flag",
                    "group_id": str(group.pk),
                    "blocked": updated.risk_blocked,
                    "skip_once": updated.risk_skip_once,
                },
            )
        ]
    )
    return updated


def risk_action_json(action: RiskAction) -> dict[str, Any]:
    return {
        "id": str(action.pk),
        "kind": action.kind,
        "status": action.status,
        "trigger": action.trigger,
        "reason": action.reason,
        "plan": action.plan,
        "realized": action.realized,
        "repeats": action.repeats,
        "created_at": action.created_at.isoformat(),
        "last_seen_at": action.last_seen_at.isoformat(),
    }


def _publish(action: RiskAction) -> None:
    publish_events([event(action.user_id, "risk.action", risk_action_json(action))])
