"""`/settings/`: exchange keys, the engine config form, per-symbol overrides, the webhook, notification
channels and config backup (docs/web.md#settings).

The page only reads. Each section's form posts to its own view below, which calls the same service the
API calls (`exchanges.services`, `positions.services.configs.config_set`, `accounts.services`,
`notifications.services`) and redirects back to its anchor with a message; when the service refuses, the
page is rendered again (400) with what was typed (never a secret) and each error next to its field.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.http import require_GET, require_POST

from accounts.api.serializers import AccountSerializer
from accounts.middleware import client_ip
from accounts.roles import user_may_trade
from accounts.services import webhook_secret_regenerate
from exchanges import selectors as exchange_selectors
from exchanges import services as exchange_services
from exchanges.choices import ExchangeMode
from exchanges.precision import unified_symbol
from notifications import selectors as notification_selectors
from notifications import services as notification_services
from notifications.choices import ChannelKind, EventType
from positions.config import ConfigError, layer_engine_config, parse_engine_config, resolve_engine_config
from positions.grid import GridConfigError
from positions.models import EngineConfig
from positions.services.configs import config_set
from positions.webhook import alert_template, timeframe_normalize

from .. import config_form
from ..pages import AuthedRequest

EXCHANGE_SUGGESTIONS = ("simulator", "binance", "bybit", "okx", "kucoin", "kraken", "coinbase")
SECRET_FIELDS = {
    ChannelKind.TELEGRAM: "bot_token",
    ChannelKind.DISCORD: "webhook_url",
    ChannelKind.SLACK: "webhook_url",
}
MAX_BACKUP_BYTES = 256 * 1024


def _back(anchor: str) -> HttpResponseRedirect:
    return HttpResponseRedirect(f"/settings/#{anchor}")


def _require_trader(request: AuthedRequest) -> None:
    """The API's trading permission (`accounts.permissions.IsTraderOrHigher`): viewers only read."""
    if not user_may_trade(user=request.user):
        raise PermissionDenied("Viewers can read but not change anything; this needs the trader role.")


def _stored(user: Any) -> dict[str, Any]:
    return EngineConfig.objects.filter(user=user).values_list("data", flat=True).first() or {}


# ------------------------------------------------------------------------------------------------ page


def _generated_levels(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The levels a saved 3Commas generator makes (the engine's own `GridGenerator.levels`)."""
    if not isinstance(config.get("generator"), dict):
        return []
    try:
        _, grid = parse_engine_config(config)
    except (ConfigError, GridConfigError):
        return []
    volumes = grid.generator.volumes() if grid.generator else []
    return [
        {"level": i, "gap": level.gap_percent, "weight": level.weight_percent, "tp": level.tp_percent, "usd": usd}
        for i, (level, usd) in enumerate(zip(grid.levels, volumes, strict=False))
    ]


def _alert_messages(user: Any, exchanges: list[Any]) -> dict[str, Any]:
    enabled = [c.exchange_name for c in exchanges if c.is_enabled]
    exchange = enabled[0] if enabled else "{{exchange}}"
    secret = user.webhook_secret
    entry = json.dumps(alert_template(secret=secret, exchange=exchange), indent=2)
    exit_ = json.dumps(alert_template(secret=secret, exchange=exchange, exit_signal=True), indent=2)
    masked = f"****{secret[-4:]}"
    return {
        "entry": entry,
        "exit": exit_,
        "entry_shown": entry.replace(secret, masked),
        "exit_shown": exit_.replace(secret, masked),
        "exchange": exchange,
        "placeholder_exchange": not enabled,
    }


def _channel_views(
    user: Any, typed: dict[str, dict[str, Any]] | None = None, errors: dict[str, dict[str, str]] | None = None
) -> list[dict[str, Any]]:
    current = notification_selectors.notification_settings_get(user=user)["channels"]
    event_choices = [(e.value, e.label) for e in EventType if e != EventType.TEST]
    views = []
    for kind in ChannelKind:
        view = dict(current[kind.value])
        own_typed = (typed or {}).get(kind.value)
        own_errors = (errors or {}).get(kind.value, {})
        if own_typed is not None:
            view["enabled"] = own_typed["enabled"]
            view["events"] = own_typed["events"]
        chosen = set(view.get("events") or [])
        fields = []
        if kind == ChannelKind.EMAIL:
            fields.append(("address", "Address", "email", view.get("address", ""), "Blank: your account's address."))
        if kind == ChannelKind.TELEGRAM:
            fields.append(("chat_id", "Chat id", "text", view.get("chat_id", ""), ""))
        secret_name = SECRET_FIELDS.get(kind)
        if secret_name:
            masked = view.get(secret_name) or ""
            label = "Bot token" if secret_name == "bot_token" else "Webhook URL"
            hint = f"Stored: {masked}. Blank keeps it." if masked else "Not set."
            fields.append((secret_name, label, "password", "", hint))
        for index, (name, *_) in enumerate(fields):
            if own_typed is not None and name in own_typed and name != secret_name:
                fields[index] = (*fields[index][:3], own_typed[name], fields[index][4])
        views.append(
            {
                "kind": kind.value,
                "label": kind.label,
                "view": view,
                "fields": [
                    {"name": n, "label": lab, "type": t, "value": v, "help": h, "errors": own_errors.get(n)}
                    for n, lab, t, v, h in fields
                ],
                "events": [(value, label, value in chosen) for value, label in event_choices],
                "other_errors": {k: v for k, v in own_errors.items() if k not in {f[0] for f in fields}},
            }
        )
    return views


def _render(
    request: AuthedRequest,
    *,
    status: int = 200,
    engine: config_form.EngineForm | None = None,
    key_form: dict[str, Any] | None = None,
    override_form: dict[str, Any] | None = None,
    channels: list[dict[str, Any]] | None = None,
    restore_errors: dict[str, list[str]] | None = None,
) -> HttpResponse:
    user = request.user
    stored = _stored(user)
    config = resolve_engine_config(stored)
    exchanges = list(exchange_selectors.exchange_config_list(user=user))
    overrides = stored.get("overrides") or {}
    context = {
        "may_trade": user_may_trade(user=user),
        "keys": exchanges,
        "modes": ExchangeMode.choices,
        "exchange_suggestions": EXCHANGE_SUGGESTIONS,
        "key_form": key_form or {"values": {"mode": ExchangeMode.PAPER}, "errors": {}},
        "engine": engine or config_form.form_from_config(config),
        "generated_levels": _generated_levels(config),
        "preview_exchanges": [c.exchange_name for c in exchanges] or ["simulator"],
        "overrides": [
            {"scope": scope, "values": json.dumps(values, indent=1)} for scope, values in sorted(overrides.items())
        ],
        "override_form": override_form or {"values": {}, "errors": {}},
        "account": AccountSerializer(user).data,
        "alerts": _alert_messages(user, exchanges),
        "channels": channels or _channel_views(user),
        "deliveries": list(notification_selectors.delivery_list(user=user, limit=20)),
        "restore_errors": restore_errors,
        "stored_keys": len([k for k in stored if k != "overrides"]),
    }
    return render(request, "web/settings.html", context, status=status)


@login_required
@require_GET
def settings_page(request: AuthedRequest) -> HttpResponse:
    return _render(request)


# ------------------------------------------------------------------------------------------ exchange keys


def _errors_of(exc: ValidationError) -> dict[str, list[str]]:
    if hasattr(exc, "error_dict"):
        return {name: [str(m) for m in msgs] for name, msgs in exc.message_dict.items()}
    return {"form": [str(m) for m in exc.messages]}


@login_required
@require_POST
def key_add(request: AuthedRequest) -> HttpResponse:
    _require_trader(request)
    post = request.POST
    exchange, mode = post.get("exchange", "").strip(), post.get("mode", "")
    try:
        config, created = exchange_services.exchange_config_store(
            user=request.user,
            exchange_name=exchange,
            mode=mode,
            api_key=post.get("api_key", "").strip(),
            api_secret=post.get("api_secret", "").strip(),
            password=post.get("password", "").strip() or None,
            confirm_live=post.get("confirm_live") == "on",
            ip=client_ip(request),
        )
    except ValidationError as exc:
        # What was typed comes back except the key, secret and password (write-only).
        values = {"exchange": exchange, "mode": mode, "confirm_live": post.get("confirm_live") == "on"}
        return _render(request, status=400, key_form={"values": values, "errors": _errors_of(exc)})
    verb = "stored" if created else "replaced"
    messages.success(
        request, f"{config.exchange_name} keys {verb} ({config.mode}). Validate them to test the connection."
    )
    return _back("keys")


def _own_key(request: AuthedRequest, exchange: str) -> Any:
    config = exchange_selectors.exchange_config_get(user=request.user, exchange_name=exchange)
    if config is None:
        raise Http404("No such exchange config.")
    return config


@login_required
@require_POST
def key_validate(request: AuthedRequest, exchange: str) -> HttpResponse:
    _require_trader(request)
    config = exchange_services.exchange_config_validate(
        config=_own_key(request, exchange), actor=request.user, ip=client_ip(request)
    )
    if config.is_validated:
        messages.success(request, f"{config.exchange_name}: connection works. {config.validation_message}")
    else:
        messages.error(request, f"{config.exchange_name}: validation failed: {config.validation_message}")
    return _back("keys")


@login_required
@require_POST
def key_mode(request: AuthedRequest, exchange: str) -> HttpResponse:
    _require_trader(request)
    config = _own_key(request, exchange)
    try:
        config = exchange_services.exchange_config_set_mode(
            config=config,
            mode=request.POST.get("mode", ""),
            confirm_live=request.POST.get("confirm_live") == "on",
            actor=request.user,
            ip=client_ip(request),
        )
    except ValidationError as exc:
        for name, reasons in _errors_of(exc).items():
            messages.error(request, f"{config.exchange_name} {name}: {' '.join(reasons)}")
        return _back("keys")
    messages.success(request, f"{config.exchange_name} is now in {config.mode} mode; validate it again.")
    return _back("keys")


@login_required
@require_POST
def key_delete(request: AuthedRequest, exchange: str) -> HttpResponse:
    _require_trader(request)
    config = _own_key(request, exchange)
    try:
        exchange_services.exchange_config_delete(config=config, actor=request.user, ip=client_ip(request))
    except exchange_services.ExchangeConfigInUseError as exc:
        messages.error(request, str(exc))
        return _back("keys")
    messages.success(request, f"{config.exchange_name} keys deleted.")
    return _back("keys")


# ------------------------------------------------------------------------------------------ engine config


@login_required
@require_POST
def engine_save(request: AuthedRequest) -> HttpResponse:
    _require_trader(request)
    stored = _stored(request.user)
    typed: dict[str, str] = {}
    try:
        patch, typed = config_form.config_from_post(request.POST, stored=stored)
        config_set(user=request.user, data=patch, partial=True, ip=client_ip(request))
    except config_form.FormDataError as exc:
        # Nothing is saved; the rest of the form is still checked (as config_set would), so every error shows.
        errors = dict(exc.errors)
        candidate = layer_engine_config(stored, exc.patch)
        try:
            parse_engine_config({key: value for key, value in candidate.items() if value is not None})
        except ConfigError as more:
            for path, reasons in more.errors.items():
                errors.setdefault(path, reasons)
        return _render(request, status=400, engine=config_form.form_from_post(exc.typed, errors))
    except ConfigError as exc:
        return _render(request, status=400, engine=config_form.form_from_post(typed, exc.errors))
    messages.success(request, "Engine config saved.")
    return _back("engine")


# ------------------------------------------------------------------------------------------------ overrides


def _scope(user: Any, symbol: str, timeframe: str, errors: dict[str, list[str]]) -> str:
    """`BTCUSDT` or `BTC/USDT` (and `60` or `1h`) as the config's override key, `BTC/USDT` or `BTC/USDT:1h`."""
    raw = symbol.strip()
    unified = ""
    if not raw:
        errors["symbol"] = ["is required"]
    else:
        for config in exchange_selectors.exchange_config_list(user=user):
            hit = exchange_selectors.market_symbol_resolve(exchange_name=config.exchange_name, raw=raw)
            if hit is not None:
                unified = hit[0]
                break
        if not unified and raw.isascii() and len(raw) <= 40:
            unified = unified_symbol(raw) or ""  # no market rules know it: the rule the webhook falls back on
        if not unified:
            errors["symbol"] = [f"unknown symbol {raw[:40]!r} on your exchanges: write it as BASE/QUOTE (BTC/USDT)"]
    tf = timeframe.strip()
    if tf:
        normal = timeframe_normalize(tf)
        if not normal:
            errors["timeframe"] = [
                f"unknown timeframe {tf[:8]!r}: use 15m, 1h, 4h, 1d or TradingView's 15, 60, 240, 1D"
            ]
        tf = normal
    return f"{unified}:{tf}" if tf else unified


@login_required
@require_POST
def override_save(request: AuthedRequest) -> HttpResponse:
    _require_trader(request)
    post = request.POST
    stored = _stored(request.user)
    overrides = dict(stored.get("overrides") or {})
    errors: dict[str, list[str]] = {}
    existing = post.get("scope", "")
    scope = (
        existing
        if existing in overrides
        else _scope(request.user, post.get("symbol", ""), post.get("timeframe", ""), errors)
    )
    text = post.get("values", "").strip() or "{}"
    values: Any = None
    try:
        values = json.loads(text)
    except json.JSONDecodeError as exc:
        errors["values"] = [f"not valid JSON ({exc.msg} at character {exc.pos})"]
    if values is not None and not isinstance(values, dict):
        errors["values"] = ['must be a JSON object of settings, e.g. {"capital_usd": "500"}']
    if not errors:
        overrides[scope] = values
        try:
            config_set(user=request.user, data={"overrides": overrides}, partial=True, ip=client_ip(request))
        except ConfigError as exc:
            prefix = f"overrides.{scope}"
            for path, reasons in exc.errors.items():
                if path == prefix or path.startswith(prefix + "."):
                    key = path[len(prefix) + 1 :] or "values"
                    errors.setdefault("values", []).extend(f"{key}: {r}" for r in reasons)
                else:
                    errors.setdefault("form", []).extend(f"{path}: {r}" for r in reasons)
    if errors:
        form = {
            "values": {k: post.get(k, "") for k in ("symbol", "timeframe", "values", "scope")},
            "errors": errors,
            "editing": existing if existing in overrides else "",
        }
        return _render(request, status=400, override_form=form)
    messages.success(request, f"Override for {scope} saved.")
    return _back("overrides")


@login_required
@require_POST
def override_delete(request: AuthedRequest) -> HttpResponse:
    _require_trader(request)
    stored = _stored(request.user)
    overrides = dict(stored.get("overrides") or {})
    scope = request.POST.get("scope", "")
    if scope not in overrides:
        raise Http404("No such override.")
    del overrides[scope]
    try:
        config_set(user=request.user, data={"overrides": overrides or None}, partial=True, ip=client_ip(request))
    except ConfigError as exc:
        messages.error(request, f"Not removed: {exc}")
        return _back("overrides")
    messages.success(request, f"Override for {scope} removed.")
    return _back("overrides")


# -------------------------------------------------------------------------------------------------- webhook


@login_required
@require_POST
def webhook_regenerate(request: AuthedRequest) -> HttpResponse:
    webhook_secret_regenerate(user=request.user, ip=client_ip(request))
    messages.success(request, "New webhook secret made: update the message in your TradingView alerts.")
    return _back("webhook")


# ------------------------------------------------------------------------------------------- notifications


def _own_kind(kind: str) -> str:
    if kind not in ChannelKind.values:
        raise Http404("No such channel.")
    return kind


@login_required
@require_POST
def notification_save(request: AuthedRequest, kind: str) -> HttpResponse:
    kind = _own_kind(kind)
    post = request.POST
    values: dict[str, Any] = {"enabled": post.get("enabled") == "on", "events": post.getlist("events")}
    for name in ("address", "chat_id"):
        if name in post:
            values[name] = post.get(name, "").strip()
    secret_name = SECRET_FIELDS.get(ChannelKind(kind))
    if secret_name and post.get(secret_name, "").strip():
        values[secret_name] = post.get(secret_name, "").strip()
    try:
        notification_services.notification_settings_set(user=request.user, data={"channels": {kind: values}})
    except notification_services.ChannelSettingsError as exc:
        own = {path.split(".", 1)[1] if path.startswith(kind + ".") else path: why for path, why in exc.fields.items()}
        typed = {kind: {k: v for k, v in values.items() if k != secret_name}}
        channels = _channel_views(request.user, typed=typed, errors={kind: own})
        return _render(request, status=400, channels=channels)
    messages.success(request, f"{ChannelKind(kind).label} settings saved.")
    return _back("notifications")


@login_required
@require_POST
def notification_test(request: AuthedRequest, kind: str) -> HttpResponse:
    kind = _own_kind(kind)
    label = ChannelKind(kind).label
    try:
        delivery = notification_services.channel_test(user=request.user, kind=kind)
    except notification_services.ChannelSettingsError as exc:
        messages.error(request, f"{label}: {'; '.join(exc.fields.values())}.")
        return _back("notifications")
    if delivery.status == "sent":
        messages.success(request, f"{label}: test message sent.")
    else:
        messages.error(request, f"{label}: test message not delivered: {delivery.error}")
    return _back("notifications")


# ------------------------------------------------------------------------------------------ backup/restore


@login_required
@require_GET
def config_download(request: AuthedRequest) -> HttpResponse:
    """The values the user set (defaults apply to the rest), as `PUT /api/config` takes them back."""
    body = json.dumps(_stored(request.user), indent=2, sort_keys=True)
    day = datetime.now(UTC).strftime("%Y-%m-%d")
    response = HttpResponse(body + "\n", content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="engine-config-{day}.json"'
    return response


@login_required
@require_POST
def config_restore(request: AuthedRequest) -> HttpResponse:
    _require_trader(request)
    upload = request.FILES.get("file")
    errors: dict[str, list[str]] = {}
    data: Any = None
    if upload is None:
        errors["file"] = ["choose a JSON file"]
    elif upload.size is not None and upload.size > MAX_BACKUP_BYTES:
        errors["file"] = [f"is {upload.size} bytes; a config backup is at most {MAX_BACKUP_BYTES}"]
    else:
        try:
            data = json.loads(upload.read().decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            errors["file"] = [f"is not JSON: {exc}"[:200]]
    if not errors:
        try:
            config_set(user=request.user, data=data, partial=False, ip=client_ip(request))
        except ConfigError as exc:
            errors = exc.errors
    if errors:
        messages.error(request, "Config not restored; nothing changed.")
        return _render(request, status=400, restore_errors=errors)
    messages.success(request, "Config restored from the file.")
    return _back("backup")
