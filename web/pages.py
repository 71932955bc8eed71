"""How a page is rendered: whole, or one live region of it (docs/web.md#live).

A page is a template plus named regions. Each region has its own partial template and a function that
builds its context. The whole page renders every region; `?partial=<name>` renders only that region, from
the same function and the same partial template, so a live update shows exactly what a reload would.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.models import User


class AuthedRequest(HttpRequest):
    """The request of a `login_required` page: its user is a `User`, never anonymous."""

    user: User  # narrower than HttpRequest's: `login_required` guarantees it


@dataclass(frozen=True)
class Region:
    template: str
    data: Callable[[AuthedRequest], dict[str, Any]]


def render_page(
    request: AuthedRequest,
    template: str,
    regions: Mapping[str, Region],
    context: Mapping[str, Any] | None = None,
    status: int = 200,
) -> HttpResponse:
    name = request.GET.get("partial")
    if name is not None:
        region = regions.get(name)
        if region is None:
            raise Http404("No such region.")
        return render(request, region.template, region.data(request))
    full: dict[str, Any] = dict(context or {})
    for region in regions.values():
        full.update(region.data(request))
    return render(request, template, full, status=status)
