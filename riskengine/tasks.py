"""Celery tasks of the risk engine: thin callers of `riskengine.services`."""

from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="riskengine.evaluate", ignore_result=True)
def evaluate() -> dict[str, int]:
    """The 30-second cycle over every user with a trading group (tradingsite/schedules.py)."""
    return services.risk_cycle(trigger="beat")


@shared_task(name="riskengine.evaluate_user", ignore_result=True)
def evaluate_user(user_id: str, trigger: str = "fill") -> str:
    """One user's cycle, after an entry fill (`risk_evaluate_on_fill`)."""
    try:
        return services.risk_evaluate(user_id=user_id, trigger=trigger).kind
    except services.RiskBusyError:
        return "busy"  # the running cycle sees the same fills
