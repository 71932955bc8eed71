"""What every action view of the pages shares (docs/web.md#pages): POST only, logged in, the API's role check,
and the way back (post/redirect/get with a message).

An action view calls the same service the API view calls and turns the service's refusal into a message;
it never changes anything itself.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import F, Func, Q, QuerySet, Value
from django.db.models.functions import Upper
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from accounts.roles import trade_refusal, user_may_trade
from exchanges.precision import compact_symbol

View = Callable[..., HttpResponse]


def may_act(user: Any) -> bool:
    """Whether the pages offer this user their buttons: the API's check (`IsTraderOrHigher`)."""
    return bool(getattr(user, "is_authenticated", False)) and user_may_trade(user=user)


def trader_action(view: View) -> View:
    """An action: POST with CSRF (the middleware), logged in, and the trader role as the API asks it;
    a viewer gets 403 and nothing happens."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not may_act(request.user):
            raise PermissionDenied(trade_refusal(getattr(request.user, "role", "")))
        return view(request, *args, **kwargs)

    return login_required(require_POST(wrapped))


def back(request: HttpRequest, page: str, message: str = "", *, level: int = messages.SUCCESS) -> HttpResponse:
    """Redirect to the page the form was on (its `next` field when it is one of ours), with a message."""
    if message:
        messages.add_message(request, level, message)
    target = request.POST.get("next") or ""
    if not target.startswith("/") or not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = reverse(page)
    return HttpResponseRedirect(target)


def symbol_filter[M: Any](qs: QuerySet[M], field: str, raw: str) -> QuerySet[M]:
    """Rows whose `field` is the symbol `raw` written any common way: `BTCUSDT`, `BTC/USDT`, `btc-usdt`,
    `BINANCE:BTCUSDT` (both sides compared without separators, `exchanges.precision.compact_symbol`)."""
    wanted = compact_symbol(raw)
    if not wanted:
        return qs
    compact = Upper(Func(F(field), Value("[^A-Za-z0-9]"), Value(""), Value("g"), function="regexp_replace"))
    return qs.alias(_compact_symbol=compact).filter(Q(_compact_symbol=wanted))
