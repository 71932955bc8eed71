from django.db import models


class GroupStatus(models.TextChoices):
    WAITING = "waiting", "Waiting"
    LIVE = "live", "Live"
    PARTIALLY_FILLED = "partially_filled", "Partially filled"
    ACTIVE = "active", "Active"
    CLOSING = "closing", "Closing"
    CLOSED = "closed", "Closed"
    FAILED = "failed", "Failed"


OPEN_GROUP_STATUSES = (
    GroupStatus.WAITING,
    GroupStatus.LIVE,
    GroupStatus.PARTIALLY_FILLED,
    GroupStatus.ACTIVE,
    GroupStatus.CLOSING,
)
FINAL_GROUP_STATUSES = (GroupStatus.CLOSED, GroupStatus.FAILED)


class Side(models.TextChoices):
    LONG = "long", "Long"
    SHORT = "short", "Short"


class OrderSide(models.TextChoices):
    BUY = "buy", "Buy"
    SELL = "sell", "Sell"


class OrderType(models.TextChoices):
    LIMIT = "limit", "Limit"
    MARKET = "market", "Market"


class OrderStatus(models.TextChoices):
    PENDING = "pending", "Pending (intent committed, not confirmed sent)"
    UNKNOWN = "unknown", "Unknown outcome (being resolved)"
    OPEN = "open", "Open"
    PARTIALLY_FILLED = "partially_filled", "Partially filled"
    FILLED = "filled", "Filled"
    CANCELED = "canceled", "Canceled"
    REJECTED = "rejected", "Rejected"
    FAILED = "failed", "Failed"


RESTING_ORDER_STATUSES = (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED)
UNSETTLED_ORDER_STATUSES = (OrderStatus.PENDING, OrderStatus.UNKNOWN, *RESTING_ORDER_STATUSES)
FINAL_ORDER_STATUSES = (OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.FAILED)


class ExitPurpose(models.TextChoices):
    TAKE_PROFIT_LEG = "tp_leg", "Per-leg take-profit"
    TAKE_PROFIT_AGGREGATE = "tp_aggregate", "Aggregate take-profit"
    TAKE_PROFIT_PYRAMID = "tp_pyramid", "Pyramid take-profit"
    EXIT_SIGNAL = "exit_signal", "Exit signal"
    MANUAL = "manual", "Manual close"
    STOP_LOSS = "stop_loss", "Stop loss"
    TRAILING_STOP = "trailing_stop", "Trailing stop"
    RISK = "risk", "Risk engine close"


class SignalClassification(models.TextChoices):
    NEW_ENTRY = "new_entry", "New entry"
    PYRAMID = "pyramid", "Pyramid"
    QUEUED = "queued", "Queued"
    EXIT = "exit", "Exit"
    NONE = "", "None"


class SignalStatus(models.TextChoices):
    ACCEPTED = "accepted", "Accepted"
    DUPLICATE = "duplicate", "Duplicate"
    IGNORED = "ignored", "Ignored"
    REJECTED = "rejected", "Rejected"


class SignalSource(models.TextChoices):
    TRADINGVIEW = "tradingview", "TradingView"
    STRATEGY = "strategy", "Strategy"
    API = "api", "API"
    OTHER = "other", "Other"


class ProcessingStatus(models.TextChoices):
    NONE = "", "Nothing to process"
    PENDING = "pending", "Pending"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class TpMode(models.TextChoices):
    PER_LEG = "per_leg", "Per leg"
    AGGREGATE = "aggregate", "Aggregate"
    HYBRID = "hybrid", "Hybrid"
    PYRAMID_AGGREGATE = "pyramid_aggregate", "Pyramid aggregate"
