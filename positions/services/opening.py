"""The rows that open a group or add a pyramid, as statements of a `core.sql.Batch`: written by the
webhook intake and by queue promotion from the same plans (`positions.rules.intake`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from core import sql

from ..choices import GroupStatus
from ..events import Event, group_event
from ..models import GroupEvent, PositionGroup, Pyramid
from ..rules.intake import SIDE, OpenGroup, OpenNewGroup, PyramidPlan


def pyramid_insert(batch: sql.Batch, *, group_id: uuid.UUID, signal_id: uuid.UUID, plan: PyramidPlan) -> None:
    batch.insert(
        Pyramid,
        {
            "group_id": group_id,
            "index": plan.index,
            "signal_id": signal_id,
            "entry_price": plan.entry_price,
            "capital_usd": plan.capital_usd,
            "levels": [
                {
                    "gap_percent": str(level.gap_percent),
                    "weight_percent": str(level.weight_percent),
                    "tp_percent": str(level.tp_percent),
                }
                for level in plan.levels
            ],
            "entry_order_type": plan.entry_order_type,
        },
    )


def group_insert(
    batch: sql.Batch,
    published: list[Event],
    *,
    plan: OpenNewGroup,
    signal_id: uuid.UUID,
    user_id: uuid.UUID,
    config_id: Any,
    symbol: str,
    exchange_symbol: str,
    timeframe: str,
    opened_by: str,
    now: datetime,
) -> uuid.UUID:
    """Add a `waiting` group with pyramid 0 to `batch`, and its live event to `published` (the caller
    holds the user lock and has checked the pool)."""
    group_id = uuid.uuid4()
    batch.insert(
        PositionGroup,
        {
            "id": group_id,
            "user_id": user_id,
            "exchange_config_id": config_id,
            "symbol": symbol,
            "exchange_symbol": exchange_symbol,
            "timeframe": timeframe,
            "side": SIDE,
            "status": GroupStatus.WAITING,
            "config": plan.config,
            "tp_mode": plan.tp_mode,
            "max_pyramids": plan.max_pyramids,
            "pyramid_count": 1,
            "last_pyramid_candle": plan.candle,
            "created_at": now,
            "updated_at": now,
        },
    )
    pyramid_insert(batch, group_id=group_id, signal_id=signal_id, plan=plan.pyramid)
    batch.insert(
        GroupEvent,
        {
            "group_id": group_id,
            "at": now,
            "kind": "opened",
            "message": f"Opened by {opened_by} signal at {plan.pyramid.entry_price}",
            "details": {},
        },
    )
    published.append(
        group_event(
            OpenGroup(
                id=group_id,
                user_id=user_id,
                symbol=symbol,
                timeframe=timeframe,
                side=SIDE,
                status=GroupStatus.WAITING,
                pyramid_count=1,
                max_pyramids=plan.max_pyramids,
                last_pyramid_candle=plan.candle,
                config="",
                filled_quantity=Decimal(0),
                avg_entry_price=None,
                realized_pnl=Decimal(0),
            )
        )
    )
    return group_id
