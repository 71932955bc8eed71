"""Serializers of the key endpoints (/api/keys...). Secrets are write-only: no serializer outputs one."""

from __future__ import annotations

from rest_framework import serializers

from accounts.api.serializers import StrictSerializer
from exchanges.choices import ExchangeMode
from exchanges.models import ExchangeConfig
from exchanges.services import MAX_SECRET_LENGTH


def _secret_field(*, required: bool) -> serializers.CharField:
    return serializers.CharField(
        required=required,
        allow_blank=not required,
        allow_null=not required,
        max_length=MAX_SECRET_LENGTH,
        trim_whitespace=True,
        write_only=True,
        style={"input_type": "password"},
    )


class KeyStoreSerializer(StrictSerializer):
    """``POST /api/keys/<exchange>``."""

    mode = serializers.ChoiceField(choices=ExchangeMode.choices)
    api_key = _secret_field(required=True)
    api_secret = _secret_field(required=True)
    password = _secret_field(required=False)
    confirm_live = serializers.BooleanField(required=False, default=False)

    def validate(self, attrs: dict) -> dict:
        if attrs["mode"] == ExchangeMode.LIVE and not attrs.get("confirm_live"):
            raise serializers.ValidationError(
                {"confirm_live": ["Live mode trades real money: send confirm_live: true to switch it on explicitly."]}
            )
        return attrs


class KeyModeSerializer(StrictSerializer):
    """``PUT /api/keys/<exchange>/mode``."""

    mode = serializers.ChoiceField(choices=ExchangeMode.choices)
    confirm_live = serializers.BooleanField(required=False, default=False)

    def validate(self, attrs: dict) -> dict:
        if attrs["mode"] == ExchangeMode.LIVE and not attrs.get("confirm_live"):
            raise serializers.ValidationError(
                {"confirm_live": ["Live mode trades real money: send confirm_live: true to switch it on explicitly."]}
            )
        return attrs


class ExchangeConfigSerializer(serializers.ModelSerializer):
    """One stored config as the API shows it: the key masked, the secret never."""

    exchange = serializers.CharField(source="exchange_name", read_only=True)
    api_key_masked = serializers.CharField(read_only=True)

    class Meta:
        model = ExchangeConfig
        fields = [
            "id",
            "exchange",
            "mode",
            "api_key_masked",
            "is_enabled",
            "is_validated",
            "last_validated",
            "validation_message",
            "live_confirmed_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields
