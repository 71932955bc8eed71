"""What the risk engine does when `positions` announces an engine event (positions.hooks)."""

from __future__ import annotations

from celery import current_app

from positions.config import engine_setting
from positions.hooks import ORDER_FILLED, EngineEvent
from positions.models import EngineConfig

ENTRY_KINDS = ("entry", "dca")


def on_engine_event(engine_event: EngineEvent) -> None:
    """An entry leg filled: with `risk_evaluate_on_fill`, run the user's risk cycle now (by task name:
    a subscriber must be quick)."""
    if engine_event.kind != ORDER_FILLED or engine_event.data.get("order_kind") not in ENTRY_KINDS:
        return
    stored = EngineConfig.objects.filter(user_id=engine_event.user_id).values_list("data", flat=True).first()
    if engine_setting(stored or {}, "risk_evaluate_on_fill"):
        current_app.send_task("riskengine.evaluate_user", args=(engine_event.user_id, "fill"))
