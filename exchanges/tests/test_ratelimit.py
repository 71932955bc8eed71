"""The shared weight budget against the real Redis, with a controllable clock."""

from __future__ import annotations

import pytest

from exchanges.exceptions import RateLimitedError
from exchanges.ratelimit import BINANCE_LIMITS, ExchangeLimits, WeightBudget, limits_for


class Clock:
    def __init__(self, now: float = 60 * 16_667 + 20.0) -> None:  # 20 s into a minute
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def budget(
    clock: Clock, *, limits: ExchangeLimits = BINANCE_LIMITS, max_wait_s: float = 0.0, host: str = "h"
) -> WeightBudget:
    return WeightBudget(
        exchange_name="binance",
        host=host,
        account="acct",
        limits=limits,
        headroom=1.0,
        max_wait_s=max_wait_s,
        clock=clock,
        sleep=clock.sleep,
    )


def test_weights_follow_binance_tables() -> None:
    assert limits_for("binance").weight_of("fetch_order") == 4
    assert limits_for("simulator").weight_of("open_orders_all") == 80
    assert limits_for("binance").weight_of("open_orders_symbol", count=3) == 18
    assert limits_for("kraken").weight_of("anything") == 1


def test_reserve_books_weight_shared_by_every_instance() -> None:
    clock = Clock()
    one, two = budget(clock), budget(clock)
    assert one.reserve("balance") == 20
    assert two.reserve("fetch_order") == 4
    assert one.used() == two.used() == 24


def test_exhausted_weight_raises_with_seconds_to_the_next_minute() -> None:
    clock = Clock()
    small = ExchangeLimits(weight_per_minute=30, weights={"balance": 20})
    first = budget(clock, limits=small)
    first.reserve("balance")
    with pytest.raises(RateLimitedError) as info:
        first.reserve("balance")
    assert info.value.retry_after == pytest.approx(40.0)
    assert first.used() == 20  # a refused reservation books nothing


def test_waits_for_the_window_when_it_rolls_over_soon() -> None:
    clock = Clock(now=60 * 16_667 + 59.5)  # 0.5 s before the minute ends
    small = ExchangeLimits(weight_per_minute=30, weights={"balance": 20})
    waiting = budget(clock, limits=small, max_wait_s=2.0)
    waiting.reserve("balance")
    waiting.reserve("balance")
    assert clock.slept == [pytest.approx(0.5)]


def test_order_count_limits_per_ten_seconds() -> None:
    clock = Clock()
    orders = ExchangeLimits(weight_per_minute=10_000, orders_per_10s=3, orders_per_day=100)
    placing = budget(clock, limits=orders)
    for _ in range(3):
        placing.reserve("create_order", orders=1)
    with pytest.raises(RateLimitedError, match="per 10 s"):
        placing.reserve("create_order", orders=1)
    placing.reserve("fetch_order")  # reads are not orders
    clock.now += 10
    placing.reserve("create_order", orders=1)
    assert placing.orders_in_window() == (1, 4)


def test_daily_order_limit() -> None:
    clock = Clock()
    placing = budget(clock, limits=ExchangeLimits(weight_per_minute=10_000, orders_per_10s=100, orders_per_day=2))
    placing.reserve("create_order", orders=1)
    placing.reserve("create_order", orders=1)
    with pytest.raises(RateLimitedError, match="per day"):
        placing.reserve("create_order", orders=1)


def test_used_weight_header_corrects_the_counter_upwards_only() -> None:
    clock = Clock()
    watched = budget(clock)
    watched.reserve("balance")
    watched.observe_headers({"x-mbx-used-weight-1m": "700", "Content-Type": "application/json"})
    assert watched.used() == 700
    watched.observe_headers({"X-MBX-USED-WEIGHT-1M": "10"})
    assert watched.used() == 700
    watched.observe_headers({"X-MBX-USED-WEIGHT-1M": "garbage"})
    assert watched.used() == 700


def test_a_429_blocks_every_process_until_retry_after() -> None:
    clock = Clock()
    first, other = budget(clock), budget(clock)
    first.block(3.0)
    with pytest.raises(RateLimitedError) as info:
        other.reserve("ticker")
    assert info.value.retry_after == pytest.approx(3.0)
    clock.now += 3.5
    assert other.reserve("ticker") == 2


def test_hosts_are_counted_apart() -> None:
    clock = Clock()
    budget(clock, host="api.binance.com").reserve("balance")
    assert budget(clock, host="testnet.binance.vision").used() == 0
