"""Celery tasks of the strategies app: thin callers of `strategies.services`."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.utils import timezone

from .services import live


@shared_task(name="strategies.tick")
def tick() -> dict[str, Any]:
    """Candle sync and strategy evaluation for every enabled instance (each minute; a series is
    evaluated once per closed candle)."""
    result = live.strategies_tick(now=timezone.now())
    return {
        "instances": result.instances,
        "series": result.series,
        "evaluated": result.evaluated,
        "signals": len(result.signals),
        "disabled": result.disabled,
        "ms": round(result.ms, 1),
    }
