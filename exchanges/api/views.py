"""Exchange key endpoints: store, list (masked), validate, switch mode, delete (bodies: /api/schema/).

Users see and touch only their own configs; anything else is a 404.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.middleware import client_ip
from accounts.permissions import ReadOrTrader
from core.api import ApiError
from exchanges import selectors, services
from exchanges.models import ExchangeConfig

from . import serializers as s


def _exchange_name(raw: str) -> str:
    try:
        return services.exchange_name_normalize(raw)
    except ValidationError as exc:
        reasons = exc.message_dict["exchange"]
        raise ApiError(status_code=400, code="invalid", detail=reasons[0], fields={"exchange": reasons}) from None


def _own_config(request: Request, exchange: str) -> ExchangeConfig:
    name = _exchange_name(exchange)
    config = selectors.exchange_config_get(user=request.user, exchange_name=name)
    if config is None:
        raise ApiError(status_code=404, code="not_found", detail=f"No {name} keys are stored for this account.")
    return config


class KeyListView(APIView):
    permission_classes = [ReadOrTrader]

    @extend_schema(responses=s.ExchangeConfigSerializer(many=True))
    def get(self, request: Request) -> Response:
        configs = selectors.exchange_config_list(user=request.user)
        return Response(s.ExchangeConfigSerializer(configs, many=True).data)


class KeyDetailView(APIView):
    permission_classes = [ReadOrTrader]

    @extend_schema(
        request=s.KeyStoreSerializer, responses={200: s.ExchangeConfigSerializer, 201: s.ExchangeConfigSerializer}
    )
    def post(self, request: Request, exchange: str) -> Response:
        name = _exchange_name(exchange)
        data = s.KeyStoreSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        config, created = services.exchange_config_store(
            user=request.user,
            exchange_name=name,
            mode=values["mode"],
            api_key=values["api_key"],
            api_secret=values["api_secret"],
            password=values.get("password") or None,
            confirm_live=values.get("confirm_live", False),
            ip=client_ip(request),
        )
        return Response(
            s.ExchangeConfigSerializer(config).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )

    @extend_schema(request=None, responses={204: None})
    def delete(self, request: Request, exchange: str) -> Response:
        config = _own_config(request, exchange)
        try:
            services.exchange_config_delete(config=config, actor=request.user, ip=client_ip(request))
        except services.ExchangeConfigInUseError as exc:
            raise ApiError(status_code=409, code="conflict", detail=str(exc)) from None
        return Response(status=status.HTTP_204_NO_CONTENT)


class KeyValidateView(APIView):
    permission_classes = [ReadOrTrader]

    @extend_schema(request=None, responses=s.ExchangeConfigSerializer)
    def put(self, request: Request, exchange: str) -> Response:
        config = _own_config(request, exchange)
        config = services.exchange_config_validate(config=config, actor=request.user, ip=client_ip(request))
        return Response(s.ExchangeConfigSerializer(config).data)


class KeyModeView(APIView):
    permission_classes = [ReadOrTrader]

    @extend_schema(request=s.KeyModeSerializer, responses=s.ExchangeConfigSerializer)
    def put(self, request: Request, exchange: str) -> Response:
        config = _own_config(request, exchange)
        data = s.KeyModeSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        config = services.exchange_config_set_mode(
            config=config,
            mode=data.validated_data["mode"],
            confirm_live=data.validated_data.get("confirm_live", False),
            actor=request.user,
            ip=client_ip(request),
        )
        return Response(s.ExchangeConfigSerializer(config).data)
