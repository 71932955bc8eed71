"""Websocket authentication: the Django session, or a JWT in `?token=`."""

from __future__ import annotations

from urllib.parse import parse_qs

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from django.contrib.auth.models import AnonymousUser


@database_sync_to_async
def _user_from_token(raw: str):  # type: ignore[no-untyped-def]
    from rest_framework_simplejwt.authentication import JWTAuthentication
    from rest_framework_simplejwt.exceptions import InvalidToken, TokenError

    auth = JWTAuthentication()
    try:
        return auth.get_user(auth.get_validated_token(raw))
    except (InvalidToken, TokenError, Exception):  # any bad token is simply anonymous
        return AnonymousUser()


class _TokenMiddleware:
    def __init__(self, inner):  # type: ignore[no-untyped-def]
        self.inner = inner

    async def __call__(self, scope, receive, send):  # type: ignore[no-untyped-def]
        token = parse_qs(scope.get("query_string", b"").decode()).get("token", [None])[0]
        if token:
            scope = {**scope, "user": await _user_from_token(token)}
        return await self.inner(scope, receive, send)


def JWTOrSessionAuthMiddleware(inner):  # type: ignore[no-untyped-def]  # noqa: N802
    return AuthMiddlewareStack(_TokenMiddleware(inner))
