"""Display data for looking at the pages and for the `page_server` bench (docs/web.md#looking).

`populate` writes groups as the engine leaves them (pyramids, a grid of legs with some filled, fills,
take-profit orders, events, signals, queued signals) straight into the tables, in bulk: it is sample data,
not trading, so it bypasses the services on purpose and never talks to an exchange. Never used by the
engine itself.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from exchanges.client_ids import client_order_id_for
from positions.models import DCAOrder, ExitOrder, Fill, GroupEvent, PositionGroup, Pyramid, QueuedSignal, WebhookSignal

BASES = [("BTC", "65000"), ("ETH", "3400"), ("SOL", "150"), ("BNB", "580"), ("XRP", "0.52"), ("ADA", "0.45")]
BASES += [(f"ALT{n}", f"{1 + n % 7}.25") for n in range(120)]  # for many groups (one open per pair and timeframe)
TIMEFRAMES = ["1h", "4h", "15m", "5m", "1d", "30m", "2h", "12h"]  # one open group per pair and timeframe
Q8 = Decimal("0.00000001")


def _identity(index: int) -> tuple[str, str, str]:
    """Base, price and timeframe of the index-th group: the six majors on every timeframe first, then alts."""
    if index < 6 * len(TIMEFRAMES):
        base, price = BASES[index % 6]
        return base, price, TIMEFRAMES[index // 6]
    rest = index - 6 * len(TIMEFRAMES)
    base, price = BASES[6 + rest % (len(BASES) - 6)]
    return base, price, TIMEFRAMES[(rest // (len(BASES) - 6)) % len(TIMEFRAMES)]


@transaction.atomic
def populate(
    *,
    user: Any,
    exchange_config: Any,
    groups: int = 12,
    legs: int = 5,
    closed_share: float = 0.3,
    now: datetime | None = None,
) -> dict[str, int]:
    """`groups` groups of `legs` legs each (a leg with a fill gets a take-profit order); about `closed_share`
    of them closed with a realized PnL. Returns the counts written."""
    now = now or timezone.now()
    made: dict[str, list[Any]] = {k: [] for k in ("groups", "pyramids", "legs", "exits", "fills", "events", "signals")}
    for index in range(groups):
        base, price_text, timeframe = _identity(index)
        price = Decimal(price_text)
        closed = index < int(groups * closed_share)
        opened = now - timedelta(hours=6 * (groups - index))
        signal = WebhookSignal(
            user=user,
            exchange_config=exchange_config,
            received_at=opened,
            source="tradingview",
            body={"action": "buy", "symbol": f"{base}USDT", "secret": "[redacted]"},
            action="buy",
            intent_type="entry",
            symbol=f"{base}/USDT",
            timeframe="60",
            side="long",
            entry_price=price,
            classification="new_group",
            status="accepted",
            http_status=202,
            trade_id=f"demo-{index}",
            processing_status="done",
        )
        group = PositionGroup(
            id=uuid.uuid4(),
            user=user,
            exchange_config=exchange_config,
            symbol=f"{base}/USDT",
            exchange_symbol=f"{base}USDT",
            timeframe=timeframe,
            status="closed" if closed else "active",
            tp_mode="per_leg",
            max_pyramids=3,
            pyramid_count=1,
            created_at=opened,
            live_at=opened,
            filled_at=opened,
            closed_at=opened + timedelta(hours=3) if closed else None,
            close_reason="tp_leg" if closed else "",
        )
        pyramid = Pyramid(
            group=group,
            index=0,
            signal=signal,
            entry_price=price,
            capital_usd=Decimal("500"),
            levels=[],
            created_at=opened,
            submitted_at=opened,
        )
        held = Decimal("0")
        cost = Decimal("0")
        filled_legs = 1 + index % max(1, legs - 1)
        for level in range(legs):
            leg_price = (price * (1 - Decimal("0.01") * level)).quantize(Q8)
            quantity = (Decimal("100") / leg_price).quantize(Decimal("0.0001"))
            filled = level < filled_legs
            order_id = uuid.uuid4()
            leg = DCAOrder(
                id=order_id,
                group=group,
                exchange_config=exchange_config,
                pyramid=pyramid,
                pyramid_level=0,
                dca_level=level,
                symbol=group.symbol,
                side="buy",
                order_type="limit",
                price=leg_price,
                expected_price=leg_price,
                quantity=quantity,
                filled_quantity=quantity if filled else 0,
                filled_price=leg_price if filled else None,
                status="filled" if filled else ("canceled" if closed else "open"),
                tp_percent=Decimal("1"),
                tp_price=(leg_price * Decimal("1.01")).quantize(Q8),
                client_order_id=client_order_id_for(order_id),
                submit_attempts=1,
                created_at=opened,
                filled_at=opened + timedelta(minutes=10 * level) if filled else None,
            )
            made["legs"].append(leg)
            if not filled:
                continue
            filled_at = opened + timedelta(minutes=10 * level)
            held += quantity
            cost += quantity * leg_price
            made["fills"].append(
                Fill(
                    group=group,
                    dca_order=leg,
                    trade_id=f"d{index}-{level}",
                    side="buy",
                    price=leg_price,
                    quantity=quantity,
                    executed_at=filled_at,
                )
            )
            exit_id = uuid.uuid4()
            tp = ExitOrder(
                id=exit_id,
                group=group,
                exchange_config=exchange_config,
                purpose="tp_leg",
                leg=leg,
                pyramid=pyramid,
                symbol=group.symbol,
                side="sell",
                order_type="limit",
                price=leg.tp_price,
                quantity=quantity,
                status="filled" if closed else "open",
                filled_quantity=quantity if closed else 0,
                client_order_id=client_order_id_for(exit_id),
                submit_attempts=1,
                created_at=filled_at,
            )
            made["exits"].append(tp)
            if closed:
                made["fills"].append(
                    Fill(
                        group=group,
                        exit_order=tp,
                        trade_id=f"x{index}-{level}",
                        side="sell",
                        price=tp.price,
                        quantity=quantity,
                        executed_at=opened + timedelta(hours=3),
                    )
                )
        group.bought_quantity = held
        group.total_cost = cost.quantize(Q8)
        group.avg_entry_price = (cost / held).quantize(Q8) if held else None
        if closed:
            group.sold_quantity = held
            group.realized_pnl = (cost * Decimal("0.01") * (1 if index % 3 else -1)).quantize(Q8)
        else:
            group.filled_quantity = held
        signal.group = group
        made["signals"].append(signal)
        made["groups"].append(group)
        made["pyramids"].append(pyramid)
        made["events"].append(
            GroupEvent(group=group, at=opened, kind="opened", message=f"Opened {group.symbol} from a webhook")
        )
        made["events"].append(
            GroupEvent(group=group, at=opened + timedelta(minutes=5), kind="leg_filled", message="Entry leg filled")
        )
    PositionGroup.objects.bulk_create(made["groups"])
    WebhookSignal.objects.bulk_create(made["signals"])
    Pyramid.objects.bulk_create(made["pyramids"])
    DCAOrder.objects.bulk_create(made["legs"])
    ExitOrder.objects.bulk_create(made["exits"])
    Fill.objects.bulk_create(made["fills"])
    GroupEvent.objects.bulk_create(made["events"])
    queued = WebhookSignal.objects.create(
        user=user,
        exchange_config=exchange_config,
        action="buy",
        intent_type="entry",
        symbol="DOGE/USDT",
        timeframe="60",
        side="long",
        entry_price=Decimal("0.12"),
        classification="queued",
        status="queued",
        http_status=202,
        body={"symbol": "DOGEUSDT", "secret": "[redacted]"},
    )
    QueuedSignal.objects.get_or_create(
        user=user,
        exchange_config=exchange_config,
        symbol="DOGE/USDT",
        timeframe="1h",
        side="long",
        defaults={"signal": queued, "entry_price": Decimal("0.12")},
    )
    return {key: len(rows) for key, rows in made.items()}
