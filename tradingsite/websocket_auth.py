"""Websocket authentication: the Django session, or a JWT in `?token=`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser

# ASGI as channels passes it: plain mappings (channels adds "user" to the scope)
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


@database_sync_to_async
def _user_from_token(raw: str) -> AbstractBaseUser | AnonymousUser:
    from rest_framework_simplejwt.exceptions import InvalidToken, TokenError

    from accounts.auth import TokenAuthentication  # reaches the user model: imported once apps are loaded

    auth = TokenAuthentication()  # the API's own check: logouts and password/role changes too
    try:
        # simplejwt takes the token as text too; its annotation says bytes
        return auth.get_user(auth.get_validated_token(raw))  # type: ignore[arg-type]
    except (InvalidToken, TokenError, Exception):  # any bad token is simply anonymous
        return AnonymousUser()


class _TokenMiddleware:
    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        token = parse_qs(scope.get("query_string", b"").decode()).get("token", [None])[0]
        if token:
            scope = {**scope, "user": await _user_from_token(token)}
        return await self.inner(scope, receive, send)


def JWTOrSessionAuthMiddleware(inner: ASGIApp) -> ASGIApp:  # noqa: N802
    return AuthMiddlewareStack(_TokenMiddleware(inner))
