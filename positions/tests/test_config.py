"""The engine config's rules (positions.config): defaults from one place, and never against the user.

Pure functions, no database: `resolve_engine_config`, `parse_engine_config`, `effective_config`,
`engine_setting`, and the `grid_preview` command on a market-rules file.
"""

from __future__ import annotations

import json
from decimal import Decimal
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command

from positions.config import (
    ENGINE_DEFAULTS,
    ENGINE_KEYS,
    ConfigError,
    default_engine_config,
    effective_config,
    engine_setting,
    layer_engine_config,
    parse_engine_config,
    resolve_engine_config,
)
from positions.grid import (
    DEFAULT_CAPITAL_USD,
    DEFAULT_ENTRY_ORDER_TYPE,
    DEFAULT_MAX_PYRAMIDS,
    DEFAULT_TP_AGGREGATE_PERCENT,
    DEFAULT_TP_MODE,
    GridConfig,
    capital_for_pyramid,
    compute_grid,
    default_grid_config,
    grid_defaults_for,
    parse_grid_config,
)
from positions.tests.test_grid import BTC

BUILT_IN_RULES = Path(__file__).resolve().parents[2] / "exchanges" / "simulator" / "default_exchange_info.json"

# A generator (docs/engine.md#generator): base 20, safety 20 × 1.5^(i−1) for 8 orders; total 20 + 985.15625.
GENERATOR: dict[str, Any] = {
    "base_order_usd": "20",
    "safety_order_usd": "20",
    "max_safety_orders": 8,
    "price_deviation_percent": "1.2",
    "step_scale": "1.2",
    "volume_scale": "1.5",
    "tp_percent": "1.2",
}
GENERATOR_TOTAL = Decimal("1005.15625")


def _level(gap: str, weight: str, tp: str = "1") -> dict[str, str]:
    return {"gap_percent": gap, "weight_percent": weight, "tp_percent": tp}


def _errors(data: dict[str, Any]) -> dict[str, list[str]]:
    with pytest.raises(ConfigError) as caught:
        parse_engine_config(data)
    return caught.value.errors


# -------------------------------------------------------------------------------- one place for defaults


def test_the_grid_defaults_and_the_parser_fallbacks_are_the_same_values() -> None:
    defaults = default_grid_config()
    assert Decimal(defaults["capital_usd"]) == DEFAULT_CAPITAL_USD
    assert Decimal(defaults["tp_aggregate_percent"]) == DEFAULT_TP_AGGREGATE_PERCENT
    assert defaults["max_pyramids"] == DEFAULT_MAX_PYRAMIDS
    assert (defaults["entry_order_type"], defaults["tp_mode"]) == (DEFAULT_ENTRY_ORDER_TYPE, DEFAULT_TP_MODE)
    # A grid parsed from only its levels falls back to the very values the defaults hand out.
    minimal = parse_grid_config({"levels": defaults["levels"], "capital_usd": defaults["capital_usd"]})
    assert minimal == parse_grid_config(defaults)
    assert GridConfig(levels=minimal.levels, capital_usd=DEFAULT_CAPITAL_USD) == minimal


def test_the_default_config_is_every_key_once() -> None:
    config = default_engine_config()
    assert set(config) == ENGINE_KEYS - {"generator", "pyramid_capitals", "cancel_dca_beyond_percent"}
    assert {key: config[key] for key in ENGINE_DEFAULTS} == ENGINE_DEFAULTS
    assert config["overrides"] == {}
    merged, grid = parse_engine_config({})
    assert merged == config
    assert grid == parse_grid_config(default_grid_config())


@pytest.mark.parametrize("key", sorted(ENGINE_KEYS))
def test_engine_setting_answers_the_resolved_default_for_a_config_without_the_key(key: str) -> None:
    assert engine_setting({}, key) == default_engine_config().get(key, {} if key == "overrides" else None)
    assert engine_setting(None, key) == engine_setting({}, key)


def test_engine_setting_reads_the_config_first_and_refuses_unknown_keys() -> None:
    assert engine_setting({"trailing_stop_percent": "2"}, "trailing_stop_percent") == "2"
    assert engine_setting({"trailing_stop_percent": None}, "trailing_stop_percent") == "3"
    # A generator's snapshot has no capital: its sizes stand, and no default brings 200 back.
    assert engine_setting({"generator": GENERATOR}, "capital_usd") is None
    assert engine_setting({"generator": GENERATOR}, "levels") is None
    assert engine_setting({"levels": [_level("0", "100")]}, "capital_usd") == "200"
    with pytest.raises(KeyError):
        engine_setting({}, "max_open_group")


@pytest.mark.parametrize(
    "config", [{"generator": GENERATOR, "max_pyramids": 1}, {"levels": [_level("0", "100")]}, {"max_pyramids": 1}]
)
def test_engine_setting_agrees_with_the_resolved_config(config: dict[str, Any]) -> None:
    resolved = resolve_engine_config(config)
    for key in ENGINE_KEYS:
        assert engine_setting(config, key) == resolved.get(key), key


def test_engine_setting_hands_out_copies() -> None:
    engine_setting({}, "levels").append("junk")
    assert len(engine_setting({}, "levels")) == 5


# -------------------------------------------------------------------------------- a generator's own sizes


def test_a_generator_without_capital_keeps_its_own_sizes() -> None:
    merged, grid = parse_engine_config({"generator": GENERATOR})
    assert "capital_usd" not in merged and "levels" not in merged
    assert grid.capital_usd is None
    assert capital_for_pyramid(grid, 0) == GENERATOR_TOTAL
    legs = compute_grid(config=grid, pyramid_index=0, entry_price=Decimal("65000"), rules=BTC)
    # The base order is 20 USDT, not 20 × 200 / 1005.15625 ≈ 3.98: 20 / 65000 = 0.0003076 → 0.00030.
    assert legs[0].quantity == Decimal("0.00030")
    assert legs[0].notional == Decimal("19.5000000")
    # The last safety order: 341.71875 / 52130.71 = 0.0065549 → 0.00655.
    assert legs[-1].quantity == Decimal("0.00655")


@pytest.mark.parametrize("capital", ["400", 400])
def test_a_generator_with_an_explicit_capital_is_scaled_to_it(capital: object) -> None:
    merged, grid = parse_engine_config({"generator": GENERATOR, "capital_usd": capital})
    assert merged["capital_usd"] == capital
    assert capital_for_pyramid(grid, 0) == Decimal(400)


def test_a_null_capital_means_not_given() -> None:
    merged, grid = parse_engine_config({"generator": GENERATOR, "capital_usd": None})
    assert "capital_usd" not in merged
    assert capital_for_pyramid(grid, 0) == GENERATOR_TOTAL
    # With levels a null capital takes the default one.
    _, grid = parse_engine_config({"levels": [_level("0", "100")], "capital_usd": None})
    assert capital_for_pyramid(grid, 0) == DEFAULT_CAPITAL_USD


def test_levels_without_capital_take_the_default_capital() -> None:
    merged, grid = parse_engine_config({"levels": [_level("0", "100")]})
    assert merged["capital_usd"] == "200"
    assert capital_for_pyramid(grid, 0) == Decimal(200)


def test_levels_and_generator_given_together_is_the_users_conflict() -> None:
    errors = _errors({"generator": GENERATOR, "levels": [_level("0", "100")]})
    assert errors == {"generator": ["give either levels or generator, not both"]}


# -------------------------------------------------------------------------------- defaults never invalidate


def test_max_pyramids_one_is_valid_although_the_default_names_pyramid_one() -> None:
    assert "1" in default_grid_config()["pyramid_specific_levels"]
    merged, grid = parse_engine_config({"max_pyramids": 1})
    assert merged["max_pyramids"] == 1
    assert merged["pyramid_specific_levels"] == {}
    assert grid.max_pyramids == 1 and dict(grid.pyramid_specific_levels) == {}


@pytest.mark.parametrize("max_pyramids", range(1, 51))
def test_every_valid_max_pyramids_is_accepted_alone(max_pyramids: int) -> None:
    _, grid = parse_engine_config({"max_pyramids": max_pyramids})
    assert grid.max_pyramids == max_pyramids


@pytest.mark.parametrize(
    "given",
    [
        {"generator": GENERATOR},
        {"generator": GENERATOR, "max_pyramids": 1},
        {"levels": [_level("0", "100")]},
        {"levels": [_level("0", "100")], "max_pyramids": 1, "tp_mode": "aggregate"},
        {"pyramid_capitals": {"4": "50"}},
        {"pyramid_specific_levels": {"0": [_level("0", "100")]}, "max_pyramids": 1},
        {"capital_usd": "5"},
        {"tp_aggregate_percent": "0.3", "entry_order_type": "market"},
        {"stop_loss_percent": "10", "trailing_enabled": True, "max_open_groups": 1},
        {"overrides": {"BTC/USDT": {"max_pyramids": 1}, "ETH/USDT:1h": {"generator": GENERATOR}}},
    ],
)
def test_a_valid_choice_of_the_user_is_never_refused_for_a_default(given: dict[str, Any]) -> None:
    merged, _ = parse_engine_config(given)
    for key, value in given.items():
        assert merged[key] == value


def test_an_empty_pyramid_entry_given_beyond_max_pyramids_says_nothing_and_is_accepted() -> None:
    # What a settings form sends back after reading the defaults: {"1": []} means "default levels".
    _, grid = parse_engine_config({"max_pyramids": 1, "pyramid_specific_levels": {"1": []}})
    assert grid.max_pyramids == 1 and dict(grid.pyramid_specific_levels) == {}


def test_values_the_user_gave_are_still_checked_against_each_other() -> None:
    errors = _errors(
        {
            "max_pyramids": 2,
            "pyramid_specific_levels": {"2": [_level("0", "100")]},
            "pyramid_capitals": {"3": "50"},
        }
    )
    assert errors == {
        "pyramid_specific_levels.2": ["pyramid index must be below max_pyramids (2), got 2"],
        "pyramid_capitals.3": ["pyramid index must be below max_pyramids (2), got 3"],
    }


def test_grid_defaults_for_drops_only_what_conflicts() -> None:
    assert grid_defaults_for({}) == default_grid_config()
    for_generator = grid_defaults_for({"generator": GENERATOR})
    assert "levels" not in for_generator and "capital_usd" not in for_generator
    assert grid_defaults_for({"generator": GENERATOR, "capital_usd": None}).keys() == for_generator.keys()
    assert grid_defaults_for({"max_pyramids": 2})["pyramid_specific_levels"] == {"1": []}
    assert grid_defaults_for({"max_pyramids": 1})["pyramid_specific_levels"] == {}
    # An invalid max_pyramids is the user's error to hear about; the defaults stay as they are.
    assert grid_defaults_for({"max_pyramids": "x"})["pyramid_specific_levels"] == {"1": []}
    assert grid_defaults_for({"max_pyramids": True})["pyramid_specific_levels"] == {"1": []}


def test_resolving_twice_changes_nothing() -> None:
    for given in (
        {},
        {"generator": GENERATOR},
        {"max_pyramids": 1, "stop_loss_percent": "4"},
        {"levels": [_level("0", "100")], "capital_usd": 10, "overrides": {"BTC/USDT": {"generator": GENERATOR}}},
    ):
        once = resolve_engine_config(given)
        assert resolve_engine_config(once) == once


# -------------------------------------------------------------------------------- overrides and snapshots


def test_an_override_generator_keeps_its_sizes_unless_some_layer_gives_a_capital() -> None:
    stored = {"overrides": {"BTC/USDT": {"generator": GENERATOR}}}
    merged, grid = effective_config(stored, symbol="BTC/USDT", timeframe="1h")
    assert capital_for_pyramid(grid, 0) == GENERATOR_TOTAL
    assert "levels" not in merged and "overrides" not in merged
    # Other symbols keep the default grid.
    _, other = effective_config(stored, symbol="ETH/USDT", timeframe="1h")
    assert capital_for_pyramid(other, 0) == DEFAULT_CAPITAL_USD and other.generator is None
    # A capital the user set (at the top or in the override) is the user's choice and scales the grid.
    _, scaled = effective_config({**stored, "capital_usd": "300"}, symbol="BTC/USDT", timeframe="1h")
    assert capital_for_pyramid(scaled, 0) == Decimal(300)
    timeframe_capital = {"overrides": {**stored["overrides"], "BTC/USDT:4h": {"capital_usd": "50"}}}
    _, scaled = effective_config(timeframe_capital, symbol="BTC/USDT", timeframe="4h")
    assert capital_for_pyramid(scaled, 0) == Decimal(50)


def test_a_timeframe_override_with_levels_replaces_a_symbol_override_generator() -> None:
    stored = {
        "overrides": {
            "BTC/USDT": {"generator": GENERATOR},
            "BTC/USDT:1h": {"levels": [_level("0", "50"), _level("-1", "50")]},
        }
    }
    merged, grid = effective_config(stored, symbol="BTC/USDT", timeframe="1h")
    assert grid.generator is None and len(grid.levels) == 2
    assert "generator" not in merged
    assert capital_for_pyramid(grid, 0) == DEFAULT_CAPITAL_USD


def test_an_override_max_pyramids_of_one_drops_the_default_pyramid_one_entry() -> None:
    merged, grid = effective_config({"overrides": {"BTC/USDT": {"max_pyramids": 1}}}, symbol="BTC/USDT", timeframe="1h")
    assert grid.max_pyramids == 1 and merged["pyramid_specific_levels"] == {}


def test_a_snapshot_resolves_to_the_same_grid() -> None:
    stored = {"generator": GENERATOR, "max_pyramids": 2, "overrides": {"BTC/USDT": {"tp_mode": "aggregate"}}}
    snapshot, grid = effective_config(stored, symbol="BTC/USDT", timeframe="1h")
    again, regrid = effective_config(json.loads(json.dumps(snapshot)), symbol="BTC/USDT", timeframe="1h")
    assert again == snapshot and regrid == grid
    assert capital_for_pyramid(regrid, 0) == GENERATOR_TOTAL


def test_a_stored_config_from_before_still_loads() -> None:
    # Stored configs used to hold every default next to the user's values, and may carry keys the
    # engine no longer knows: both load, unknown keys are ignored.
    legacy = {**default_engine_config(), "max_pyramids": 3, "retired_key": 1}
    merged, grid = effective_config(legacy, symbol="BTC/USDT", timeframe="1h")
    assert grid.max_pyramids == 3 and "retired_key" not in merged


def test_layering_replaces_levels_with_a_generator_and_back() -> None:
    levels = {"levels": [_level("0", "100")], "capital_usd": "100"}
    assert layer_engine_config(levels, {"generator": GENERATOR}) == {"generator": GENERATOR, "capital_usd": "100"}
    assert layer_engine_config({"generator": GENERATOR}, levels) == levels
    assert layer_engine_config(levels, {"max_pyramids": 1}) == {**levels, "max_pyramids": 1}


# -------------------------------------------------------------------------------- the grid_preview command


def _preview(tmp_path: Path, config: dict[str, Any]) -> list[dict[str, str]]:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    out = StringIO()
    call_command(
        "grid_preview",
        config=str(path),
        entry_price="65000",
        exchange="binance",
        symbol="BTC/USDT",
        market_rules=str(BUILT_IN_RULES),
        stdout=out,
    )
    return json.loads(out.getvalue())


def test_grid_preview_command_keeps_a_generators_sizes(tmp_path: Path) -> None:
    legs = _preview(tmp_path, {"generator": GENERATOR})
    assert len(legs) == 9
    assert (legs[0]["quantity"], legs[0]["notional"]) == ("0.00030", "19.5")
    assert legs[-1]["quantity"] == "0.00655"
    scaled = _preview(tmp_path, {"generator": GENERATOR, "capital_usd": "2010.3125"})  # twice the total
    assert scaled[-1]["quantity"] == "0.01311"  # 683.4375 / 52130.71 = 0.013110 → 0.01311


def test_grid_preview_command_accepts_max_pyramids_one(tmp_path: Path) -> None:
    legs = _preview(tmp_path, {"max_pyramids": 1})
    assert [leg["level"] for leg in legs] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    "key", ["queue_max_size", "age_threshold_minutes", "queue_max_age_minutes", "cooldown_minutes_after_loss"]
)
def test_optional_whole_numbers_have_an_upper_bound(key):
    """A huge value is refused when saved, not stored to overflow a background task's date arithmetic."""
    with pytest.raises(ConfigError) as refused:
        parse_engine_config({key: 10**20})
    assert key in refused.value.errors
    parse_engine_config({key: 60})
