"""A request-weight budget per exchange host, shared by every process through Redis.

ccxt's own throttle only spaces the calls of one process; the exchange counts the weight of every
process behind our IP (Binance: 6,000 per minute) and the orders of every process on one account
(Binance: 50 per 10 s, 160,000 per day). ``WeightBudget.reserve`` books an operation's weight (and, for
new orders, the order counts) in fixed windows before the call is made, atomically in Lua. When a
window is full it waits for the window to roll over if that is soon (``max_wait_s``), otherwise it
raises ``RateLimitedError`` with the seconds to wait. ``observe_used_weight`` corrects the counter
from the exchange's own figure (``X-MBX-USED-WEIGHT-1M``), and ``block`` honours a 429/418's
Retry-After for every process at once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import redis

from .exceptions import RateLimitedError
from .kv import kv_key, redis_client

WEIGHT_WINDOW_S = 60
ORDER_WINDOW_S = 10
DAY_S = 86_400


@dataclass(frozen=True)
class ExchangeLimits:
    """Published limits of one exchange and the weight of each adapter operation."""

    weight_per_minute: int
    orders_per_10s: int | None = None
    orders_per_day: int | None = None
    weights: Mapping[str, int] = field(default_factory=dict)
    default_weight: int = 1
    used_weight_header: str | None = None

    def weight_of(self, operation: str, count: int = 1) -> int:
        """Weight of ``count`` calls of ``operation`` (unknown operations cost ``default_weight``)."""
        return self.weights.get(operation, self.default_weight) * max(1, count)


# Binance spot REST weights (https://developers.binance.com/docs/binance-spot-api-docs/rest-api).
BINANCE_LIMITS = ExchangeLimits(
    weight_per_minute=6000,
    orders_per_10s=50,
    orders_per_day=160_000,
    weights=MappingProxyType(
        {
            "ticker": 2,
            "tickers": 40,  # ticker/24hr for up to 100 symbols
            "create_order": 1,
            "cancel_order": 1,
            "fetch_order": 4,
            "open_orders_symbol": 6,
            "open_orders_all": 80,
            "my_trades": 20,
            "balance": 20,
            "markets": 20,
            "ohlcv": 2,
        }
    ),
    used_weight_header="X-MBX-USED-WEIGHT-1M",
)
# Exchanges we have no table for: one unit per call against a conservative per-minute budget.
GENERIC_LIMITS = ExchangeLimits(weight_per_minute=1200)

EXCHANGE_LIMITS: Mapping[str, ExchangeLimits] = MappingProxyType(
    {"binance": BINANCE_LIMITS, "binanceus": BINANCE_LIMITS, "simulator": BINANCE_LIMITS}
)


def limits_for(exchange_name: str) -> ExchangeLimits:
    """The limits table of an exchange (``GENERIC_LIMITS`` when we have none)."""
    return EXCHANGE_LIMITS.get(exchange_name, GENERIC_LIMITS)


# KEYS: weight window, 10 s order window, day order window, block key
# ARGV: weight, weight limit, orders, 10 s limit (0 = none), day limit (0 = none), now (seconds, float)
# -> {0, used weight} when booked; {1 weight | 2 orders/10s | 3 orders/day | 4 blocked, current value}
_RESERVE = """
local now = tonumber(ARGV[6])
local blocked_until = tonumber(redis.call('GET', KEYS[4]) or '0')
if blocked_until > now then return {4, tostring(blocked_until)} end
local weight = tonumber(ARGV[1])
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used + weight > tonumber(ARGV[2]) then return {1, used} end
local orders = tonumber(ARGV[3])
if orders > 0 then
  local limit10 = tonumber(ARGV[4])
  local limitday = tonumber(ARGV[5])
  local o10 = tonumber(redis.call('GET', KEYS[2]) or '0')
  if limit10 > 0 and o10 + orders > limit10 then return {2, o10} end
  local oday = tonumber(redis.call('GET', KEYS[3]) or '0')
  if limitday > 0 and oday + orders > limitday then return {3, oday} end
  redis.call('INCRBY', KEYS[2], orders)
  redis.call('EXPIRE', KEYS[2], 30)
  redis.call('INCRBY', KEYS[3], orders)
  redis.call('EXPIRE', KEYS[3], 90000)
end
used = redis.call('INCRBY', KEYS[1], weight)
redis.call('EXPIRE', KEYS[1], 120)
return {0, used}
"""

# KEYS: weight window; ARGV: weight reported by the exchange
_OBSERVE = """
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local seen = tonumber(ARGV[1])
if seen > used then
  redis.call('SET', KEYS[1], seen, 'EX', 120)
  return seen
end
return used
"""

# KEYS: block key; ARGV: until (seconds, float), ttl (int seconds)
_BLOCK = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > current then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2]))
end
return 1
"""


class WeightBudget:
    """Fixed-window request-weight and order-count budget of one exchange host (and account).

    ``headroom`` keeps a share of the published limit free for calls we do not see (ccxt's own
    implicit requests, other tools on the same IP).
    """

    def __init__(
        self,
        *,
        exchange_name: str,
        host: str,
        account: str = "public",
        limits: ExchangeLimits | None = None,
        headroom: float = 0.9,
        max_wait_s: float = 5.0,
        client: redis.Redis | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.exchange_name = exchange_name
        self.host = host
        self.account = account
        self.limits = limits or limits_for(exchange_name)
        self.weight_limit = max(1, int(self.limits.weight_per_minute * headroom))
        self.orders_per_10s = self.limits.orders_per_10s or 0
        self.orders_per_day = self.limits.orders_per_day or 0
        self.max_wait_s = max_wait_s
        self._client = client
        self._clock = clock
        self._sleep = sleep
        self._known: tuple[int, int] = (-1, 0)  # (minute, our counter) after our last booking

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            self._client = redis_client()
        return self._client

    def _keys(self, now: float) -> list[str]:
        minute = int(now // WEIGHT_WINDOW_S)
        ten = int(now // ORDER_WINDOW_S)
        day = int(now // DAY_S)
        return [
            kv_key("rl", "w", self.host, minute),
            kv_key("rl", "o10", self.host, self.account, ten),
            kv_key("rl", "oday", self.host, self.account, day),
            kv_key("rl", "block", self.host),
        ]

    def reserve(self, operation: str, *, count: int = 1, orders: int = 0) -> int:
        """Book the weight of ``operation`` (and ``orders`` new orders); returns the weight booked.

        Waits for the window to roll over when that is at most ``max_wait_s`` away, else raises
        ``RateLimitedError``.
        """
        weight = self.limits.weight_of(operation, count)
        deadline = self._clock() + self.max_wait_s
        while True:
            now = self._clock()
            status, value = self.client.eval(
                _RESERVE,
                4,
                *self._keys(now),
                weight,
                self.weight_limit,
                orders,
                self.orders_per_10s,
                self.orders_per_day,
                repr(now),
            )
            status = int(status)
            if status == 0:
                self._known = (int(now // WEIGHT_WINDOW_S), int(value))
                return weight
            retry_after, what = self._wait_for(status, value, now)
            if now + retry_after <= deadline:
                self._sleep(max(retry_after, 0.01))
                continue
            raise RateLimitedError(
                f"{self.exchange_name} ({self.host}): {what}; retry in {retry_after:.1f} s",
                retry_after=retry_after,
                exchange=self.exchange_name,
                operation=operation,
            )

    def _wait_for(self, status: int, value: object, now: float) -> tuple[float, str]:
        if status == 4:
            return max(0.0, float(str(value)) - now), "the exchange asked us to back off (429/418)"
        if status == 1:
            window_end = (math.floor(now / WEIGHT_WINDOW_S) + 1) * WEIGHT_WINDOW_S
            return window_end - now, f"request weight budget of {self.weight_limit}/min used up ({value} used)"
        if status == 2:
            window_end = (math.floor(now / ORDER_WINDOW_S) + 1) * ORDER_WINDOW_S
            return window_end - now, f"order budget of {self.orders_per_10s} per 10 s used up"
        window_end = (math.floor(now / DAY_S) + 1) * DAY_S
        return window_end - now, f"order budget of {self.orders_per_day} per day used up"

    def observe_used_weight(self, used: int) -> int:
        """Raise our counter to what the exchange reports for the current minute; returns the counter."""
        now = self._clock()
        window, known = self._known
        if window == int(now // WEIGHT_WINDOW_S) and used <= known:
            return known  # we already counted at least this much: no round trip needed
        counter = int(self.client.eval(_OBSERVE, 1, self._keys(now)[0], int(used)))
        self._known = (int(now // WEIGHT_WINDOW_S), counter)
        return counter

    def observe_headers(self, headers: Mapping[str, str] | None) -> None:
        """Apply the exchange's used-weight header from a response, when it sends one."""
        name = self.limits.used_weight_header
        if not headers or not name:
            return
        wanted = name.lower()
        for key, value in headers.items():
            if key.lower() == wanted:
                try:
                    self.observe_used_weight(int(str(value).split(",")[0].strip()))
                except ValueError:
                    pass
                return

    def block(self, retry_after: float) -> None:
        """Stop every process from calling this host for ``retry_after`` seconds (after a 429/418)."""
        until = self._clock() + max(0.0, retry_after)
        self.client.eval(_BLOCK, 1, self._keys(self._clock())[3], repr(until), max(1, math.ceil(retry_after) + 1))

    def used(self) -> int:
        """Weight booked in the current minute."""
        return int(self.client.get(self._keys(self._clock())[0]) or 0)

    def orders_in_window(self) -> tuple[int, int]:
        """Orders booked in the current 10-second window and day."""
        keys = self._keys(self._clock())
        return int(self.client.get(keys[1]) or 0), int(self.client.get(keys[2]) or 0)
