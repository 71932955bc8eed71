"""`/queue/`: the waiting queue in promotion order, with each priority rule's value; promote, remove,
force-add (docs/web.md#queue). Reads and actions go through `positions.services.queue`, as `/api/queue` does."""

from __future__ import annotations

import uuid
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.utils import timezone

from accounts.middleware import client_ip
from positions.config import engine_setting
from positions.models import EngineConfig, QueuedSignal
from positions.rules.pool import queued_loss_percent
from positions.services.queue import (
    pool_used,
    queue_continuing,
    queue_delete,
    queue_ordered,
    queue_prices,
    queue_promote,
    queue_rules,
)

from ..acting import back, may_act, trader_action
from ..pages import AuthedRequest, Region, render_page

RULE_TITLES = {
    "pyramid_continuation": "Continues an open group",
    "deepest_loss": "Deepest loss",
    "replacement_count": "Most replaced",
    "fifo": "Oldest first",
}


def _queue(request: AuthedRequest) -> dict[str, Any]:
    """The user's own queue (as `/api/queue`): prices in one batched request per exchange config."""
    user_id = request.user.pk
    entries = list(QueuedSignal.objects.filter(user_id=user_id).select_related("exchange_config"))
    prices = queue_prices(entries=entries) if entries else {}
    continuing = queue_continuing(user_id=user_id)
    stored = EngineConfig.objects.filter(user_id=user_id).values_list("data", flat=True).first()
    now = timezone.now()
    rows = []
    for rank, entry in enumerate(queue_ordered(user=user_id, prices=prices), start=1):
        price = prices.get(entry.symbol)
        rows.append(
            {
                "entry": entry,
                "rank": rank,
                "price": price,
                "loss_percent": queued_loss_percent(entry, price).quantize(Decimal("0.01")) if price else None,
                "continuing": (entry.symbol, entry.timeframe) in continuing,
                "waiting_seconds": int((now - entry.queued_at).total_seconds()),
            }
        )
    used, most = pool_used(user_id=user_id), engine_setting(stored, "max_open_groups")
    rules = queue_rules(user_id=user_id)
    return {
        "pool_used": used,
        "pool_max": most,
        "pool_free": used < most,
        "rules": [(rule, RULE_TITLES.get(rule, rule)) for rule in rules],
        "rows": rows,
        "may_act": may_act(request.user),
    }


REGIONS = {"queue": Region("web/partials/queue_table.html", _queue)}


@login_required
def queue(request: AuthedRequest) -> HttpResponse:
    return render_page(request, "web/queue.html", REGIONS)


def _entry(request: AuthedRequest, entry_id: uuid.UUID) -> QueuedSignal:
    entry = QueuedSignal.objects.filter(pk=entry_id, user_id=request.user.pk).first()
    if entry is None:
        raise Http404("No such queued signal.")
    return entry


def _promote(request: AuthedRequest, entry_id: uuid.UUID, *, force: bool) -> HttpResponse:
    entry = _entry(request, entry_id)
    promoted = queue_promote(user_id=request.user.pk, entry_id=entry.pk, force=force, actor=request.user)
    if not promoted:
        return back(
            request,
            "web:queue",
            f"{entry.symbol} {entry.timeframe} stays queued: the execution pool is full;"
            " force-add ignores the cap once.",
            level=messages.ERROR,
        )
    verb = "Force-added" if force else "Promoted"
    return back(request, "web:queue", f"{verb} {entry.symbol} {entry.timeframe}: its group is opening.")


@trader_action
def queue_promote_view(request: AuthedRequest, entry_id: uuid.UUID) -> HttpResponse:
    return _promote(request, entry_id, force=False)


@trader_action
def queue_force_add_view(request: AuthedRequest, entry_id: uuid.UUID) -> HttpResponse:
    return _promote(request, entry_id, force=True)


@trader_action
def queue_remove_view(request: AuthedRequest, entry_id: uuid.UUID) -> HttpResponse:
    entry = _entry(request, entry_id)
    queue_delete(entry=entry, actor=request.user, ip=client_ip(request))
    return back(request, "web:queue", f"Removed {entry.symbol} {entry.timeframe} from the queue.")
