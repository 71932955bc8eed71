"""The group state machine (positions.rules.lifecycle): no database."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from positions.choices import FINAL_GROUP_STATUSES, OPEN_GROUP_STATUSES, GroupStatus, OrderStatus
from positions.rules.lifecycle import ALLOWED_TRANSITIONS, LegFill, fill_state_target, transition_allowed

S = GroupStatus


def test_every_status_has_its_transitions_and_nothing_else() -> None:
    assert set(ALLOWED_TRANSITIONS) == set(GroupStatus)
    for targets in ALLOWED_TRANSITIONS.values():
        assert targets <= set(GroupStatus)


def test_the_happy_path_is_allowed_step_by_step() -> None:
    path = [S.WAITING, S.LIVE, S.PARTIALLY_FILLED, S.ACTIVE, S.CLOSING, S.CLOSED]
    for current, to in zip(path, path[1:], strict=False):
        assert transition_allowed(current, to), (current, to)


@pytest.mark.parametrize("current", OPEN_GROUP_STATUSES)
def test_any_open_status_can_fail(current: str) -> None:
    assert transition_allowed(current, S.FAILED)


@pytest.mark.parametrize("final", FINAL_GROUP_STATUSES)
def test_final_statuses_go_nowhere(final: str) -> None:
    assert all(not transition_allowed(final, to) for to in GroupStatus if to != final)
    assert transition_allowed(final, final)  # staying is a no-op, never an error


def test_closing_only_ends() -> None:
    assert {to for to in GroupStatus if to != S.CLOSING and transition_allowed(S.CLOSING, to)} == {S.CLOSED, S.FAILED}


def test_no_way_back_to_waiting_and_closed_only_through_closing_once_filled() -> None:
    assert not any(transition_allowed(current, S.WAITING) for current in GroupStatus if current != S.WAITING)
    assert not transition_allowed(S.ACTIVE, S.CLOSED)
    assert not transition_allowed(S.PARTIALLY_FILLED, S.CLOSED)


def leg(status: str, filled: str = "0") -> LegFill:
    return LegFill(status=status, filled_quantity=Decimal(filled))


def test_fill_state_follows_the_legs() -> None:
    resting = [leg(OrderStatus.OPEN), leg(OrderStatus.OPEN)]
    assert fill_state_target(S.LIVE, resting) is None
    some = [leg(OrderStatus.FILLED, "1"), leg(OrderStatus.OPEN)]
    assert fill_state_target(S.LIVE, some) == S.PARTIALLY_FILLED
    partial = [leg(OrderStatus.PARTIALLY_FILLED, "0.5"), leg(OrderStatus.OPEN)]
    assert fill_state_target(S.LIVE, partial) == S.PARTIALLY_FILLED
    everything = [leg(OrderStatus.FILLED, "1"), leg(OrderStatus.FILLED, "1")]
    assert fill_state_target(S.PARTIALLY_FILLED, everything) == S.ACTIVE
    assert fill_state_target(S.LIVE, everything) == S.ACTIVE


def test_dropped_legs_do_not_hold_a_group_back() -> None:
    legs = [leg(OrderStatus.FILLED, "1"), leg(OrderStatus.CANCELED), leg(OrderStatus.REJECTED)]
    assert fill_state_target(S.PARTIALLY_FILLED, legs) == S.ACTIVE
    assert fill_state_target(S.LIVE, [leg(OrderStatus.CANCELED), leg(OrderStatus.FAILED)]) is None


def test_a_new_pyramid_takes_an_active_group_back_to_partially_filled() -> None:
    legs = [leg(OrderStatus.FILLED, "1"), leg(OrderStatus.PENDING)]
    assert fill_state_target(S.ACTIVE, legs) == S.PARTIALLY_FILLED


@pytest.mark.parametrize("current", [S.CLOSING, S.CLOSED, S.FAILED])
def test_closing_and_final_groups_do_not_follow_fills(current: str) -> None:
    assert fill_state_target(current, [leg(OrderStatus.FILLED, "1")]) is None


def test_no_target_when_already_there() -> None:
    assert fill_state_target(S.ACTIVE, [leg(OrderStatus.FILLED, "1")]) is None


leg_states = st.builds(
    LegFill,
    status=st.sampled_from(list(OrderStatus)),
    filled_quantity=st.sampled_from([Decimal("0"), Decimal("0.001"), Decimal("1")]),
)


@given(st.sampled_from(list(GroupStatus)), st.lists(leg_states, max_size=8))
def test_the_fill_state_target_is_always_an_allowed_transition(current: str, legs: list[LegFill]) -> None:
    target = fill_state_target(current, legs)
    if target is None:
        return
    assert target != current
    assert transition_allowed(current, target)
    counted = [
        one for one in legs if one.status not in (OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.FAILED)
    ]
    if target == S.ACTIVE:
        assert counted and all(one.status == OrderStatus.FILLED for one in counted)
    else:
        assert target == S.PARTIALLY_FILLED
        assert any(one.filled_quantity > 0 for one in counted)
