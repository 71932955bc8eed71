"""The ops console: the admin site with a panel on its index (docs/processes.md#ops-console).

The panel shows health and counts, and holds the system-wide actions: pause / resume every user's new
entries, flatten everything (with a typed confirmation), run one risk cycle for a user now, and re-encrypt
every secret with the first key. Each action is a POST (CSRF) that calls the same service the API or the
command uses; the services audit. System-wide actions need an admin (role admin or superuser).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib import admin, messages
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, path, reverse
from django.utils import timezone

from accounts.choices import Role
from accounts.models import User
from exchanges import crypto
from notifications.choices import DeliveryStatus
from notifications.models import Delivery
from positions.choices import FINAL_GROUP_STATUSES, RESTING_ORDER_STATUSES, OrderStatus
from positions.models import DCAOrder, ExitOrder, PositionGroup, QueuedSignal, TradingGuard, WebhookSignal
from positions.services.guards import guard_flatten, guard_pause_set
from riskengine.services import RiskBusyError, risk_evaluate

from .health import system_health_public
from .secrets import secrets_rotate_all

FLATTEN_WORD = "FLATTEN"


def is_admin(user: Any) -> bool:
    return bool(user.is_active and (user.is_superuser or getattr(user, "role", "") == Role.ADMIN))


def _order_counts() -> dict[str, int]:
    counts = {"resting": 0, "unknown": 0, "pending": 0}
    for model in (DCAOrder, ExitOrder):
        row = model.objects.aggregate(
            resting=Count("pk", filter=Q(status__in=RESTING_ORDER_STATUSES)),
            unknown=Count("pk", filter=Q(status=OrderStatus.UNKNOWN)),
            pending=Count("pk", filter=Q(status=OrderStatus.PENDING)),
        )
        for key in counts:
            counts[key] += row[key]
    return counts


def console_context() -> dict[str, Any]:
    since = timezone.now() - timedelta(hours=24)
    groups = PositionGroup.objects.aggregate(
        open=Count("pk", filter=~Q(status__in=FINAL_GROUP_STATUSES)),
        failed_24h=Count("pk", filter=Q(status="failed", updated_at__gte=since)),
    )
    signals = WebhookSignal.objects.filter(received_at__gte=since).aggregate(
        total=Count("pk"), refused=Count("pk", filter=Q(http_status__gte=400))
    )
    system_guard = TradingGuard.objects.filter(user__isnull=True).first()
    return {
        "health": system_health_public(),
        "counts": {
            "users": User.objects.filter(is_active=True).count(),
            "open_groups": groups["open"],
            "failed_groups_24h": groups["failed_24h"],
            "queued_signals": QueuedSignal.objects.count(),
            "signals_24h": signals["total"],
            "refused_signals_24h": signals["refused"],
            "deliveries_failed_24h": Delivery.objects.filter(
                status=DeliveryStatus.FAILED, created_at__gte=since
            ).count(),
            **{f"{key}_orders": value for key, value in _order_counts().items()},
        },
        "system_paused": bool(system_guard and system_guard.paused),
        "flatten_word": FLATTEN_WORD,
    }


class OpsAdminSite(admin.AdminSite):
    site_header = "Trading engine · ops console"
    site_title = "Ops console"
    index_title = "Ops console"
    index_template = "admin/ops_index.html"

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        context = {**console_context(), "console_admin": is_admin(request.user), **(extra_context or {})}
        return super().index(request, context)

    def get_urls(self) -> list[URLResolver | URLPattern]:
        own: list[URLResolver | URLPattern] = [
            path("console/pause/", self.admin_view(self.pause_view), name="console-pause"),
            path("console/flatten/", self.admin_view(self.flatten_view), name="console-flatten"),
            path("console/risk-run/", self.admin_view(self.risk_run_view), name="console-risk-run"),
            path("console/rotate-keys/", self.admin_view(self.rotate_view), name="console-rotate-keys"),
        ]
        return own + super().get_urls()

    def _back(self) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:index"))

    def _refuse_unless_admin(self, request: HttpRequest) -> HttpResponseRedirect | None:
        if is_admin(request.user):
            return None
        messages.error(request, "Only an admin may do this.")
        return self._back()

    @staticmethod
    def _ip(request: HttpRequest) -> str | None:
        return request.META.get("REMOTE_ADDR")

    def pause_view(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return self._back()
        if refused := self._refuse_unless_admin(request):
            return refused
        paused = request.POST.get("paused") == "1"
        reason = (request.POST.get("reason") or "operator").strip()[:200]
        guard_pause_set(user=None, paused=paused, actor=request.user, reason=reason, ip=self._ip(request))
        messages.success(request, "New entries paused for everyone." if paused else "New entries resumed for everyone.")
        return self._back()

    def flatten_view(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return self._back()
        if refused := self._refuse_unless_admin(request):
            return refused
        if request.POST.get("confirm", "").strip() != FLATTEN_WORD:
            messages.error(request, f"Nothing was closed: type {FLATTEN_WORD} to confirm.")
            return self._back()
        ids = guard_flatten(user=None, actor=request.user, ip=self._ip(request))
        messages.warning(
            request, f"Flatten: {len(ids)} group(s) are closing at market; new entries paused for everyone."
        )
        return self._back()

    def risk_run_view(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return self._back()
        email = (request.POST.get("email") or "").strip()
        user = User.objects.filter(email__iexact=email).first() if email else None
        if user is None:
            messages.error(request, f"email: no user has the address {email or '(empty)'}.")
            return self._back()
        try:
            action = risk_evaluate(user_id=user.pk, trigger="run_now", actor=request.user)
        except RiskBusyError:
            messages.warning(request, f"{user.email}: a risk cycle is already running; try again in a moment.")
            return self._back()
        messages.success(request, f"{user.email}: risk cycle done: {action.kind} ({action.reason}).")
        return self._back()

    def rotate_view(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST":
            return self._back()
        if refused := self._refuse_unless_admin(request):
            return refused
        try:
            result = secrets_rotate_all()
        except crypto.DecryptionError as exc:
            messages.error(request, f"Nothing changed: {exc}")
            return self._back()
        messages.success(
            request,
            f"Re-encrypted {result['secrets']} secrets with key {result['key_id']} "
            f"({result['from_old_keys']} were under an older key).",
        )
        return self._back()
