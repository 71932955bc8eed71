"""Site-wide views: the home page, health, and JSON error pages for the API."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from core.api import error_response

from .health import system_health_public


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html", {"webhook_url": request.build_absolute_uri(f"/api/webhook/{request.user.pk}")})


@require_GET
def health(request: HttpRequest) -> JsonResponse:
    report = system_health_public()
    return JsonResponse(report, status=503 if report["status"] == "critical" else 200)


def not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/api/"):
        return error_response(404, "not_found", "No such endpoint or resource.")
    return render(request, "404.html", status=404)


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        return error_response(500, "server_error", "An unexpected error occurred; it has been logged.")
    return render(request, "500.html", status=500)
