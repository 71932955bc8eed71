"""Take-profit, stop loss, trailing stop, dust, stale DCA legs and slippage: the exit decisions.

Pure functions over plain data; the services (`positions.services.takeprofit`, `.monitor`, `.exits`)
read the rows, call these, and then place, cancel or close. See docs/engine.md#take-profit and
docs/engine.md#stop-loss and docs/engine.md#trailing-stop.

Take-profit modes:
- `per_leg`: each filled leg gets a resting limit sell for its fee-net filled quantity at
  `fill_price × (1 + tp_percent/100)` (`leg_take_profit`);
- `aggregate`: the whole group closes at `avg_entry × (1 + aggregate TP/100)` (`exit_decide`);
- `hybrid`: both; the first trigger wins;
- `pyramid_aggregate`: each pyramid sells its own quantity at its own average + the aggregate TP
  (`pyramids_at_take_profit`, `pyramid_tp_quantity`).

The aggregate TP percent of a config is `ExitSettings.aggregate_percent_of`: a generated grid's `tp_percent`,
else `tp_aggregate_percent` (docs/engine.md#aggregate).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal

from core.jsontypes import JSONValue
from exchanges.precision import MarketRules, round_qty_down, validate_order

from ..choices import ExitPurpose, Side, TpMode
from ..config import engine_setting
from ..grid import trade_tp_price

ZERO = Decimal("0")
HUNDRED = Decimal("100")
AGGREGATE_TP_MODES = frozenset({TpMode.AGGREGATE, TpMode.HYBRID})
PER_LEG_TP_MODES = frozenset({TpMode.PER_LEG, TpMode.HYBRID})
SLIPPAGE_WARN = "warn"
SLIPPAGE_REJECT = "reject"


# ------------------------------------------------------------------------------------------------
# Per-leg take-profit


@dataclass(frozen=True, slots=True)
class LegTakeProfit:
    """A limit sell to add for a leg: the part of its filled quantity no live TP covers yet."""

    price: Decimal
    quantity: Decimal


def leg_take_profit(
    *,
    net_filled: Decimal,
    placed: Decimal,
    fill_price: Decimal,
    tp_percent: Decimal,
    rules: MarketRules,
    room: Decimal | None = None,
) -> LegTakeProfit | None:
    """The TP to add so a leg's TPs cover its fee-net filled quantity, or None.

    `placed` is the quantity of the leg's TPs that are live or filled. `room`, when given, is what the
    group holds beyond the sells already working for it (its other TPs, a risk engine sale): the TP never
    exceeds it, so the group's sells never add up to more than it holds. A remainder the exchange would
    refuse on its own (below min quantity or notional) waits: the leg's next fill adds to it.
    """
    wanted = round_qty_down(net_filled, rules)
    delta = round_qty_down(wanted - placed, rules)
    if room is not None:
        delta = min(delta, round_qty_down(room, rules))
    if delta <= 0:
        return None
    price = trade_tp_price(fill_price, tp_percent, rules)
    if validate_order(price, delta, rules):
        return None
    return LegTakeProfit(price=price, quantity=delta)


# ------------------------------------------------------------------------------------------------
# Group exits: aggregate take-profit, stop loss, trailing stop


@dataclass(frozen=True, slots=True)
class ExitSettings:
    """The exit part of a group's config snapshot, with defaults filled in (`positions.config`).

    `tp_aggregate_percent` is the percent every aggregate take-profit adds to an average (`aggregate`,
    `hybrid`, `pyramid_aggregate`): build it with `aggregate_percent_of` from the config.
    """

    tp_mode: str
    tp_aggregate_percent: Decimal
    stop_loss_percent: Decimal | None
    trailing_enabled: bool
    trailing_activation_percent: Decimal
    trailing_stop_percent: Decimal

    @staticmethod
    def aggregate_percent_of(config: Mapping[str, JSONValue] | None) -> Decimal:
        """The aggregate TP percent of a config (a group's snapshot or a resolved config): the generator's
        `tp_percent` when the grid is generated, else `tp_aggregate_percent` (docs/engine.md#aggregate).

        A 3Commas-style grid's TP is, by construction, a TP on the average entry: the grid preview's
        `cum_tp_price` (`GridConfig.aggregate_tp_percent`) uses the same percent, so the live check, the
        backtest and the preview agree.
        """
        generator = engine_setting(config, "generator")
        if isinstance(generator, Mapping) and generator.get("tp_percent") is not None:
            return Decimal(str(generator["tp_percent"]))
        return Decimal(str(engine_setting(config, "tp_aggregate_percent")))


@dataclass(frozen=True, slots=True)
class TrailingState:
    active: bool = False
    high: Decimal | None = None
    stop_price: Decimal | None = None


@dataclass(frozen=True, slots=True)
class ExitState:
    """What the exit checks keep on a group between passes."""

    avg_entry: Decimal
    stop_loss_price: Decimal | None = None
    trailing: TrailingState = TrailingState()


@dataclass(frozen=True, slots=True)
class ExitDecision:
    """Which exit `price` triggers (None: none), and the stop and trailing state to keep."""

    purpose: str | None
    stop_loss_price: Decimal | None
    trailing: TrailingState


def aggregate_tp_price(avg_entry: Decimal, tp_percent: Decimal) -> Decimal:
    return avg_entry * (1 + tp_percent / 100)


def stop_loss_price(avg_entry: Decimal, stop_percent: Decimal) -> Decimal:
    return avg_entry * (1 - stop_percent / 100)


def exit_decide(*, state: ExitState, price: Decimal, settings: ExitSettings) -> ExitDecision:
    """The group exit `price` triggers, checked in order: aggregate TP, stop loss, trailing stop.

    The first that triggers wins and the later ones are not looked at (their state is kept as it was).
    The stop follows the average entry (a new pyramid moves it); the trailing stop never loosens.
    """
    avg = state.avg_entry
    if settings.tp_mode in AGGREGATE_TP_MODES and price >= aggregate_tp_price(avg, settings.tp_aggregate_percent):
        return ExitDecision(ExitPurpose.TAKE_PROFIT_AGGREGATE, state.stop_loss_price, state.trailing)
    stop = state.stop_loss_price
    if settings.stop_loss_percent is not None:
        stop = stop_loss_price(avg, settings.stop_loss_percent)
        if price <= stop:
            return ExitDecision(ExitPurpose.STOP_LOSS, stop, state.trailing)
    if not settings.trailing_enabled:
        return ExitDecision(None, stop, state.trailing)
    trailing, hit = trailing_update(
        state.trailing,
        avg_entry=avg,
        price=price,
        activation_percent=settings.trailing_activation_percent,
        distance_percent=settings.trailing_stop_percent,
    )
    return ExitDecision(ExitPurpose.TRAILING_STOP if hit else None, stop, trailing)


def trailing_update(
    state: TrailingState,
    *,
    avg_entry: Decimal,
    price: Decimal,
    activation_percent: Decimal,
    distance_percent: Decimal,
) -> tuple[TrailingState, bool]:
    """(new trailing state, whether the stop is hit).

    Activates once profit reaches `activation_percent`; then trails the highest price seen by
    `distance_percent` and never moves the stop down.
    """
    if not state.active:
        if (price / avg_entry - 1) * 100 < activation_percent:
            return state, False
        state = TrailingState(active=True, high=price, stop_price=price * (1 - distance_percent / 100))
    elif price > (state.high if state.high is not None else price):
        candidate = price * (1 - distance_percent / 100)
        current = state.stop_price if state.stop_price is not None else ZERO
        state = TrailingState(
            active=True, high=price, stop_price=candidate if candidate > current else state.stop_price
        )
    hit = state.stop_price is not None and price <= state.stop_price
    return state, hit


# ------------------------------------------------------------------------------------------------
# Pyramid take-profit (pyramid_aggregate)


@dataclass(frozen=True, slots=True)
class PyramidHolding:
    """One pyramid's own position: the fee-net base its entry legs bought and their average cost."""

    index: int
    held: Decimal
    avg_cost: Decimal | None


def pyramid_reached_tp(holding: PyramidHolding, *, price: Decimal, tp_percent: Decimal) -> bool:
    if holding.held <= 0 or holding.avg_cost is None:
        return False
    return price >= holding.avg_cost * (1 + tp_percent / 100)


def pyramids_at_take_profit(
    holdings: Iterable[PyramidHolding], *, price: Decimal, tp_percent: Decimal
) -> tuple[int, ...]:
    """The indexes of the pyramids whose own average + `tp_percent` the price has reached."""
    return tuple(h.index for h in holdings if pyramid_reached_tp(h, price=price, tp_percent=tp_percent))


def pyramid_tp_quantity(
    *, pyramid_held: Decimal, group_held: Decimal, price: Decimal, rules: MarketRules
) -> Decimal | None:
    """What a pyramid's TP sells: its own holding rounded to the step, never more than the group holds.

    None when the exchange would refuse the pyramid's holding on its own.
    """
    quantity = round_qty_down(pyramid_held, rules) if pyramid_held > 0 else ZERO
    if quantity <= 0 or validate_order(price, quantity, rules):
        return None
    return min(quantity, group_held)


# ------------------------------------------------------------------------------------------------
# Closing: what to sell, and when what is left is dust


def close_quantity(*, held: Decimal, reference_price: Decimal, rules: MarketRules) -> Decimal | None:
    """The market sell that closes a group: everything held, rounded down to the step.

    None when that is dust (nothing the exchange would accept): there is nothing to sell.
    """
    quantity = round_qty_down(held, rules)
    if quantity <= 0 or validate_order(reference_price, quantity, rules):
        return None
    return quantity


def is_dust(*, held: Decimal, price: Decimal, rules: MarketRules) -> bool:
    """Whether what is held is below the exchange's minimum quantity or notional once rounded."""
    remainder = round_qty_down(held, rules)
    return remainder < rules.min_qty or remainder * price < rules.min_notional


def emptied_group_done(
    *, sold: Decimal, held: Decimal, orders_resting: bool, price: Decimal, rules: MarketRules
) -> bool:
    """Per-leg TPs sold everything sellable and nothing rests: the group is done.

    Buys pay their fee in the base asset and each TP sells its leg's net quantity rounded down to the
    step, so a remainder below the exchange's minimum quantity or notional is left behind: dust.
    """
    return sold > 0 and not orders_resting and is_dust(held=held, price=price, rules=rules)


# ------------------------------------------------------------------------------------------------
# DCA legs left behind (cancel_dca_beyond_percent)


@dataclass(frozen=True, slots=True)
class GridLegView:
    """An entry leg as the stale-leg rule sees it."""

    order_id: str
    pyramid: int
    level: int
    grid_price: Decimal  # the level's price before the exchange filled it
    settled: bool  # filled, cancelled, rejected or failed: nothing left to cancel


def beyond_last_level(*, side: str, last_level_price: Decimal, price: Decimal, beyond_percent: Decimal) -> bool:
    """Whether price has moved more than `beyond_percent` past a grid's last level (away from entry)."""
    if side == Side.SHORT:
        return price > last_level_price * (1 + beyond_percent / 100)
    return price < last_level_price * (1 - beyond_percent / 100)


def dca_legs_to_cancel(
    legs: Iterable[GridLegView], *, side: str, price: Decimal, beyond_percent: Decimal | None
) -> tuple[str, ...]:
    """The unsettled entry legs of every pyramid whose grid price has left behind.

    By default the last leg keeps resting whatever the price does; with `cancel_dca_beyond_percent`
    set, once price is more than that percentage past a pyramid's last level (the level with the
    highest index), that pyramid's legs still resting are cancelled. Each pyramid has its own grid,
    so each is judged by its own last level. See docs/engine.md#exit-checks.
    """
    if beyond_percent is None:
        return ()
    by_pyramid: dict[int, list[GridLegView]] = {}
    for leg in legs:
        by_pyramid.setdefault(leg.pyramid, []).append(leg)
    cancel: list[str] = []
    for pyramid in sorted(by_pyramid):
        grid = by_pyramid[pyramid]
        last = max(grid, key=lambda leg: leg.level)
        if beyond_last_level(side=side, last_level_price=last.grid_price, price=price, beyond_percent=beyond_percent):
            cancel += [leg.order_id for leg in sorted(grid, key=lambda leg: leg.level) if not leg.settled]
    return tuple(cancel)


# ------------------------------------------------------------------------------------------------
# Slippage of market exits


def adverse_move_percent(*, reference: Decimal, price: Decimal) -> Decimal:
    """How far `price` is below `reference` for a sell, in percent of the reference (negative: better)."""
    return (reference - price) / reference * 100


def slippage_over_limit(*, reference: Decimal, filled: Decimal, limit_percent: Decimal) -> tuple[Decimal, bool]:
    """(slippage % of a filled market sell against the price seen before sending, whether over the limit)."""
    slippage = adverse_move_percent(reference=reference, price=filled)
    return slippage, slippage > limit_percent


def market_exit_allowed(
    *, action: str, reference: Decimal | None, latest: Decimal | None, limit_percent: Decimal
) -> bool:
    """Whether a price-triggered market exit may be sent (`slippage_action`).

    `warn` always sends (the slippage is recorded and warned about after the fill). `reject` sends only
    while the latest price has not moved against the exit by more than `limit_percent` since the price
    that triggered it: a market sell into a price that already slipped past the limit is not sent, and
    the exit is decided again on the next pass. Without both prices there is nothing to compare: send.
    See docs/engine.md#slippage.
    """
    if action != SLIPPAGE_REJECT or reference is None or latest is None or reference <= 0:
        return True
    return adverse_move_percent(reference=reference, price=latest) <= limit_percent
