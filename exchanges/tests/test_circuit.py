"""The per-config circuit breaker against the real Redis, with a controllable clock."""

from __future__ import annotations

import pytest

from exchanges.circuit import CircuitBreaker, CircuitState
from exchanges.exceptions import CircuitOpenError


class Clock:
    def __init__(self) -> None:
        self.now = 5_000.0

    def __call__(self) -> float:
        return self.now


def breaker(clock: Clock, name: str = "config:test") -> CircuitBreaker:
    return CircuitBreaker(name, clock=clock)


def test_opens_after_five_consecutive_failures_and_rejects_fast() -> None:
    clock = Clock()
    cb = breaker(clock)
    for _ in range(4):
        cb.before_call()
        assert cb.record_failure() == CircuitState.CLOSED
    assert cb.record_failure() == CircuitState.OPEN
    clock.now += 10
    with pytest.raises(CircuitOpenError) as info:
        breaker(clock).before_call()  # another process sees the same state
    assert info.value.retry_after == pytest.approx(50)


def test_a_success_resets_the_failure_count() -> None:
    clock = Clock()
    cb = breaker(clock)
    for _ in range(4):
        cb.record_failure()
    cb.record_success()
    for _ in range(4):
        cb.record_failure()
    assert cb.state() == CircuitState.CLOSED


def test_half_open_after_sixty_seconds_then_closes_after_two_successes() -> None:
    clock = Clock()
    cb = breaker(clock)
    for _ in range(5):
        cb.record_failure()
    clock.now += 60
    cb.before_call()
    assert cb.state() == CircuitState.HALF_OPEN
    assert cb.record_success() == CircuitState.HALF_OPEN
    assert cb.record_success() == CircuitState.CLOSED
    cb.before_call()


def test_a_failure_while_half_open_opens_again() -> None:
    clock = Clock()
    cb = breaker(clock)
    for _ in range(5):
        cb.record_failure()
    clock.now += 61
    cb.before_call()
    assert cb.record_failure() == CircuitState.OPEN
    with pytest.raises(CircuitOpenError):
        cb.before_call()


def test_breakers_are_per_config_and_can_be_reset() -> None:
    clock = Clock()
    cb = breaker(clock, "config:a")
    for _ in range(5):
        cb.record_failure()
    breaker(clock, "config:b").before_call()
    cb.reset()
    cb.before_call()
