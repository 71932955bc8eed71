"""The engine config as an HTML form, and back (docs/web.md#settings).

The form is only a way of typing the flat config of `/api/config`: it turns the posted fields into the
same JSON object a client would send and hands it to the same service (`positions.services.configs.
config_set`), whose validation (`positions.config.parse_engine_config`) names every bad field. Those names
(`capital_usd`, `levels[2].weight_percent`, `generator.tp_percent`) are the inputs' names, so an error lands
next to its input. Nothing here decides whether a value is valid: only how the text typed becomes JSON.

A key the user never set and leaves at its default stays unset (it keeps following the default,
docs/engine.md#config); a key they set keeps being sent. Every key of the config appears, those without a
form of their own as a JSON input, so a key added to the engine later is editable here without an edit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from positions.config import BOOLEANS, CHOICES, ENGINE_KEYS, default_engine_config
from positions.grid import ENTRY_ORDER_TYPES, TP_MODES
from positions.rules.pool import QUEUE_RULES

LEVEL_KEYS = ("gap_percent", "weight_percent", "tp_percent")
GENERATOR_KEYS = (
    ("base_order_usd", "Base order (USD)"),
    ("safety_order_usd", "Safety order (USD)"),
    ("max_safety_orders", "Safety orders (count)"),
    ("price_deviation_percent", "Price deviation %"),
    ("step_scale", "Step scale"),
    ("volume_scale", "Volume scale"),
    ("tp_percent", "Take profit %"),
)
GENERATOR_DEFAULTS = {
    "base_order_usd": "20",
    "safety_order_usd": "20",
    "max_safety_orders": "8",
    "price_deviation_percent": "1.2",
    "step_scale": "1.2",
    "volume_scale": "1.5",
    "tp_percent": "1.2",
}
ALL_CHOICES: dict[str, tuple[str, ...]] = {**CHOICES, "tp_mode": TP_MODES, "entry_order_type": ENTRY_ORDER_TYPES}

# (section, [(key, label, help)]): the order the form shows the keys in. `levels` and `generator` have
# their own table and block; any key of the config not listed lands in "Other".
SECTIONS: tuple[tuple[str, str, tuple[tuple[str, str, str], ...]], ...] = (
    (
        "grid",
        "Grid and capital",
        (
            ("capital_usd", "Capital per pyramid (USD)", "Blank with a generator: its base + safety orders."),
            ("max_pyramids", "Max pyramids", "Entries into one group, the first included."),
            ("entry_order_type", "Entry order type", ""),
            ("cancel_dca_beyond_percent", "Cancel DCA legs beyond %", "Blank: never."),
            ("pyramid_specific_levels", "Levels per pyramid (JSON)", 'e.g. {"1": [...levels...]}; [] = default.'),
            ("pyramid_capitals", "Capital per pyramid index (JSON)", 'e.g. {"0": "200", "1": "100"}'),
        ),
    ),
    (
        "tp",
        "Take profit and exits",
        (
            ("tp_mode", "TP mode", "per_leg, aggregate, hybrid or pyramid_aggregate."),
            ("tp_aggregate_percent", "Aggregate TP %", "On the average entry (aggregate and hybrid modes)."),
            ("stop_loss_percent", "Stop loss %", "Below the average entry. Blank: no stop."),
            ("max_slippage_percent", "Max slippage %", ""),
            ("slippage_action", "On slippage", ""),
            ("use_signal_size", "Use the alert's order size", ""),
        ),
    ),
    (
        "trailing",
        "Trailing stop",
        (
            ("trailing_enabled", "Trailing stop on", ""),
            ("trailing_activation_percent", "Activates at profit %", ""),
            ("trailing_stop_percent", "Trails by %", ""),
        ),
    ),
    (
        "pool",
        "Pool and queue",
        (
            ("max_open_groups", "Max open groups", "The pool: groups open at once."),
            ("queue_max_size", "Queue size", "Blank: no limit."),
            ("queue_max_age_minutes", "Queued signal expires after (min)", "0: never."),
            ("queue_priority_rules", "Queue priority rules", "In order, comma-separated: " + ", ".join(QUEUE_RULES)),
        ),
    ),
    (
        "risk",
        "Risk engine",
        (
            ("risk_enabled", "Risk engine on", ""),
            ("loss_threshold_percent", "Loss threshold %", "Negative: a loser is at or below it."),
            ("post_full_wait_minutes", "Wait after full (min)", ""),
            ("age_threshold_minutes", "Minimum age (min)", "Blank: none."),
            ("max_winners_to_combine", "Winners to combine", ""),
            ("min_close_notional", "Min close notional (USD)", ""),
            ("risk_eligibility", "Eligible when", ""),
            ("risk_timer_reset_on_pyramid", "A pyramid restarts the timer", ""),
            ("risk_evaluate_on_fill", "Also run after each entry fill", ""),
        ),
    ),
    (
        "guards",
        "Guards",
        (
            ("pause_blocks_pyramids", "Pause blocks pyramids too", ""),
            ("max_total_exposure_usd", "Exposure cap (USD)", "Blank: no cap."),
            ("exposure_action", "Over the cap", ""),
            ("daily_loss_limit_usd", "Daily loss limit (USD)", "Blank: off."),
            ("cooldown_minutes_after_loss", "Cooldown after a loss (min)", "0: off."),
            ("max_alert_lag_seconds", "Max alert lag (s)", "0: off."),
        ),
    ),
    (
        "ml",
        "ML entry filter",
        (
            ("ml_filter_enabled", "Filter entries", ""),
            ("ml_filter_threshold", "Threshold", "Probability, 0 to 1."),
        ),
    ),
)
OWN_BLOCKS = {"levels", "generator", "overrides"}
WHOLE_KEYS = {
    "max_pyramids",
    "max_open_groups",
    "queue_max_size",
    "queue_max_age_minutes",
    "post_full_wait_minutes",
    "age_threshold_minutes",
    "max_winners_to_combine",
    "cooldown_minutes_after_loss",
    "max_alert_lag_seconds",
}
JSON_KEYS = {"pyramid_specific_levels", "pyramid_capitals"}
LIST_KEYS = {"queue_priority_rules"}
_LEVEL_NAME = re.compile(r"^levels\[(\d{1,3})\]\.(gap_percent|weight_percent|tp_percent)$")
_WHOLE = re.compile(r"^-?\d{1,12}$")


@dataclass
class Field:
    name: str
    label: str
    help: str
    kind: str  # text | whole | bool | choice | json
    value: str = ""
    checked: bool = False
    choices: tuple[str, ...] = ()
    errors: list[str] = field(default_factory=list)


@dataclass
class EngineForm:
    """What the template shows: the typed (or stored) values as text, and the errors by field."""

    source: str  # levels | generator
    levels: list[dict[str, Field]]
    generator: list[Field]
    sections: list[tuple[str, str, list[Field]]]
    errors: dict[str, list[str]] = field(default_factory=dict)  # unplaced errors, by path
    level_errors: list[str] = field(default_factory=list)
    generator_errors: list[str] = field(default_factory=list)
    generated_levels: list[dict[str, str]] = field(default_factory=list)
    invalid: bool = False


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return ", ".join(value)
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _kind(key: str, default: Any) -> str:
    if key in BOOLEANS or isinstance(default, bool):
        return "bool"
    if key in ALL_CHOICES:
        return "choice"
    if key in WHOLE_KEYS or (isinstance(default, int) and not isinstance(default, bool)):
        return "whole"
    if key in LIST_KEYS:
        return "list"
    if key in JSON_KEYS or isinstance(default, dict | list):
        return "json"
    return "text"


def _ordered_keys() -> list[tuple[str, str, list[tuple[str, str, str]]]]:
    known = ENGINE_KEYS
    listed: set[str] = set(OWN_BLOCKS)
    out: list[tuple[str, str, list[tuple[str, str, str]]]] = []
    for slug, title, keys in SECTIONS:
        present = [item for item in keys if item[0] in known]
        listed |= {item[0] for item in keys}
        out.append((slug, title, present))
    other = [(key, key, "JSON value") for key in sorted(known) if key not in listed]
    if other:
        out.append(("other", "Other settings", other))
    return out


def form_from_config(config: Mapping[str, Any]) -> EngineForm:
    """The form filled from a resolved config (`config_get`)."""
    defaults = default_engine_config()
    generator = config.get("generator")
    levels = config.get("levels") or []
    source = "generator" if isinstance(generator, dict) else "levels"
    level_rows = [
        {key: Field(f"levels[{i}].{key}", key, "", "text", _text(level.get(key))) for key in LEVEL_KEYS}
        for i, level in enumerate(levels)
        if isinstance(level, dict)
    ]
    gen_values = generator if isinstance(generator, dict) else GENERATOR_DEFAULTS
    gen_fields = [
        Field(f"generator.{key}", label, "", "text", _text(gen_values.get(key, GENERATOR_DEFAULTS[key])))
        for key, label in GENERATOR_KEYS
    ]
    sections = []
    for slug, title, keys in _ordered_keys():
        fields = []
        for key, label, help_text in keys:
            kind = _kind(key, defaults.get(key))
            value = config.get(key)
            fields.append(
                Field(
                    key,
                    label,
                    help_text,
                    kind,
                    value=_text(value),
                    checked=value is True,
                    choices=ALL_CHOICES.get(key, ()),
                )
            )
        sections.append((slug, title, fields))
    return EngineForm(source=source, levels=level_rows, generator=gen_fields, sections=sections)


class FormDataError(ValueError):
    """Text that cannot even become JSON (a JSON field that does not parse): `errors` by field name."""

    def __init__(self, errors: dict[str, list[str]], typed: dict[str, str], patch: dict[str, Any]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors
        self.typed = typed
        self.patch = patch  # the rest of the form (the unreadable fields left out), to validate anyway


def _typed(kind: str, raw: str, name: str, errors: dict[str, list[str]]) -> Any:
    text = raw.strip()
    if kind == "whole":
        if not text:
            return None
        return int(text) if _WHOLE.match(text) else text  # not a whole number: the validation says so
    if kind == "list":
        return [part.strip() for part in text.split(",") if part.strip()]
    if kind == "json":
        if not text:
            return None
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            errors.setdefault(name, []).append(f"not valid JSON ({exc.msg} at character {exc.pos})")
            return None
    return text or None


def level_rows_posted(post: Mapping[str, Any]) -> list[dict[str, str]]:
    """The levels table's rows as typed, in row order, blank rows dropped."""
    rows: dict[int, dict[str, str]] = {}
    for name in post:
        match = _LEVEL_NAME.match(name)
        if match:
            rows.setdefault(int(match.group(1)), {})[match.group(2)] = str(post.get(name, "")).strip()
    return [row for _, row in sorted(rows.items()) if any(row.values())]


def config_from_post(post: Mapping[str, Any], *, stored: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """The posted form as a PATCH of the config (`config_set(partial=True)`), and the text as typed.

    `stored` is what the user set so far (`EngineConfig.data`). A key neither set before nor changed
    from its default is sent as null (stays unset). Raises `FormDataError` for JSON fields that do not
    parse (nothing is saved then, like any other error).
    """
    defaults = default_engine_config()
    errors: dict[str, list[str]] = {}
    typed: dict[str, str] = {}
    patch: dict[str, Any] = {}

    def put(key: str, value: Any) -> None:
        if key not in stored and _same(value, defaults.get(key)):
            value = None
        patch[key] = value

    source = "generator" if post.get("grid_source") == "generator" else "levels"
    typed["grid_source"] = source
    rows = level_rows_posted(post)
    for index, row in enumerate(rows):
        for key in LEVEL_KEYS:
            typed[f"levels[{index}].{key}"] = row.get(key, "")
    generator = {key: str(post.get(f"generator.{key}", "")).strip() for key, _ in GENERATOR_KEYS}
    for key, value in generator.items():
        typed[f"generator.{key}"] = value
    if source == "generator":
        count = generator["max_safety_orders"]
        gen: dict[str, Any] = {key: value for key, value in generator.items() if value != ""}
        if count and _WHOLE.match(count):
            gen["max_safety_orders"] = int(count)
        patch["generator"] = gen
        patch["levels"] = None
    else:
        patch["generator"] = None
        put("levels", [{key: row.get(key, "") for key in LEVEL_KEYS} for row in rows])
    for _, _, keys in _ordered_keys():
        for key, _, _ in keys:
            kind = _kind(key, defaults.get(key))
            if kind == "bool":
                checked = post.get(key) in ("on", "true", "1")
                typed[key] = "true" if checked else "false"
                put(key, checked)
                continue
            raw = str(post.get(key, ""))
            typed[key] = raw
            value = _typed(kind, raw, key, errors)
            if key == "capital_usd" and source == "generator" and value is not None:
                patch[key] = value  # with a generator a capital typed in is meant, even the default's
            else:
                put(key, value)
    if errors:
        raise FormDataError(errors, typed, patch)
    return patch, typed


def _same(value: Any, default: Any) -> bool:
    return _plain(value) == _plain(default)


def _plain(value: Any) -> Any:
    """A value with its numbers as Decimals, for comparing what was typed with a default."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, int | float | str):
        try:
            return Decimal(str(value)).normalize()
        except InvalidOperation:
            return value
    return value


def form_from_post(typed: Mapping[str, str], errors: Mapping[str, list[str]]) -> EngineForm:
    """The form as the user typed it, each error next to its field (unplaced ones kept by path)."""
    form = form_from_config({})
    form.invalid = bool(errors)
    form.source = typed.get("grid_source", "levels")
    rows: dict[int, dict[str, Field]] = {}
    for name, value in typed.items():
        match = _LEVEL_NAME.match(name)
        if match:
            index, key = int(match.group(1)), match.group(2)
            rows.setdefault(index, {})[key] = Field(name, key, "", "text", value)
    form.levels = [rows[i] for i in sorted(rows)]
    by_name: dict[str, Field] = {}
    for row in form.levels:
        by_name.update({f.name: f for f in row.values()})
    for f in form.generator:
        f.value = typed.get(f.name, f.value)
        by_name[f.name] = f
    for _, _, fields in form.sections:
        for f in fields:
            if f.kind == "bool":
                f.checked = typed.get(f.name) == "true"
            else:
                f.value = typed.get(f.name, "")
            by_name[f.name] = f
    for path, reasons in errors.items():
        place_error(form, by_name, path, list(reasons))
    return form


def place_error(form: EngineForm, by_name: Mapping[str, Field], path: str, reasons: list[str]) -> None:
    """Next to the input named `path`, else the nearest enclosing one, else the table or block it is about."""
    if path in by_name:
        by_name[path].errors.extend(reasons)
        return
    if path == "levels" or path.startswith("levels["):
        detail = path[len("levels") :]
        form.level_errors.extend(f"{detail}: {r}" if detail else r for r in reasons)
        return
    if path == "generator":
        form.generator_errors.extend(reasons)
        return
    prefixes = sorted((name for name in by_name if path.startswith(name) and path[len(name)] in ".["), key=len)
    if prefixes:
        name = prefixes[-1]
        by_name[name].errors.extend(f"{path[len(name) :].lstrip('.')}: {r}" for r in reasons)
        return
    form.errors.setdefault(path, []).extend(reasons)
