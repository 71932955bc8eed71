"""Take-profit, stops, trailing, dust, stale DCA legs and slippage (positions.rules.exits): no database."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exchanges.precision import MarketRules, validate_order
from positions.rules.exits import (
    ExitSettings,
    ExitState,
    GridLegView,
    PyramidHolding,
    TrailingState,
    close_quantity,
    dca_legs_to_cancel,
    emptied_group_done,
    exit_decide,
    is_dust,
    leg_take_profit,
    market_exit_allowed,
    pyramid_tp_quantity,
    pyramids_at_take_profit,
    slippage_over_limit,
    trailing_update,
)

D = Decimal
RULES = MarketRules(
    symbol="BTC/USDT",
    exchange_symbol="BTCUSDT",
    base="BTC",
    quote="USDT",
    tick_size=D("0.01"),
    step_size=D("0.00001"),
    min_qty=D("0.00001"),
    min_notional=D("5"),
)


def settings(**overrides: object) -> ExitSettings:
    values: dict[str, object] = {
        "tp_mode": "per_leg",
        "tp_aggregate_percent": D("1.5"),
        "stop_loss_percent": None,
        "trailing_enabled": False,
        "trailing_activation_percent": D("5"),
        "trailing_stop_percent": D("3"),
        **overrides,
    }
    return ExitSettings(**values)  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------------ per leg


def test_leg_tp_sells_the_fee_net_fill_rounded_down_at_fill_plus_tp() -> None:
    tp = leg_take_profit(
        net_filled=D("0.000614385"), placed=D("0"), fill_price=D("65000"), tp_percent=D("1"), rules=RULES
    )
    assert tp is not None
    assert tp.quantity == D("0.00061")
    assert tp.price == D("65650.00")


def test_leg_tp_adds_only_the_increment_a_partial_fill_brought() -> None:
    tp = leg_take_profit(
        net_filled=D("0.0003"), placed=D("0.0001"), fill_price=D("65000"), tp_percent=D("1"), rules=RULES
    )
    assert tp is not None and tp.quantity == D("0.0002")
    covered = leg_take_profit(
        net_filled=D("0.000309"), placed=D("0.0003"), fill_price=D("65000"), tp_percent=D("1"), rules=RULES
    )
    assert covered is None  # less than a step left


def test_leg_tp_too_small_to_stand_alone_waits_for_the_next_fill() -> None:
    # 0.00005 BTC × 65650 = 3.28 USDT, below the 5 USDT minimum notional.
    assert (
        leg_take_profit(net_filled=D("0.00005"), placed=D("0"), fill_price=D("65000"), tp_percent=D("1"), rules=RULES)
        is None
    )


def test_leg_tp_gets_at_most_the_room_the_groups_working_sells_leave() -> None:
    # The leg filled 0.0006 net, but the group (holding 0.0010) has a risk sale of 0.0007 working: 0.0003
    # is left for the TP, so the group's sells never add up to more than it holds.
    tp = leg_take_profit(
        net_filled=D("0.0006"), placed=D("0"), fill_price=D("65000"), tp_percent=D("1"), rules=RULES, room=D("0.0003")
    )
    assert tp is not None and tp.quantity == D("0.0003")
    # Nothing left, or too little to stand alone (0.00005 × 65650 < 5 USDT): no TP now.
    for room in (D("0"), D("-0.0001"), D("0.00005")):
        assert (
            leg_take_profit(
                net_filled=D("0.0006"), placed=D("0"), fill_price=D("65000"), tp_percent=D("1"), rules=RULES, room=room
            )
            is None
        )


@given(
    net=st.decimals(min_value=D("0"), max_value=D("2"), places=9),
    placed_share=st.integers(min_value=0, max_value=100),
    fill_price=st.decimals(min_value=D("100"), max_value=D("100000"), places=4),
    tp_percent=st.decimals(min_value=D("0.1"), max_value=D("20"), places=2),
)
def test_leg_tps_never_sell_more_than_the_leg_holds(
    net: Decimal, placed_share: int, fill_price: Decimal, tp_percent: Decimal
) -> None:
    placed = (net * placed_share / 100).quantize(RULES.step_size, rounding="ROUND_DOWN")
    tp = leg_take_profit(net_filled=net, placed=placed, fill_price=fill_price, tp_percent=tp_percent, rules=RULES)
    if tp is None:
        return
    assert placed + tp.quantity <= net
    assert tp.quantity % RULES.step_size == 0 and tp.price % RULES.tick_size == 0
    assert tp.price > fill_price
    assert validate_order(tp.price, tp.quantity, RULES) == []


# ------------------------------------------------------------------------------------------------ aggregate / stop


@pytest.mark.parametrize("mode", ["aggregate", "hybrid"])
def test_aggregate_tp_triggers_at_average_plus_percent(mode: str) -> None:
    state = ExitState(avg_entry=D("100"))
    config = settings(tp_mode=mode, tp_aggregate_percent=D("1.5"))
    assert exit_decide(state=state, price=D("101.49"), settings=config).purpose is None
    assert exit_decide(state=state, price=D("101.5"), settings=config).purpose == "tp_aggregate"


@pytest.mark.parametrize("mode", ["per_leg", "pyramid_aggregate"])
def test_no_aggregate_tp_outside_aggregate_and_hybrid(mode: str) -> None:
    decision = exit_decide(state=ExitState(avg_entry=D("100")), price=D("1000"), settings=settings(tp_mode=mode))
    assert decision.purpose is None


def test_stop_loss_follows_the_average_and_triggers_at_the_stop() -> None:
    config = settings(stop_loss_percent=D("3"))
    above = exit_decide(state=ExitState(avg_entry=D("100")), price=D("97.01"), settings=config)
    assert above.purpose is None and above.stop_loss_price == D("97")
    at = exit_decide(state=ExitState(avg_entry=D("100"), stop_loss_price=D("97")), price=D("97"), settings=config)
    assert at.purpose == "stop_loss"
    # A pyramid lowered the average: the stop moves with it.
    moved = exit_decide(state=ExitState(avg_entry=D("90"), stop_loss_price=D("97")), price=D("96"), settings=config)
    assert moved.purpose is None and moved.stop_loss_price == D("87.3")


def test_without_a_stop_the_stored_stop_is_left_alone() -> None:
    decision = exit_decide(
        state=ExitState(avg_entry=D("100"), stop_loss_price=D("50")), price=D("1"), settings=settings()
    )
    assert decision.purpose is None and decision.stop_loss_price == D("50")


def test_aggregate_tp_wins_over_a_trailing_stop_in_the_same_pass() -> None:
    state = ExitState(avg_entry=D("100"), trailing=TrailingState(active=True, high=D("120"), stop_price=D("116.4")))
    config = settings(tp_mode="aggregate", tp_aggregate_percent=D("10"), trailing_enabled=True)
    decision = exit_decide(state=state, price=D("111"), settings=config)
    assert decision.purpose == "tp_aggregate"
    assert decision.trailing == state.trailing


# ------------------------------------------------------------------------------------------------ trailing


def test_trailing_activates_trails_never_loosens_and_exits() -> None:
    """The same walk as the end-to-end test: avg 65000, activation 5 %, distance 3 %."""
    config = settings(tp_mode="aggregate", tp_aggregate_percent=D("50"), trailing_enabled=True)
    state = ExitState(avg_entry=D("65000"))

    def step(price: str) -> str | None:
        nonlocal state
        decision = exit_decide(state=state, price=D(price), settings=config)
        state = ExitState(
            avg_entry=state.avg_entry, stop_loss_price=decision.stop_loss_price, trailing=decision.trailing
        )
        return decision.purpose

    assert step("67600") is None and not state.trailing.active  # +4 %
    assert step("70000") is None
    assert state.trailing == TrailingState(active=True, high=D("70000"), stop_price=D("67900"))
    assert step("72000") is None and state.trailing.stop_price == D("69840")
    assert step("71000") is None
    assert state.trailing.stop_price == D("69840") and state.trailing.high == D("72000")
    assert step("69800") == "trailing_stop"


def test_trailing_is_off_unless_enabled() -> None:
    decision = exit_decide(state=ExitState(avg_entry=D("100")), price=D("200"), settings=settings())
    assert decision.trailing == TrailingState()


@given(
    st.lists(st.decimals(min_value=D("50"), max_value=D("200"), places=2), min_size=1, max_size=30),
    st.decimals(min_value=D("0.5"), max_value=D("20"), places=1),
    st.decimals(min_value=D("0.5"), max_value=D("20"), places=1),
)
def test_trailing_stop_never_moves_down_and_hits_only_at_or_below_it(
    path: list[Decimal], activation: Decimal, distance: Decimal
) -> None:
    avg = D("100")
    state = TrailingState()
    highest_since_active: Decimal | None = None
    for price in path:
        before = state
        state, hit = trailing_update(
            state, avg_entry=avg, price=price, activation_percent=activation, distance_percent=distance
        )
        if before.active:
            assert state.active
            assert before.stop_price is not None and state.stop_price is not None
            assert state.stop_price >= before.stop_price
        if state.active:
            highest_since_active = price if highest_since_active is None else max(highest_since_active, price)
            assert state.high == highest_since_active
            assert state.stop_price == highest_since_active * (1 - distance / 100)
            assert hit == (price <= state.stop_price)
        else:
            assert not hit and (price / avg - 1) * 100 < activation


# ------------------------------------------------------------------------------------------------ pyramids


def test_pyramids_reach_their_tp_each_on_its_own_average() -> None:
    holdings = [
        PyramidHolding(index=0, held=D("0.001"), avg_cost=D("65000")),
        PyramidHolding(index=1, held=D("0.001"), avg_cost=D("60000")),
        PyramidHolding(index=2, held=D("0"), avg_cost=None),
    ]
    assert pyramids_at_take_profit(holdings, price=D("60600"), tp_percent=D("1")) == (1,)
    assert pyramids_at_take_profit(holdings, price=D("65650"), tp_percent=D("1")) == (0, 1)
    assert pyramids_at_take_profit(holdings, price=D("60599.99"), tp_percent=D("1")) == ()


def test_a_pyramid_tp_sells_its_own_holding_never_more_than_the_group_holds() -> None:
    assert pyramid_tp_quantity(pyramid_held=D("0.0012345"), group_held=D("1"), price=D("65000"), rules=RULES) == D(
        "0.00123"
    )
    assert pyramid_tp_quantity(pyramid_held=D("0.0012345"), group_held=D("0.001"), price=D("65000"), rules=RULES) == D(
        "0.001"
    )
    assert pyramid_tp_quantity(pyramid_held=D("0.00005"), group_held=D("1"), price=D("65000"), rules=RULES) is None
    assert pyramid_tp_quantity(pyramid_held=D("0"), group_held=D("1"), price=D("65000"), rules=RULES) is None


# ------------------------------------------------------------------------------------------------ closing, dust


def test_close_quantity_is_everything_held_on_the_step_or_nothing_when_dust() -> None:
    assert close_quantity(held=D("0.0031234"), reference_price=D("65000"), rules=RULES) == D("0.00312")
    assert close_quantity(held=D("0.00007"), reference_price=D("65000"), rules=RULES) is None  # 4.55 USDT
    assert close_quantity(held=D("0.000009"), reference_price=D("65000"), rules=RULES) is None  # below a step


def test_dust_is_below_min_quantity_or_notional() -> None:
    assert is_dust(held=D("0.000009"), price=D("65000"), rules=RULES)
    assert is_dust(held=D("0.00007"), price=D("65000"), rules=RULES)
    assert not is_dust(held=D("0.0001"), price=D("65000"), rules=RULES)


def test_an_emptied_group_is_done_only_when_it_sold_and_nothing_rests() -> None:
    dust = {"held": D("0.000003"), "price": D("65000"), "rules": RULES}
    assert emptied_group_done(sold=D("0.001"), orders_resting=False, **dust)  # type: ignore[arg-type]
    assert not emptied_group_done(sold=D("0.001"), orders_resting=True, **dust)  # type: ignore[arg-type]
    assert not emptied_group_done(sold=D("0"), orders_resting=False, **dust)  # type: ignore[arg-type]
    assert not emptied_group_done(sold=D("0.001"), held=D("0.001"), orders_resting=False, price=D("65000"), rules=RULES)


# ------------------------------------------------------------------------------------------------ stale DCA legs


def grid(pyramid: int, prices: list[str], settled: int = 0) -> list[GridLegView]:
    return [
        GridLegView(
            order_id=f"p{pyramid}l{level}", pyramid=pyramid, level=level, grid_price=D(p), settled=level < settled
        )
        for level, p in enumerate(prices)
    ]


def test_no_cancel_without_the_setting() -> None:
    assert dca_legs_to_cancel(grid(0, ["100", "99", "98"]), side="long", price=D("1"), beyond_percent=None) == ()


def test_long_legs_are_cancelled_once_price_is_past_the_last_level_by_more_than_the_percent() -> None:
    legs = grid(0, ["100", "99", "98"], settled=1)  # the entry filled; two legs rest
    # 2 % past 98 is 96.04: at it, nothing; below it, the resting legs go.
    assert dca_legs_to_cancel(legs, side="long", price=D("96.04"), beyond_percent=D("2")) == ()
    assert dca_legs_to_cancel(legs, side="long", price=D("96.03"), beyond_percent=D("2")) == ("p0l1", "p0l2")
    # Above entry (the other way) is not "beyond the last level".
    assert dca_legs_to_cancel(legs, side="long", price=D("500"), beyond_percent=D("2")) == ()


def test_short_grids_are_judged_above_their_last_level() -> None:
    legs = grid(0, ["100", "101", "102"], settled=1)
    assert dca_legs_to_cancel(legs, side="short", price=D("104.04"), beyond_percent=D("2")) == ()
    assert dca_legs_to_cancel(legs, side="short", price=D("104.05"), beyond_percent=D("2")) == ("p0l1", "p0l2")


def test_each_pyramid_is_judged_by_its_own_last_level() -> None:
    legs = grid(0, ["100", "99", "98"], settled=1) + grid(1, ["90", "89", "88"], settled=1)
    assert dca_legs_to_cancel(legs, side="long", price=D("95"), beyond_percent=D("1")) == ("p0l1", "p0l2")
    assert dca_legs_to_cancel(legs, side="long", price=D("87"), beyond_percent=D("1")) == (
        "p0l1",
        "p0l2",
        "p1l1",
        "p1l2",
    )


def test_nothing_to_cancel_when_every_leg_settled() -> None:
    assert dca_legs_to_cancel(grid(0, ["100", "99"], settled=2), side="long", price=D("1"), beyond_percent=D("1")) == ()


# ------------------------------------------------------------------------------------------------ slippage


def test_slippage_of_a_sell_is_how_far_below_the_reference_it_filled() -> None:
    assert slippage_over_limit(reference=D("100"), filled=D("98.5"), limit_percent=D("1")) == (D("1.5"), True)
    assert slippage_over_limit(reference=D("100"), filled=D("99"), limit_percent=D("1")) == (D("1"), False)
    assert slippage_over_limit(reference=D("100"), filled=D("101"), limit_percent=D("1")) == (D("-1"), False)


def test_warn_always_sends_a_market_exit() -> None:
    assert market_exit_allowed(action="warn", reference=D("100"), latest=D("50"), limit_percent=D("1"))


def test_reject_refuses_a_market_exit_into_a_price_already_past_the_limit() -> None:
    assert market_exit_allowed(action="reject", reference=D("100"), latest=D("99"), limit_percent=D("1"))
    assert not market_exit_allowed(action="reject", reference=D("100"), latest=D("98.99"), limit_percent=D("1"))
    # A better price than the trigger's is never refused.
    assert market_exit_allowed(action="reject", reference=D("100"), latest=D("150"), limit_percent=D("1"))
    # Nothing to compare: send.
    assert market_exit_allowed(action="reject", reference=None, latest=D("50"), limit_percent=D("1"))
    assert market_exit_allowed(action="reject", reference=D("100"), latest=None, limit_percent=D("1"))
