from __future__ import annotations

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from accounts.choices import LogCategory, LogLevel
from accounts.models import AuditLog, SystemLog, User


class StrictSerializer(serializers.Serializer):
    """Rejects keys it does not know, naming them, instead of silently ignoring them."""

    def to_internal_value(self, data):  # type: ignore[no-untyped-def]
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["Expected a JSON object."]})
        unknown = sorted(set(data) - set(self.fields))
        if unknown:
            raise serializers.ValidationError({name: ["Unknown field."] for name in unknown})
        return super().to_internal_value(data)


def password_errors(password: str, user: User | None = None) -> list[str]:
    try:
        validate_password(password, user=user)
    except DjangoValidationError as exc:
        return list(exc.messages)
    return []


class UserSerializer(serializers.ModelSerializer):
    class Meta:
        model = User
        fields = ["id", "email", "username", "role", "is_active", "created_at", "last_login"]
        read_only_fields = fields


class AccountSerializer(serializers.ModelSerializer):
    webhook_url = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = ["id", "email", "username", "role", "webhook_url", "webhook_secret"]
        read_only_fields = fields

    def get_webhook_url(self, user: User) -> str:
        return f"{settings.PUBLIC_BASE_URL.rstrip('/')}/api/webhook/{user.pk}"


class RegisterSerializer(StrictSerializer):
    email = serializers.EmailField(max_length=254)
    username = serializers.RegexField(
        r"^[\w.@+-]+\Z", max_length=150, min_length=3, error_messages={"invalid": "Letters, digits and @/./+/-/_ only."}
    )
    password = serializers.CharField(max_length=128, trim_whitespace=False)

    def validate_email(self, value: str) -> str:
        value = value.lower()
        if User.objects.filter(email__iexact=value).exists():
            raise serializers.ValidationError("A user with this email already exists.")
        return value

    def validate_username(self, value: str) -> str:
        if User.objects.filter(username__iexact=value).exists():
            raise serializers.ValidationError("A user with this username already exists.")
        return value

    def validate(self, attrs):  # type: ignore[no-untyped-def]
        probe = User(email=attrs["email"], username=attrs["username"])
        errors = password_errors(attrs["password"], probe)
        if errors:
            raise serializers.ValidationError({"password": errors})
        return attrs


class LoginSerializer(StrictSerializer):
    email = serializers.EmailField(max_length=254)
    password = serializers.CharField(max_length=128, trim_whitespace=False)


class RefreshSerializer(StrictSerializer):
    refresh = serializers.CharField(max_length=2048)


class ForgotSerializer(StrictSerializer):
    email = serializers.EmailField(max_length=254)


class ResetSerializer(StrictSerializer):
    token = serializers.CharField(max_length=256)
    new_password = serializers.CharField(max_length=128, trim_whitespace=False)


class SystemLogSerializer(serializers.ModelSerializer):
    user_id = serializers.UUIDField(read_only=True, allow_null=True)

    class Meta:
        model = SystemLog
        fields = ["id", "timestamp", "level", "category", "user_id", "message", "details", "ip_address"]


class AuditLogSerializer(serializers.ModelSerializer):
    user_id = serializers.UUIDField(read_only=True, allow_null=True)

    class Meta:
        model = AuditLog
        fields = ["id", "timestamp", "user_id", "action", "resource", "resource_id", "details", "ip_address"]


class LogQuerySerializer(serializers.Serializer):
    level = serializers.ChoiceField(choices=LogLevel.choices, required=False)
    category = serializers.ChoiceField(choices=LogCategory.choices, required=False)
    user_id = serializers.UUIDField(required=False)
    action = serializers.CharField(required=False, max_length=64)
    search = serializers.CharField(required=False, max_length=200)
    start_date = serializers.DateTimeField(required=False)
    end_date = serializers.DateTimeField(required=False)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=10000, default=100)

    def to_internal_value(self, data):  # type: ignore[no-untyped-def]
        data = {k: (v.upper() if k in ("level", "category") and isinstance(v, str) else v) for k, v in data.items()}
        return super().to_internal_value(data)


class LogExportSerializer(StrictSerializer):
    kind = serializers.ChoiceField(choices=["system", "audit"])
    format = serializers.ChoiceField(choices=["csv", "json"])
    start_date = serializers.DateTimeField(required=False)
    end_date = serializers.DateTimeField(required=False)
