"""Reads of the analytics app: stored backtest runs, only the owner's own."""

from __future__ import annotations

from typing import Any

from accounts.models import User

from .models import BacktestRun


def backtest_list(*, owner: User, limit: int = 100) -> list[BacktestRun]:
    """The owner's runs, newest first, without their deals, equity and fills (large)."""
    return list(
        BacktestRun.objects.filter(owner=owner).defer("deals", "equity", "fills").order_by("-created_at")[:limit]
    )


def backtest_get(*, owner: User, backtest_id: Any) -> BacktestRun | None:
    return BacktestRun.objects.filter(owner=owner, pk=backtest_id).first()


def backtest_describe(*, run: BacktestRun, detail: bool = False) -> dict[str, Any]:
    """`GET /api/backtests` (metrics) and `/api/backtests/<id>` (adds deals, the equity curve and fills)."""
    params = {key: value for key, value in (run.params or {}).items() if not key.endswith("_csv")}
    body: dict[str, Any] = {
        "id": str(run.pk),
        "task_id": str(run.task_id) if run.task_id else None,
        "symbol": run.symbol,
        "timeframe": run.timeframe,
        "exchange": run.exchange_name,
        "source": params.get("source"),
        "strategy": params.get("strategy"),
        "start": params.get("start"),
        "end": params.get("end"),
        "created_at": run.created_at.isoformat(),
        "metrics": run.metrics,
    }
    if detail:
        body["config"] = params.get("config")
        body["deals"] = run.deals
        body["equity"] = run.equity
        body["fills"] = run.fills
    return body
