"""Site-wide views: health, and JSON error pages for the API (the pages are in `web`)."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from core.api import error_response

from .health import system_health_public


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
