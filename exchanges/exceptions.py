"""Our exchange error tree. The adapter translates every exchange library error into one of these.

    ExchangeError
    ├── TemporaryExchangeError        network trouble, timeouts and 5xx on reads: retry later
    │   └── RateLimitedError          429/418 or our own weight budget; ``retry_after`` seconds
    ├── PermanentExchangeError        the exchange answered "no": retrying the same call will not help
    │   ├── InvalidOrderError         filters, precision, bad parameters (``field``, ``reason``)
    │   │   └── DuplicateClientOrderIdError
    │   ├── InsufficientFundsError
    │   ├── AuthenticationFailedError
    │   ├── OrderNotFoundError
    │   ├── SymbolNotFoundError
    │   └── MarketRulesMissingError
    ├── UnknownOutcomeError           timeout or 5xx while *placing* an order: it may or may not exist
    └── CircuitOpenError              too many recent failures for this config: rejected without a call

Every message is meant for humans and logs: it never contains a key, a secret or a signed URL.
"""

from __future__ import annotations


class ExchangeError(Exception):
    """Base of every error raised by an exchange adapter."""

    def __init__(self, message: str, *, exchange: str = "", operation: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.exchange = exchange
        self.operation = operation

    def __str__(self) -> str:
        return self.message


class TemporaryExchangeError(ExchangeError):
    """Network trouble, a timeout or a 5xx answer on a read: the same call may succeed later."""


class RateLimitedError(TemporaryExchangeError):
    """The exchange (429/418) or our shared weight budget says: wait ``retry_after`` seconds."""

    def __init__(self, message: str, *, retry_after: float, exchange: str = "", operation: str = "") -> None:
        super().__init__(message, exchange=exchange, operation=operation)
        self.retry_after = float(retry_after)


class PermanentExchangeError(ExchangeError):
    """The exchange understood the call and refused it; repeating it unchanged will not help."""


class InvalidOrderError(PermanentExchangeError):
    """The order breaks a market rule or a parameter is wrong; ``field`` names the culprit when known."""

    def __init__(
        self, message: str, *, field: str = "", reason: str = "", exchange: str = "", operation: str = ""
    ) -> None:
        super().__init__(message, exchange=exchange, operation=operation)
        self.field = field
        self.reason = reason or message


class DuplicateClientOrderIdError(InvalidOrderError):
    """An open order with this client order id already exists on the exchange."""


class InsufficientFundsError(PermanentExchangeError):
    """The account's free balance does not cover the order."""


class AuthenticationFailedError(PermanentExchangeError):
    """The exchange rejected the API key pair (wrong key, wrong secret, missing permission or IP)."""


class OrderNotFoundError(PermanentExchangeError):
    """The exchange has no such order (or no longer an open one, for a cancel)."""


class SymbolNotFoundError(PermanentExchangeError):
    """The exchange lists no market with this symbol."""


class MarketRulesMissingError(PermanentExchangeError):
    """No market rules (tick, step, minimums) are known for the symbol and no fallback is configured."""


class UnknownOutcomeError(ExchangeError):
    """Placing an order timed out or hit a 5xx: the order may or may not exist.

    Resolve it by looking the order up by ``client_order_id`` (``place_order_safely`` does), never by
    blindly sending it again.
    """

    def __init__(self, message: str, *, client_order_id: str = "", exchange: str = "", operation: str = "") -> None:
        super().__init__(message, exchange=exchange, operation=operation)
        self.client_order_id = client_order_id


class CircuitOpenError(ExchangeError):
    """The circuit breaker of this config is open after repeated failures; retry after ``retry_after``."""

    def __init__(self, message: str, *, retry_after: float, exchange: str = "", operation: str = "") -> None:
        super().__init__(message, exchange=exchange, operation=operation)
        self.retry_after = float(retry_after)
