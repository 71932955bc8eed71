"""Auth, account and log endpoints (listed in accounts/README.md; bodies in the OpenAPI schema, /api/schema/)."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from django.contrib.auth import authenticate
from django.core.cache import cache
from django.db import transaction
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken

from accounts import selectors, services
from accounts.auth import refresh_check, token_session_revoke, tokens_issue
from accounts.logs import audit
from accounts.middleware import client_ip
from accounts.models import AuditLog, SystemLog, User
from accounts.permissions import AuthenticatedRequest, IsAdminRole, IsViewerOrHigher
from accounts.throttles import ClientScopedRateThrottle
from core.api import ApiError

from . import serializers as s
from .exports import log_export_rows

LOGIN_FAILURES_ALLOWED = 5
LOGIN_FAILURE_WINDOW = 300
MAX_DAYS_OLD = 36500  # a century: beyond it the cut-off date is not a date


def _tokens_for(user: User, request: Request) -> dict[str, str]:
    refresh = tokens_issue(user=user)
    services.session_start(
        user=user,
        session_key=f"jwt:{refresh['jti']}",
        kind="api",
        ip=client_ip(request),
        user_agent=request.META.get("HTTP_USER_AGENT", ""),
        expires_at=timezone.now() + timedelta(seconds=refresh.lifetime.total_seconds()),
    )
    return {"token": str(refresh.access_token), "refresh": str(refresh)}


class AuthView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list = []
    throttle_classes = [ClientScopedRateThrottle]
    throttle_scope = "auth"


class RegisterView(AuthView):
    @extend_schema(request=s.RegisterSerializer, responses={201: s.UserSerializer})
    def post(self, request: Request) -> Response:
        data = s.RegisterSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        user = services.user_register(**data.validated_data, ip=client_ip(request))
        return Response({"user": s.UserSerializer(user).data, **_tokens_for(user, request)}, status=201)


class LoginView(AuthView):
    @extend_schema(request=s.LoginSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request) -> Response:
        data = s.LoginSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        email = data.validated_data["email"].lower()
        # Keyed on the account and the client, and never extended by further failures: a stranger
        # can lock out only their own address, for LOGIN_FAILURE_WINDOW at most.
        failures_key = f"login-failures:{hashlib.sha256(email.encode()).hexdigest()}:{client_ip(request) or '-'}"
        if (cache.get(failures_key) or 0) >= LOGIN_FAILURES_ALLOWED:
            raise ApiError(
                status_code=429,
                code="throttled",
                detail="Too many failed logins for this account; try again in a few minutes.",
            )
        user = authenticate(request._request, email=email, password=data.validated_data["password"])
        if user is None:
            cache.add(failures_key, 0, LOGIN_FAILURE_WINDOW)
            cache.incr(failures_key)
            raise ApiError(status_code=401, code="invalid_credentials", detail="Email or password is wrong.")
        cache.delete(failures_key)
        user.last_login = timezone.now()
        user.save(update_fields=["last_login"])
        audit(
            user=user,
            action="login",
            resource="user",
            resource_id=user.pk,
            details={"via": "api"},
            ip=client_ip(request),
        )
        return Response({"user": s.UserSerializer(user).data, **_tokens_for(user, request)})


class LogoutView(AuthView):
    @extend_schema(request=s.RefreshSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request) -> Response:
        data = s.RefreshSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            refresh = RefreshToken(data.validated_data["refresh"])
            user = User.objects.filter(pk=refresh["user_id"]).first()
            refresh.blacklist()
        except TokenError as exc:
            raise ApiError(
                status_code=401, code="token_invalid", detail=str(exc), fields={"refresh": [str(exc)]}
            ) from exc
        # The access tokens of this session die with it (and the bearer token sent, if any).
        token_session_revoke(token=refresh)
        bearer = _bearer_token(request)
        if bearer is not None and bearer.get("user_id") == refresh.get("user_id"):
            token_session_revoke(token=bearer)
        services.session_end(session_key=f"jwt:{refresh['jti']}")
        audit(
            user=user,
            action="logout",
            resource="user",
            resource_id=getattr(user, "pk", ""),
            details={"via": "api"},
            ip=client_ip(request),
        )
        return Response({"success": True})


class RefreshView(AuthView):
    @extend_schema(request=s.RefreshSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request) -> Response:
        data = s.RefreshSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            refresh = RefreshToken(data.validated_data["refresh"])
            refresh_check(token=refresh)
        except TokenError as exc:
            raise ApiError(
                status_code=401, code="token_invalid", detail=str(exc), fields={"refresh": [str(exc)]}
            ) from exc
        return Response({"token": str(refresh.access_token)})


def _bearer_token(request: Request) -> AccessToken | None:
    """The valid access token in the Authorization header, if any (auth views do not authenticate)."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, raw = header.partition(" ")
    if scheme.lower() != "bearer" or not raw.strip():
        return None
    try:
        return AccessToken(raw.strip())
    except TokenError:
        return None


class ForgotPasswordView(AuthView):
    @extend_schema(request=s.ForgotSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request) -> Response:
        data = s.ForgotSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        services.password_reset_request(email=data.validated_data["email"], ip=client_ip(request))
        return Response({"success": True})  # the same answer whether or not the address exists


class ResetPasswordView(AuthView):
    @extend_schema(request=s.ResetSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request: Request) -> Response:
        data = s.ResetSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        try:
            services.password_reset_confirm(
                token=data.validated_data["token"],
                new_password=data.validated_data["new_password"],
                ip=client_ip(request),
            )
        except services.ResetTokenInvalidError as exc:
            raise ApiError(status_code=400, code="invalid", detail=str(exc), fields={"token": [str(exc)]}) from exc
        except Exception as exc:
            from django.core.exceptions import ValidationError

            if isinstance(exc, ValidationError):
                raise ApiError(
                    status_code=400,
                    code="invalid",
                    detail=" ".join(exc.messages),
                    fields={"new_password": exc.messages},
                ) from exc
            raise
        return Response({"success": True})


class AccountView(APIView):
    permission_classes = [IsViewerOrHigher]

    @extend_schema(responses=s.AccountSerializer)
    def get(self, request: Request) -> Response:
        return Response(s.AccountSerializer(request.user).data)


class WebhookSecretView(APIView):
    permission_classes = [IsViewerOrHigher]

    @extend_schema(request=None, responses=s.AccountSerializer)
    def post(self, request: AuthenticatedRequest) -> Response:
        user = services.webhook_secret_regenerate(user=request.user, ip=client_ip(request))
        return Response(s.AccountSerializer(user).data)


def _log_query(request: Request) -> dict:
    query = s.LogQuerySerializer(data=request.query_params.dict())
    query.is_valid(raise_exception=True)
    return query.validated_data


class SystemLogListView(APIView):
    permission_classes = [IsViewerOrHigher]

    @extend_schema(parameters=[s.LogQuerySerializer], responses=s.SystemLogSerializer(many=True))
    def get(self, request: AuthenticatedRequest) -> Response:
        q = _log_query(request)
        qs = selectors.log_list_system(
            viewer=request.user,
            level=q.get("level"),
            category=q.get("category"),
            user_id=q.get("user_id"),
            start=q.get("start_date"),
            end=q.get("end_date"),
            search=q.get("search"),
        )
        return Response(s.SystemLogSerializer(qs[: q["limit"]], many=True).data)


class AuditLogListView(APIView):
    permission_classes = [IsViewerOrHigher]

    @extend_schema(parameters=[s.LogQuerySerializer], responses=s.AuditLogSerializer(many=True))
    def get(self, request: AuthenticatedRequest) -> Response:
        q = _log_query(request)
        qs = selectors.log_list_audit(
            viewer=request.user,
            user_id=q.get("user_id"),
            action=q.get("action"),
            start=q.get("start_date"),
            end=q.get("end_date"),
        )
        return Response(s.AuditLogSerializer(qs[: q["limit"]], many=True).data)


class SystemLogDeleteView(APIView):
    permission_classes = [IsAdminRole]

    @extend_schema(request=None, responses=OpenApiTypes.OBJECT)
    def delete(self, request: Request, days_old: int) -> Response:
        if days_old > MAX_DAYS_OLD:
            reason = f"must be at most {MAX_DAYS_OLD} days"
            raise ApiError(status_code=400, code="invalid", detail=f"days_old: {reason}", fields={"days_old": [reason]})
        with transaction.atomic():
            counts = services.logs_cleanup(system_days=days_old)
            audit(
                user=request.user,
                action="logs_delete",
                resource="system_log",
                details={"days_old": days_old, "deleted": counts["system"]},
                ip=client_ip(request),
            )
        return Response({"success": True, "deleted": counts["system"]})


class LogExportView(APIView):
    permission_classes = [IsAdminRole]

    @extend_schema(request=s.LogExportSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request: AuthenticatedRequest) -> StreamingHttpResponse:
        data = s.LogExportSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        kind, fmt = data.validated_data["kind"], data.validated_data["format"]
        start, end = data.validated_data.get("start_date"), data.validated_data.get("end_date")
        qs: QuerySet[SystemLog] | QuerySet[AuditLog]
        if kind == "system":
            qs = selectors.log_list_system(viewer=request.user, start=start, end=end)
        else:
            qs = selectors.log_list_audit(viewer=request.user, start=start, end=end)
        audit(
            user=request.user,
            action="logs_export",
            resource=f"{kind}_log",
            details={"format": fmt},
            ip=client_ip(request),
        )
        response = StreamingHttpResponse(
            log_export_rows(kind, fmt, qs),
            content_type="text/csv" if fmt == "csv" else "application/json",
            status=status.HTTP_200_OK,
        )
        response["Content-Disposition"] = f'attachment; filename="{kind}_logs.{fmt}"'
        return response
