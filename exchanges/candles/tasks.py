"""Celery tasks of the candle store: thin callers of `exchanges.candles.services`."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from . import services


@shared_task(name="exchanges.backfill_candles")
def backfill_candles(backfill_id: str) -> dict[str, Any]:
    """Run (or resume) a stored backfill to its end; its row carries the progress."""
    job = services.candles_backfill(exchange_name="", symbol="", timeframe="", backfill_id=backfill_id)
    return {"backfill_id": str(job.pk), "status": job.status, "fetched": job.fetched, "error": job.error}
