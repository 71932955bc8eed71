"""A circuit breaker per exchange config, shared by every process through Redis.

closed ──5 consecutive failures──▶ open ──60 s──▶ half-open ──2 successes──▶ closed
                                     ▲                 │
                                     └──── a failure ──┘

While open, calls are rejected at once with ``CircuitOpenError`` (no network call, no weight spent).
Only temporary failures count (network trouble, timeouts, 5xx, unknown order outcomes); an exchange
that answers "no" is healthy. Transitions are atomic Lua scripts, so concurrent workers agree.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum

import redis

from .exceptions import CircuitOpenError
from .kv import kv_key, redis_client

FAILURE_THRESHOLD = 5
RESET_TIMEOUT_S = 60.0
SUCCESS_THRESHOLD = 2
STATE_TTL_S = 86_400


class CircuitState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


# KEYS: hash; ARGV: now, reset timeout -> {allowed 0/1, state, seconds until half-open, 1 if any record}
_BEFORE = """
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if state ~= 'open' then return {1, state, '0', redis.call('EXISTS', KEYS[1])} end
local opened = tonumber(redis.call('HGET', KEYS[1], 'opened_at') or '0')
local now = tonumber(ARGV[1])
local wait = opened + tonumber(ARGV[2]) - now
if wait > 0 then return {0, state, tostring(wait), 1} end
redis.call('HSET', KEYS[1], 'state', 'half_open', 'successes', 0)
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return {1, 'half_open', '0', 1}
"""

# KEYS: hash; ARGV: success threshold, ttl -> new state
_SUCCESS = """
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if state == 'half_open' then
  local successes = redis.call('HINCRBY', KEYS[1], 'successes', 1)
  if successes >= tonumber(ARGV[1]) then
    redis.call('DEL', KEYS[1])
    return 'closed'
  end
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
  return 'half_open'
end
if state == 'closed' then
  if redis.call('HGET', KEYS[1], 'failures') then redis.call('DEL', KEYS[1]) end
end
return state
"""

# KEYS: hash; ARGV: now, failure threshold, ttl -> new state
_FAILURE = """
local state = redis.call('HGET', KEYS[1], 'state') or 'closed'
if state == 'half_open' then
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', ARGV[1], 'successes', 0)
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
  return 'open'
end
if state == 'open' then return 'open' end
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
if failures >= tonumber(ARGV[2]) then
  redis.call('HSET', KEYS[1], 'state', 'open', 'opened_at', ARGV[1], 'failures', 0)
  redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
  return 'open'
end
redis.call('HSET', KEYS[1], 'state', 'closed')
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return 'closed'
"""


class CircuitBreaker:
    """The breaker of one key (``config:<uuid>`` or ``public:<exchange>``)."""

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = FAILURE_THRESHOLD,
        reset_timeout_s: float = RESET_TIMEOUT_S,
        success_threshold: int = SUCCESS_THRESHOLD,
        client: redis.Redis | None = None,
        clock: Callable[[], float] = time.time,
        label: str = "",
    ) -> None:
        self.name = name
        self.label = label or name
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = reset_timeout_s
        self.success_threshold = success_threshold
        self._client = client
        self._clock = clock
        self._clean = False  # set by before_call: nothing stored for this breaker

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            self._client = redis_client()
        return self._client

    @property
    def key(self) -> str:
        return kv_key("cb", self.name)

    def before_call(self) -> None:
        """Raise ``CircuitOpenError`` while open; turn open into half-open once the timeout passed."""
        allowed, state, wait, recorded = self.client.eval(
            _BEFORE, 1, self.key, repr(self._clock()), repr(self.reset_timeout_s), STATE_TTL_S
        )
        # A clean breaker (no failures, not half-open) needs no write after a success: saves a round trip.
        self._clean = not int(recorded)
        if not int(allowed):
            retry_after = float(wait)
            raise CircuitOpenError(
                f"{self.label}: circuit open after {self.failure_threshold} consecutive failures; "
                f"calls resume in {retry_after:.0f} s",
                retry_after=retry_after,
            )

    def record_success(self) -> CircuitState:
        """A call got an answer from the exchange."""
        if self._clean:
            return CircuitState.CLOSED
        return CircuitState(self.client.eval(_SUCCESS, 1, self.key, self.success_threshold, STATE_TTL_S))

    def record_failure(self) -> CircuitState:
        """A call failed for a temporary reason (network, timeout, 5xx, unknown outcome)."""
        self._clean = False
        return CircuitState(
            self.client.eval(_FAILURE, 1, self.key, repr(self._clock()), self.failure_threshold, STATE_TTL_S)
        )

    def state(self) -> CircuitState:
        """The stored state (an open breaker whose timeout passed still reads ``open`` until the next call)."""
        # the client decodes responses (kv._client_for): a str, which redis-py's types cannot know
        return CircuitState(self.client.hget(self.key, "state") or CircuitState.CLOSED)  # type: ignore[arg-type]

    def reset(self) -> None:
        """Close the breaker (operator action)."""
        self.client.delete(self.key)
        self._clean = False
