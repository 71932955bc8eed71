"""The loss-offset risk engine as pure rules: each group's numbers, a loser's eligibility, and the plan
(docs/engine.md#risk-engine).

A losing group is closed in full with profit taken from the same user's winners, in quote currency. The
API's preview, the executor (`riskengine.services`) and the backtester call the same function,
`plan_offset(groups, prices, rules, settings, now)`. Everything here is plain data: no ORM, no I/O, no
clock (the time is an argument).

Numbers, for a group holding `held` (net of fees) that cost `cost` (quote, fees included), at price `P`
and the exchange's taker fee rate `f`::

    unrealized   = held × P × (1 − f) − cost
    loss_percent = unrealized / cost × 100
    per unit     r = P × (1 − f) − avg_entry         (what selling one unit realizes)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, Decimal
from typing import Final

from core.jsontypes import JSONValue
from exchanges.precision import MarketRules, round_qty_down, validate_order

ZERO: Final = Decimal("0")
HUNDRED: Final = Decimal("100")
# Binance's (and the simulator's) default taker rate: what a market exit pays when the exchange's own rate
# is not known (docs/engine.md#risk-engine).
DEFAULT_TAKER_FEE_RATE: Final = Decimal("0.001")

ELIGIBILITY_BASES: Final = ("all_pyramids", "all_submitted", "all_filled")
# Statuses a group can be a loser or a winner in: something may be held and nothing is closing it.
TRADING_STATUSES: Final = ("live", "partially_filled", "active")

type MarketKey = tuple[str, str]  # (exchange config id, unified symbol)


@dataclass(frozen=True, slots=True)
class RiskSettings:
    """The user's risk keys (docs/engine.md#config), read through `positions.config.engine_setting`."""

    enabled: bool = True
    eligibility: str = "all_filled"
    post_full_wait_minutes: int = 60
    loss_threshold_percent: Decimal = Decimal("-5")
    age_threshold_minutes: int | None = None
    max_winners_to_combine: int = 3
    min_close_notional: Decimal = Decimal("20")
    timer_reset_on_pyramid: bool = True


@dataclass(frozen=True, slots=True)
class GroupView:
    """One open group as the risk engine reads it."""

    group_id: str
    market: MarketKey
    status: str
    held: Decimal
    cost: Decimal
    pyramids: int
    max_pyramids: int
    legs_unsent: int  # entry legs of the group never sent to the exchange
    legs_unfilled: int  # entry legs not (completely) filled, cancelled ones excepted
    created_at: datetime
    timer_started_at: datetime | None = None
    timer_pyramids: int = 0  # the pyramid count when the timer started
    blocked: bool = False
    skip_once: bool = False
    fee_rate: Decimal = DEFAULT_TAKER_FEE_RATE

    @property
    def symbol(self) -> str:
        return self.market[1]

    @property
    def avg_entry(self) -> Decimal | None:
        return self.cost / self.held if self.held > 0 else None


@dataclass(frozen=True, slots=True)
class Eligibility:
    """Whether a group may be the loser, with every part that says no (`why_not`, empty when eligible)."""

    eligible: bool
    why_not: tuple[str, ...]
    basis_met: bool  # the `risk_eligibility` condition alone (what starts the timer)
    timer_remaining_seconds: int | None  # None while the timer has not started


@dataclass(frozen=True, slots=True)
class GroupRisk:
    """A group's numbers at the cycle's price (``None`` numbers without a price or a position)."""

    view: GroupView
    price: Decimal | None
    unrealized: Decimal | None
    loss_percent: Decimal | None
    eligibility: Eligibility


@dataclass(frozen=True, slots=True)
class LoserClose:
    group_id: str
    symbol: str
    quantity: Decimal  # everything held, rounded down to the step
    price: Decimal
    unrealized: Decimal


@dataclass(frozen=True, slots=True)
class WinnerSale:
    group_id: str
    symbol: str
    quantity: Decimal
    price: Decimal
    realizes: Decimal  # quantity × r


@dataclass(frozen=True, slots=True)
class OffsetPlan:
    """A loser and the winners' sales that pay for it; `covered < required` means it cannot be done."""

    loser: LoserClose
    required: Decimal
    winners: tuple[WinnerSale, ...]
    covered: Decimal
    skipped: tuple[str, ...] = ()  # winners passed over, with why (below the minimum notional, ...)

    @property
    def complete(self) -> bool:
        return self.covered >= self.required

    def as_json(self) -> dict[str, JSONValue]:
        """The plan as the API shows and the risk action stores it (decimals as strings)."""
        return {
            "loser": {
                "group_id": self.loser.group_id,
                "symbol": self.loser.symbol,
                "quantity": _s(self.loser.quantity),
                "price": _s(self.loser.price),
                "unrealized": _s(self.loser.unrealized),
            },
            "required": _s(self.required),
            "winners": [
                {
                    "group_id": w.group_id,
                    "symbol": w.symbol,
                    "quantity": _s(w.quantity),
                    "price": _s(w.price),
                    "realizes": _s(w.realizes),
                }
                for w in self.winners
            ],
            "covered": _s(self.covered),
            "skipped": list(self.skipped),
        }


@dataclass(frozen=True, slots=True)
class RiskDecision:
    """One cycle's answer for one user: every group's numbers, the plan (if a loser exists), and what to
    do: `offset` (the plan is complete) or nothing, with the reason."""

    groups: tuple[GroupRisk, ...]
    plan: OffsetPlan | None
    reason: str
    skip_once_consumed: tuple[str, ...] = field(default=())  # groups whose skip-once this cycle used

    @property
    def offset(self) -> bool:
        return self.plan is not None and self.plan.complete


def _s(value: Decimal) -> str:
    """A decimal as a plain string without exponent or trailing zeros."""
    text = f"{value.normalize():f}"
    return "0" if text in ("-0", "0") else text


# ------------------------------------------------------------------------------------------ numbers


def unrealized_pnl(*, held: Decimal, cost: Decimal, price: Decimal, fee_rate: Decimal) -> Decimal:
    """`held × P × (1 − f) − cost`: what selling everything at `price` would realize, exit fee paid."""
    return held * price * (1 - fee_rate) - cost


def loss_percent(*, unrealized: Decimal, cost: Decimal) -> Decimal | None:
    return unrealized / cost * HUNDRED if cost > 0 else None


def step_ceil(quantity: Decimal, step: Decimal) -> Decimal:
    """The smallest multiple of `step` at or above `quantity`."""
    return (quantity / step).to_integral_value(rounding=ROUND_CEILING) * step


# ----------------------------------------------------------------------------------------- eligibility


def basis_met(view: GroupView, basis: str) -> bool:
    """The `risk_eligibility` condition: every pyramid added, (and) every leg sent, (and) every leg filled."""
    if view.pyramids < view.max_pyramids:
        return False
    if basis == "all_submitted":
        return view.legs_unsent == 0
    if basis == "all_filled":
        return view.legs_unfilled == 0 and view.legs_unsent == 0
    return True


def timer_update(view: GroupView, settings: RiskSettings, now: datetime) -> tuple[datetime | None, int]:
    """The group's stored timer after this look: (start, pyramid count at the start).

    It starts the first time the basis is met. A pyramid added since it started restarts it
    (`risk_timer_reset_on_pyramid`): from now when the basis is met again, else it waits.
    """
    started, pyramids = view.timer_started_at, view.timer_pyramids
    met = basis_met(view, settings.eligibility)
    if started is not None and settings.timer_reset_on_pyramid and view.pyramids != pyramids:
        return (now, view.pyramids) if met else (None, view.pyramids)
    if started is None and met:
        return now, view.pyramids
    return started, pyramids


def eligibility(view: GroupView, settings: RiskSettings, *, loss: Decimal | None, now: datetime) -> Eligibility:
    """Every part of a loser's eligibility (docs/engine.md#risk-engine), each failing one named."""
    why: list[str] = []
    if not settings.enabled:
        why.append("risk engine is off (risk_enabled)")
    if view.status not in TRADING_STATUSES:
        why.append(f"group is {view.status}")
    if view.blocked:
        why.append("blocked by an operator")
    if view.skip_once:
        why.append("skipped once by an operator (this cycle)")
    met = basis_met(view, settings.eligibility)
    if view.pyramids < view.max_pyramids:
        why.append(f"pyramids {view.pyramids} of {view.max_pyramids} ({settings.eligibility})")
    elif settings.eligibility in ("all_submitted", "all_filled") and view.legs_unsent:
        why.append(f"{view.legs_unsent} leg(s) not sent yet ({settings.eligibility})")
    elif settings.eligibility == "all_filled" and view.legs_unfilled:
        why.append(f"{view.legs_unfilled} leg(s) not filled yet (all_filled)")
    started, _ = timer_update(view, settings, now)
    remaining: int | None = None
    if started is not None:
        left = started + timedelta(minutes=settings.post_full_wait_minutes) - now
        remaining = max(0, int(left.total_seconds() + 0.999999))
        if met and remaining > 0:
            why.append(f"timer: {remaining} s of post_full_wait_minutes {settings.post_full_wait_minutes} left")
    if loss is None:
        why.append("no position or no price")
    elif loss > settings.loss_threshold_percent:
        why.append(f"loss {loss.quantize(Decimal('0.01'))}% is above the threshold {settings.loss_threshold_percent}%")
    if settings.age_threshold_minutes:
        age = now - view.created_at
        if age < timedelta(minutes=settings.age_threshold_minutes):
            minutes = int(age.total_seconds() // 60)
            why.append(f"age {minutes} min is under age_threshold_minutes {settings.age_threshold_minutes}")
    return Eligibility(eligible=not why, why_not=tuple(why), basis_met=met, timer_remaining_seconds=remaining)


def group_risk(view: GroupView, price: Decimal | None, settings: RiskSettings, now: datetime) -> GroupRisk:
    unrealized = loss = None
    if price is not None and view.held > 0 and view.cost > 0:
        unrealized = unrealized_pnl(held=view.held, cost=view.cost, price=price, fee_rate=view.fee_rate)
        loss = loss_percent(unrealized=unrealized, cost=view.cost)
    return GroupRisk(view, price, unrealized, loss, eligibility(view, settings, loss=loss, now=now))


# ----------------------------------------------------------------------------------------------- plan


def _pick_loser(eligible: Sequence[GroupRisk]) -> GroupRisk:
    """Lowest loss_percent; ties: the larger USD loss, then the older group."""

    def key(g: GroupRisk) -> tuple[Decimal, Decimal, datetime]:
        assert g.loss_percent is not None and g.unrealized is not None
        return g.loss_percent, g.unrealized, g.view.created_at

    return min(eligible, key=key)


def winner_sale(
    winner: GroupRisk, *, remaining: Decimal, rules: MarketRules, min_close_notional: Decimal
) -> WinnerSale | str:
    """What one winner sells toward `remaining`, or why it sells nothing.

    `c = min(remaining, unrealized)`, `q = c / r` rounded up to the step and capped at `held` rounded
    down; a `q × P` under the minimum close notional is raised to the smallest step multiple that reaches
    it when the winner holds that much, else the winner is skipped. The exchange's own minimum notional
    and quantity count as a floor too (an order under them would be refused).
    """
    view, price, unrealized = winner.view, winner.price, winner.unrealized
    assert price is not None and unrealized is not None and view.avg_entry is not None
    per_unit = price * (1 - view.fee_rate) - view.avg_entry
    if per_unit <= 0:
        return f"{view.symbol}: selling realizes nothing per unit"
    share = min(remaining, unrealized)
    cap = round_qty_down(view.held, rules)
    quantity = min(step_ceil(share / per_unit, rules.step_size), cap)
    floor_notional = max(min_close_notional, rules.min_notional)
    if quantity * price < floor_notional or quantity < rules.min_qty:
        raised = max(step_ceil(floor_notional / price, rules.step_size), step_ceil(rules.min_qty, rules.step_size))
        if raised > cap:
            return (
                f"{view.symbol}: holds {_s(view.held)}, less than the {_s(raised)} the minimum close notional "
                f"{_s(floor_notional)} needs"
            )
        quantity = raised
    if quantity <= 0:
        return f"{view.symbol}: nothing sellable"
    return WinnerSale(view.group_id, view.symbol, quantity, price, quantity * per_unit)


def plan_offset(
    groups: Sequence[GroupView],
    prices: Mapping[MarketKey, Decimal],
    rules: Mapping[MarketKey, MarketRules],
    settings: RiskSettings,
    now: datetime,
) -> RiskDecision:
    """One user's risk decision (docs/engine.md#risk-engine).

    1. The loser is the eligible group with the lowest loss_percent (ties: larger USD loss, then older);
       `required = −unrealized(loser)`.
    2. Winners are the user's other trading groups with `unrealized > 0`, neither blocked nor skipped
       this cycle, highest `unrealized` first, at most `max_winners_to_combine`.
    3. Each winner sells `q` (`winner_sale`) while something remains; `remaining −= q × r`.
    4. When the winners cannot cover `required`, nothing is sold and the reason names both amounts.
    """
    risks = tuple(group_risk(view, prices.get(view.market), settings, now) for view in groups)
    consumed = tuple(g.view.group_id for g in risks if g.view.skip_once)
    if not settings.enabled:
        return RiskDecision(risks, None, "risk engine is off (risk_enabled)", consumed)
    eligible = [g for g in risks if g.eligibility.eligible]
    if not eligible:
        return RiskDecision(risks, None, "no eligible loser", consumed)
    loser = _pick_loser(eligible)
    loser_rules = rules.get(loser.view.market)
    assert loser.unrealized is not None and loser.price is not None
    if loser_rules is None:
        return RiskDecision(risks, None, f"{loser.view.symbol}: no market rules for the loser", consumed)
    required = -loser.unrealized
    candidates = sorted(
        (
            g
            for g in risks
            if g.view.group_id != loser.view.group_id
            and g.view.status in TRADING_STATUSES
            and not g.view.blocked
            and not g.view.skip_once
            and g.unrealized is not None
            and g.unrealized > 0
        ),
        key=lambda g: (-(g.unrealized or ZERO), g.view.created_at),
    )[: settings.max_winners_to_combine]
    remaining = required
    sales: list[WinnerSale] = []
    skipped: list[str] = []
    for winner in candidates:
        if remaining <= 0:
            break
        winner_rules = rules.get(winner.view.market)
        if winner_rules is None:
            skipped.append(f"{winner.view.symbol}: no market rules")
            continue
        sale = winner_sale(
            winner, remaining=remaining, rules=winner_rules, min_close_notional=settings.min_close_notional
        )
        if isinstance(sale, str):
            skipped.append(sale)
            continue
        sales.append(sale)
        remaining -= sale.realizes
    close_qty = round_qty_down(loser.view.held, loser_rules)
    plan = OffsetPlan(
        loser=LoserClose(loser.view.group_id, loser.view.symbol, close_qty, loser.price, loser.unrealized),
        required=required,
        winners=tuple(sales),
        covered=sum((sale.realizes for sale in sales), ZERO),
        skipped=tuple(skipped),
    )
    if remaining > 0:
        cents = Decimal("0.01")
        reason = (
            f"winners cover {plan.covered.quantize(cents)} of the {required.quantize(cents)} required to close "
            f"{loser.view.symbol}; nothing sold"
        )
        if not candidates:
            reason = f"no winner to offset {loser.view.symbol} ({required.quantize(cents)} required)"
        return RiskDecision(risks, plan, reason, consumed)
    return RiskDecision(risks, plan, f"offset {loser.view.symbol} with {len(sales)} winner(s)", consumed)


def settings_from_config(config: Mapping[str, JSONValue]) -> RiskSettings:
    """`RiskSettings` from a resolved engine config (every key present: `positions.config`)."""
    age = config.get("age_threshold_minutes")
    return RiskSettings(
        enabled=bool(config.get("risk_enabled")),
        eligibility=str(config.get("risk_eligibility")),
        post_full_wait_minutes=int(str(config.get("post_full_wait_minutes"))),
        loss_threshold_percent=Decimal(str(config.get("loss_threshold_percent"))),
        age_threshold_minutes=None if age is None else int(str(age)),
        max_winners_to_combine=int(str(config.get("max_winners_to_combine"))),
        min_close_notional=Decimal(str(config.get("min_close_notional"))),
        timer_reset_on_pyramid=bool(config.get("risk_timer_reset_on_pyramid", True)),
    )


# --------------------------------------------------------------------------- a winner's take-profits


@dataclass(frozen=True, slots=True)
class RestingTakeProfit:
    """A resting take-profit of a winner: its id, limit price and the quantity still to sell."""

    order_id: str
    price: Decimal
    remaining: Decimal


def take_profits_to_cut(resting: Sequence[RestingTakeProfit], *, keep: Decimal) -> tuple[str, ...]:
    """The take-profits to cancel, highest price first, until what stays resting is no more than `keep`
    (what the winner holds after its sale): a partial close never leaves TPs for more than is held."""
    total = sum((tp.remaining for tp in resting), ZERO)
    cut: list[str] = []
    for tp in sorted(resting, key=lambda tp: -tp.price):
        if total <= keep:
            break
        cut.append(tp.order_id)
        total -= tp.remaining
    return tuple(cut)


def take_profits_to_restore(
    cut: Sequence[RestingTakeProfit], *, room: Decimal, rules: MarketRules
) -> tuple[tuple[str, Decimal], ...]:
    """After the sale: (id, quantity) of each cut take-profit to place again at its own price, lowest
    price first (the nearest targets stay), each at most the `room` still uncovered, rounded down to the
    step; a part the exchange would refuse is dropped."""
    again: list[tuple[str, Decimal]] = []
    for tp in sorted(cut, key=lambda tp: tp.price):
        quantity = round_qty_down(min(room, tp.remaining), rules)
        if quantity <= 0 or validate_order(tp.price, quantity, rules):
            continue
        again.append((tp.order_id, quantity))
        room -= quantity
    return tuple(again)
