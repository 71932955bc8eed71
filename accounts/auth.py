"""API tokens that die when they should (docs/security.md#tokens).

A JWT is valid until it expires unless something says otherwise, so three things do:

- the password: every token carries a hash of the user's password hash (simplejwt's
  `CHECK_REVOKE_TOKEN`), so a password change or reset kills every token issued before it;
- a per-user cut-off in the cache (`user_tokens_revoke`): a role change, a deactivation or a reset
  refuses every token issued before that moment (its `iat`), access and refresh alike;
- logout: the refresh token is blacklisted, and its session id (`sid`, copied into every access token
  minted from it) is denied until the last of those access tokens would have expired.

`TokenAuthentication` applies all three to every API request and to the websocket's `?token=`;
`refresh_check` applies them before a refresh token mints an access token.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.cache import cache
from drf_spectacular.contrib.rest_framework_simplejwt import SimpleJWTScheme
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import RefreshToken, Token
from rest_framework_simplejwt.utils import get_md5_hash_password

from .models import User

_CUTOFF_KEY = "jwt:not-before:{user_id}"
_SESSION_KEY = "jwt:revoked-session:{sid}"
_ACCESS_KEY = "jwt:revoked-access:{jti}"
LOGGED_OUT = "This token was revoked by a logout; log in again."
SUPERSEDED = "This token was issued before a password, role or account change; log in again."


def _refresh_lifetime() -> int:
    return int(api_settings.REFRESH_TOKEN_LIFETIME.total_seconds())


def _access_lifetime() -> int:
    return int(api_settings.ACCESS_TOKEN_LIFETIME.total_seconds())


def tokens_issue(*, user: User) -> RefreshToken:
    """A refresh token for `user` whose access tokens share its session id (`sid`): a logout with the
    refresh token revokes them too."""
    refresh = RefreshToken.for_user(user)
    refresh["sid"] = refresh["jti"]
    refresh["issued_ms"] = time.time_ns() // 1_000_000  # `iat` has whole seconds: see `_revocation`
    return refresh


def user_tokens_revoke(*, user_id: Any) -> None:
    """Refuse every token of the user issued up to now (role change, deactivation, password reset).

    Kept as long as the longest-lived token issued before it could live.
    """
    cache.set(_CUTOFF_KEY.format(user_id=user_id), time.time_ns() // 1_000_000, _refresh_lifetime())


def token_session_revoke(*, token: Token) -> None:
    """Refuse the access tokens minted from `token`'s session (logout), and `token` itself."""
    sid = token.get("sid")
    if sid:
        cache.set(_SESSION_KEY.format(sid=sid), 1, _access_lifetime())
    jti = token.get(api_settings.JTI_CLAIM)
    if jti:
        cache.set(_ACCESS_KEY.format(jti=jti), 1, _access_lifetime())


def _revocation(token: Token, user_id: Any) -> str | None:
    """Why `token` of `user_id` is refused by a logout or a cut-off, or None."""
    keys = [_CUTOFF_KEY.format(user_id=user_id)]
    sid, jti = token.get("sid"), token.get(api_settings.JTI_CLAIM)
    if sid:
        keys.append(_SESSION_KEY.format(sid=sid))
    if jti:
        keys.append(_ACCESS_KEY.format(jti=jti))
    found = cache.get_many(keys)
    if len(found) > (1 if keys[0] in found else 0):
        return LOGGED_OUT
    cutoff = found.get(keys[0])
    if cutoff is not None:
        # Our tokens carry the millisecond they were issued; others only `iat`, whole seconds, taken
        # as the start of that second (refused when the cut-off falls in it).
        issued = token.get("issued_ms")
        if not isinstance(issued, int):
            issued = int(token.get("iat", 0)) * 1000
        if issued <= int(cutoff):
            return SUPERSEDED
    return None


def _password_matches(token: Token, user: User) -> bool:
    return token.get(api_settings.REVOKE_TOKEN_CLAIM) == get_md5_hash_password(user.password)


def refresh_check(*, token: RefreshToken) -> User:
    """The active user a refresh token may mint an access token for; `TokenError` (with a sentence)
    when it is blacklisted, logged out, superseded, or its user is inactive or gone."""
    token.check_blacklist()
    user = User.objects.filter(pk=token.get(api_settings.USER_ID_CLAIM), is_active=True).first()
    if user is None:
        raise TokenError("The user of this token is inactive or gone.")
    if not _password_matches(token, user):
        raise TokenError(SUPERSEDED)
    reason = _revocation(token, user.pk)
    if reason is not None:
        raise TokenError(reason)
    return user


class TokenAuthentication(JWTAuthentication):
    """simplejwt's bearer authentication (which checks the password hash and that the user is active)
    plus logouts and per-user cut-offs."""

    def get_user(self, validated_token: Token) -> Any:
        user = super().get_user(validated_token)
        reason = _revocation(validated_token, user.pk)
        if reason is not None:
            raise AuthenticationFailed(reason, code="token_not_valid")
        return user


class TokenAuthenticationScheme(SimpleJWTScheme):
    """The OpenAPI description of `TokenAuthentication`: a bearer JWT, as simplejwt's (registered by
    being defined; this module is loaded with the API's authentication classes)."""

    target_class = "accounts.auth.TokenAuthentication"
