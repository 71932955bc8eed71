"""The risk plan as worked examples: every number below is written out by hand (docs/engine.md#risk-engine).

Fee rate f = 0.001 (the simulator's taker rate). For each group:
unrealized = held × P × (1 − f) − cost; per unit sold a winner realizes r = P × (1 − f) − avg_entry.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D  # noqa: N817  (worked examples read better short)

from exchanges.precision import MarketRules
from riskengine.rules import (
    GroupView,
    RestingTakeProfit,
    RiskSettings,
    eligibility,
    plan_offset,
    step_ceil,
    take_profits_to_cut,
    take_profits_to_restore,
    timer_update,
    unrealized_pnl,
)

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
CFG = "cfg-1"


def _rules(symbol: str, step: str, tick: str = "0.01") -> MarketRules:
    base, quote = symbol.split("/")
    return MarketRules(
        symbol=symbol,
        exchange_symbol=base + quote,
        base=base,
        quote=quote,
        tick_size=D(tick),
        step_size=D(step),
        min_qty=D(step),
        min_notional=D("5"),
    )


RULES = {
    (CFG, "BTC/USDT"): _rules("BTC/USDT", "0.00001"),
    (CFG, "ETH/USDT"): _rules("ETH/USDT", "0.0001"),
    (CFG, "SOL/USDT"): _rules("SOL/USDT", "0.001"),
    (CFG, "BNB/USDT"): _rules("BNB/USDT", "0.001"),
}
# No waiting, default threshold (−5 %), three winners at most, 20 USDT minimum close.
SETTINGS = RiskSettings(post_full_wait_minutes=0)


def group(gid: str, symbol: str, held: str, cost: str, **kw: object) -> GroupView:
    values: dict[str, object] = {
        "group_id": gid,
        "market": (CFG, symbol),
        "status": "active",
        "held": D(held),
        "cost": D(cost),
        "pyramids": 1,
        "max_pyramids": 1,
        "legs_unsent": 0,
        "legs_unfilled": 0,
        "created_at": NOW - timedelta(hours=5),
        "timer_started_at": NOW - timedelta(hours=2),
        "timer_pyramids": 1,
    }
    values.update(kw)
    return GroupView(**values)  # type: ignore[arg-type]


def prices(**by_base: str) -> dict[tuple[str, str], D]:
    return {(CFG, f"{base}/USDT"): D(price) for base, price in by_base.items()}


# Winner A: 1 ETH that cost 3000, at 3500: unrealized = 3500 × 0.999 − 3000 = 496.5, r = 496.5.
ETH_WINNER = group("eth", "ETH/USDT", "1", "3000")
# Winner B: 0.01 BTC that cost 600, at 65000: unrealized = 649.35 − 600 = 49.35, r = 64935 − 60000 = 4935.
BTC_WINNER = group("btc", "BTC/USDT", "0.01", "600")
WINNER_PRICES = {"ETH": "3500", "BTC": "65000"}


def test_numbers() -> None:
    assert unrealized_pnl(held=D("2"), cost=D("300"), price=D("120"), fee_rate=D("0.001")) == D("-60.24")
    assert step_ceil(D("0.1213293"), D("0.0001")) == D("0.1214")
    assert step_ceil(D("0.1214"), D("0.0001")) == D("0.1214")


def test_one_winner_covers_the_loser() -> None:
    # Loser: 2 SOL that cost 300, at 120: unrealized = 2 × 120 × 0.999 − 300 = −60.24 (−20.08 %).
    loser = group("sol", "SOL/USDT", "2", "300")
    decision = plan_offset([loser, ETH_WINNER, BTC_WINNER], prices(SOL="120", **WINNER_PRICES), RULES, SETTINGS, NOW)
    plan = decision.plan
    assert decision.offset and plan is not None
    assert plan.loser.group_id == "sol" and plan.loser.quantity == D("2") and plan.loser.unrealized == D("-60.24")
    assert plan.required == D("60.24")
    # ETH first (496.5 > 49.35): c = min(60.24, 496.5) = 60.24; q = 60.24 / 496.5 = 0.12133… → up to 0.1214;
    # q × P = 424.9 ≥ 20; realizes 0.1214 × 496.5 = 60.2751 ≥ 60.24: BTC is not needed.
    assert [(w.group_id, w.quantity, w.realizes) for w in plan.winners] == [("eth", D("0.1214"), D("60.2751"))]
    assert plan.covered == D("60.2751")


def test_both_winners_are_needed() -> None:
    # Loser: 10 SOL that cost 1500, at 100: unrealized = 999 − 1500 = −501.
    loser = group("sol", "SOL/USDT", "10", "1500")
    decision = plan_offset([loser, ETH_WINNER, BTC_WINNER], prices(SOL="100", **WINNER_PRICES), RULES, SETTINGS, NOW)
    plan = decision.plan
    assert decision.offset and plan is not None and plan.required == D("501")
    # ETH: c = min(501, 496.5) = 496.5, q = 1 (its whole holding), realizes 496.5; remaining 4.5.
    # BTC: c = 4.5, q = 4.5 / 4935 = 0.000911… → 0.00092; q × P = 59.8 ≥ 20; realizes 0.00092 × 4935 = 4.5402.
    assert [(w.group_id, w.quantity, w.realizes) for w in plan.winners] == [
        ("eth", D("1.0000"), D("496.5")),
        ("btc", D("0.00092"), D("4.54020")),
    ]
    assert plan.covered == D("501.0402")


def test_minimum_close_notional_raises_the_quantity() -> None:
    # Loser: 0.2 SOL that cost 30, at 140: unrealized = 27.972 − 30 = −2.028 (−6.76 %).
    # Winner: 1 BNB that cost 300, at 600: r = 599.4 − 300 = 299.4.
    loser = group("sol", "SOL/USDT", "0.2", "30")
    bnb = group("bnb", "BNB/USDT", "1", "300")
    decision = plan_offset([loser, bnb], prices(SOL="140", BNB="600"), RULES, SETTINGS, NOW)
    plan = decision.plan
    assert decision.offset and plan is not None and plan.required == D("2.028")
    # q = 2.028 / 299.4 = 0.00677… → 0.007, but 0.007 × 600 = 4.2 < 20: raised to ⌈20 / 600⌉ = 0.034
    # (0.034 × 600 = 20.4); realizes 0.034 × 299.4 = 10.1796.
    assert [(w.quantity, w.realizes) for w in plan.winners] == [(D("0.034"), D("10.1796"))]


def test_winner_too_small_for_the_minimum_is_skipped_and_nothing_is_sold() -> None:
    # The same loser; the winner holds 0.03 BNB (cost 9): unrealized = 17.982 − 9 = 8.982 ≥ 2.028, but the
    # 0.034 the 20 USDT minimum needs is more than it holds.
    loser = group("sol", "SOL/USDT", "0.2", "30")
    bnb = group("bnb", "BNB/USDT", "0.03", "9")
    decision = plan_offset([loser, bnb], prices(SOL="140", BNB="600"), RULES, SETTINGS, NOW)
    assert not decision.offset and decision.plan is not None
    assert decision.plan.winners == () and decision.plan.covered == 0
    assert "0.034" in decision.plan.skipped[0]
    assert decision.reason == "winners cover 0.00 of the 2.03 required to close SOL/USDT; nothing sold"


def test_winners_that_cannot_cover_sell_nothing() -> None:
    # Loser −501 (as above); only BTC: c = 49.35, q = 0.01 (all of it), realizes 49.35; 451.65 remain.
    loser = group("sol", "SOL/USDT", "10", "1500")
    decision = plan_offset([loser, BTC_WINNER], prices(SOL="100", BTC="65000"), RULES, SETTINGS, NOW)
    assert not decision.offset
    assert decision.reason == "winners cover 49.35 of the 501.00 required to close SOL/USDT; nothing sold"


def test_no_winner_at_all() -> None:
    loser = group("sol", "SOL/USDT", "10", "1500")
    decision = plan_offset([loser], prices(SOL="100"), RULES, SETTINGS, NOW)
    assert not decision.offset and decision.reason == "no winner to offset SOL/USDT (501.00 required)"


def test_loser_is_the_deepest_loss_then_the_larger_usd_loss_then_the_older() -> None:
    # SOL −20.08 %, BNB: 1 BNB cost 300 at 200: 199.8 − 300 = −100.2 (−33.4 %): BNB is the loser.
    sol = group("sol", "SOL/USDT", "2", "300")
    bnb = group("bnb", "BNB/USDT", "1", "300")
    decision = plan_offset([sol, bnb, ETH_WINNER], prices(SOL="120", BNB="200", ETH="3500"), RULES, SETTINGS, NOW)
    assert decision.plan is not None and decision.plan.loser.group_id == "bnb"
    # Equal percentages: the larger USD loss (2 × the size) wins; equal in both: the older one.
    small = group("a", "SOL/USDT", "1", "150")
    large = group("b", "SOL/USDT", "2", "300")
    decision = plan_offset([small, large, ETH_WINNER], prices(SOL="120", ETH="3500"), RULES, SETTINGS, NOW)
    assert decision.plan is not None and decision.plan.loser.group_id == "b"
    older = group("old", "SOL/USDT", "1", "150", created_at=NOW - timedelta(days=2))
    decision = plan_offset([small, older, ETH_WINNER], prices(SOL="120", ETH="3500"), RULES, SETTINGS, NOW)
    assert decision.plan is not None and decision.plan.loser.group_id == "old"


def test_blocked_and_skipped_winners_are_passed_over_and_at_most_max_winners_used() -> None:
    loser = group("sol", "SOL/USDT", "10", "1500")
    ps = prices(SOL="100", **WINNER_PRICES)
    blocked = plan_offset([loser, replace(ETH_WINNER, blocked=True), BTC_WINNER], ps, RULES, SETTINGS, NOW)
    assert blocked.plan is not None and [w.group_id for w in blocked.plan.winners] == ["btc"]
    skipped = plan_offset([loser, replace(ETH_WINNER, skip_once=True), BTC_WINNER], ps, RULES, SETTINGS, NOW)
    assert skipped.plan is not None and [w.group_id for w in skipped.plan.winners] == ["btc"]
    assert skipped.skip_once_consumed == ("eth",)
    one = plan_offset([loser, ETH_WINNER, BTC_WINNER], ps, RULES, replace(SETTINGS, max_winners_to_combine=1), NOW)
    assert one.plan is not None and [w.group_id for w in one.plan.winners] == ["eth"] and not one.offset


# ----------------------------------------------------------------------------------------- eligibility
LOSER = group("sol", "SOL/USDT", "2", "300")  # −20.08 % at 120


def _why(view: GroupView, settings: RiskSettings = SETTINGS, loss: str | None = "-20.08") -> tuple[str, ...]:
    return eligibility(view, settings, loss=None if loss is None else D(loss), now=NOW).why_not


def test_eligible_loser_has_no_reason_against_it() -> None:
    assert _why(LOSER) == ()


def test_timer_part() -> None:
    waiting = replace(SETTINGS, post_full_wait_minutes=60)
    started = replace(LOSER, timer_started_at=NOW - timedelta(minutes=45))
    assert _why(started, waiting) == ("timer: 900 s of post_full_wait_minutes 60 left",)
    assert eligibility(started, waiting, loss=D("-20"), now=NOW).timer_remaining_seconds == 900
    assert _why(replace(LOSER, timer_started_at=NOW - timedelta(minutes=60)), waiting) == ()
    # Never started: it starts now, so the whole wait remains.
    assert _why(replace(LOSER, timer_started_at=None), waiting) == ("timer: 3600 s of post_full_wait_minutes 60 left",)


def test_threshold_part() -> None:
    assert _why(LOSER, loss="-4.99") == ("loss -4.99% is above the threshold -5%",)
    assert _why(LOSER, loss="-5") == ()  # loss_percent ≤ threshold
    assert _why(LOSER, loss=None) == ("no position or no price",)


def test_age_part() -> None:
    aged = replace(SETTINGS, age_threshold_minutes=600)
    assert _why(LOSER, aged) == ("age 300 min is under age_threshold_minutes 600",)
    assert _why(replace(LOSER, created_at=NOW - timedelta(minutes=600)), aged) == ()


def test_flag_and_status_parts() -> None:
    assert _why(replace(LOSER, blocked=True)) == ("blocked by an operator",)
    assert _why(replace(LOSER, skip_once=True)) == ("skipped once by an operator (this cycle)",)
    assert _why(replace(LOSER, status="closing")) == ("group is closing",)
    assert _why(LOSER, replace(SETTINGS, enabled=False)) == ("risk engine is off (risk_enabled)",)


def test_eligibility_bases() -> None:
    few = replace(LOSER, pyramids=2, max_pyramids=3)
    assert _why(few) == ("pyramids 2 of 3 (all_filled)",)
    unsent = replace(LOSER, legs_unsent=2, legs_unfilled=2)
    unfilled = replace(LOSER, legs_unfilled=1)
    assert _why(unsent) == ("2 leg(s) not sent yet (all_filled)",)
    assert _why(unfilled) == ("1 leg(s) not filled yet (all_filled)",)
    submitted = replace(SETTINGS, eligibility="all_submitted")
    assert _why(unsent, submitted) == ("2 leg(s) not sent yet (all_submitted)",)
    assert _why(unfilled, submitted) == ()
    pyramids = replace(SETTINGS, eligibility="all_pyramids")
    assert _why(unsent, pyramids) == ()
    assert _why(few, pyramids) == ("pyramids 2 of 3 (all_pyramids)",)


def test_timer_starts_when_the_basis_is_met_and_a_pyramid_restarts_it() -> None:
    fresh = replace(LOSER, timer_started_at=None, timer_pyramids=0, legs_unfilled=1)
    assert timer_update(fresh, SETTINGS, NOW) == (None, 0)
    assert timer_update(replace(fresh, legs_unfilled=0), SETTINGS, NOW) == (NOW, 1)
    started = NOW - timedelta(hours=1)
    # A second pyramid (max 2 now) whose legs are still open: the timer waits for them.
    grown = replace(LOSER, pyramids=2, max_pyramids=2, timer_started_at=started, timer_pyramids=1, legs_unfilled=3)
    assert timer_update(grown, SETTINGS, NOW) == (None, 2)
    assert timer_update(replace(grown, legs_unfilled=0), SETTINGS, NOW) == (NOW, 2)
    # Without the reset the old start stands.
    assert timer_update(grown, replace(SETTINGS, timer_reset_on_pyramid=False), NOW) == (started, 1)


def test_a_winners_take_profits_cut_highest_first_and_restored_lowest_first():
    tps = [
        RestingTakeProfit("a", D("101"), D("0.3")),
        RestingTakeProfit("b", D("103"), D("0.2")),
        RestingTakeProfit("c", D("102"), D("0.5")),
    ]
    # 1.0 resting; the winner will hold 0.6: cut b (103, 0.2 → 0.8 left), then c (102, 0.5 → 0.3 ≤ 0.6).
    assert take_profits_to_cut(tps, keep=D("0.6")) == ("b", "c")
    assert take_profits_to_cut(tps, keep=D("1.0")) == ()
    # After the sale 0.6 is held and a (0.3) still rests: room 0.3, given lowest price first: c gets 0.3,
    # b nothing. A part under the exchange's minimum notional (5) is dropped: 0.04 × 103 = 4.12.
    rules = _rules("SOL/USDT", "0.001")
    cut = [tp for tp in tps if tp.order_id in ("b", "c")]
    assert take_profits_to_restore(cut, room=D("0.3"), rules=rules) == (("c", D("0.300")),)
    assert take_profits_to_restore(cut, room=D("0.54"), rules=rules) == (("c", D("0.500")),)
