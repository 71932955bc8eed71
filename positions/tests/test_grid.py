"""Tests for the grid calculator (positions.grid).

The worked examples below were computed by hand (the arithmetic is written next to each number);
the property tests run the calculator over the 22 real Binance markets recorded in
``../shared/data/exchange/binance_exchangeInfo_subset.json`` and skip when that folder is absent.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from exchanges.precision import MarketRules, market_rules_from_binance_symbol, validate_order
from positions.grid import (
    GridConfig,
    GridConfigError,
    GridError,
    GridLeg,
    capital_for_pyramid,
    compute_grid,
    default_grid_config,
    legs_to_json,
    levels_for_pyramid,
    parse_grid_config,
    trade_tp_price,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("SHARED_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))
EXCHANGE_INFO = SHARED_DATA / "exchange" / "binance_exchangeInfo_subset.json"


def _rules(symbol: str, tick: str, step: str, min_qty: str, min_notional: str, **extra: Any) -> MarketRules:
    base, quote = symbol.split("/")
    return MarketRules(
        symbol=symbol,
        exchange_symbol=base + quote,
        base=base,
        quote=quote,
        tick_size=Decimal(tick),
        step_size=Decimal(step),
        min_qty=Decimal(min_qty),
        min_notional=Decimal(min_notional),
        **extra,
    )


# The rules of these three markets as Binance sent them (see binance_exchangeInfo_subset.json);
# spelled out here so that the worked examples run without the shared data.
BTC = _rules("BTC/USDT", "0.01", "0.00001", "0.00001", "10", max_qty=Decimal("9000"), max_notional=Decimal("9000000"))
PEPE = _rules("PEPE/USDT", "0.00000001", "1", "1", "10", max_qty=Decimal("92233720368"))
ETH_BTC = _rules("ETH/BTC", "0.00001", "0.0001", "0.0001", "0.0001")
BTCUP = _rules("BTCUP/USDT", "0.001", "0.01", "0.01", "10", min_price=Decimal("0.6"), max_price=Decimal("11.39"))


def _level(gap: str, weight: str, tp: str = "1") -> dict[str, str]:
    return {"gap_percent": gap, "weight_percent": weight, "tp_percent": tp}


def _config(levels: list[dict[str, Any]], capital: str, **extra: Any) -> GridConfig:
    return parse_grid_config({"levels": levels, "capital_usd": capital, **extra})


def _as_tuples(legs: list[GridLeg]) -> list[tuple[int, str, str, str, str]]:
    return [(leg.level, str(leg.price), str(leg.quantity), str(leg.notional), str(leg.tp_price)) for leg in legs]


# --------------------------------------------------------------------------------------------------
# Worked examples


def test_contract_example_on_btc_at_65000() -> None:
    config = parse_grid_config(default_grid_config())
    legs = compute_grid(config=config, pyramid_index=0, entry_price=Decimal("65000"), rules=BTC)
    # capital 200 × 20% = 40 USDT a leg; qty = 40 / price rounded down to 0.00001.
    assert _as_tuples(legs) == [
        # 40/65000 = 0.000615.. → 0.00061; TP 65000 × 1.01 = 65650
        (0, "65000.00", "0.00061", "39.6500000", "65650.00"),
        # 65000 × 0.995 = 64675; 40/64675 = 0.000618.. → 0.00061; TP × 1.005 = 64998.375 → 64998.37
        (1, "64675.00", "0.00061", "39.4517500", "64998.37"),
        # 65000 × 0.99 = 64350; 40/64350 = 0.0006216 → 0.00062; TP × 1.02 = 65637
        (2, "64350.00", "0.00062", "39.8970000", "65637.00"),
        # 65000 × 0.985 = 64025; 40/64025 = 0.0006247 → 0.00062; TP × 1.015 = 64985.375 → 64985.37
        (3, "64025.00", "0.00062", "39.6955000", "64985.37"),
        # 65000 × 0.98 = 63700; 40/63700 = 0.000628 → 0.00062; TP × 1.01 = 64337
        (4, "63700.00", "0.00062", "39.4940000", "64337.00"),
    ]
    # Averages: (39.65 + 39.45175) / 0.00122 = 64837.5; × 1.015 (tp_aggregate 1.5) = 65810.0625.
    assert legs[1].cum_avg_price == Decimal("64837.5")
    assert legs[1].cum_tp_price == Decimal("65810.06")
    # (39.65 + 39.45175 + 39.897) / 0.00184 = 118.99875 / 0.00184 = 64673.2336956521739130434...
    assert legs[2].cum_avg_price == Decimal("64673.233695652173913043")
    assert legs[2].cum_tp_price == Decimal("65643.33")  # 64673.2336... × 1.015 = 65643.332...
    assert [leg.weight_percent for leg in legs] == [Decimal(20)] * 5
    assert all(leg.merged_levels == () for leg in legs)


def test_preview_json_matches_contract_shape() -> None:
    config = parse_grid_config(default_grid_config())
    legs = compute_grid(config=config, pyramid_index=0, entry_price=Decimal("65000"), rules=BTC)
    preview = legs_to_json(legs, BTC)
    assert preview[1] == {
        "level": 1,
        "price": "64675.00",
        "quantity": "0.00061",
        "notional": "39.45175",
        "tp_price": "64998.37",
        "cum_avg_price": "64837.50",
        "cum_tp_price": "65810.06",
    }
    # Without rules: the same values with trailing zeros dropped.
    assert legs_to_json(legs)[0]["price"] == "65000"
    assert json.loads(json.dumps(preview)) == preview


def test_pepe_with_one_satoshi_ticks_and_whole_coin_steps() -> None:
    config = parse_grid_config(default_grid_config())
    legs = compute_grid(config=config, pyramid_index=0, entry_price=Decimal("0.00001234"), rules=PEPE)
    assert _as_tuples(legs) == [
        # 40 / 0.00001234 = 3241491.08 → 3241491; × 0.00001234 = 39.99999894; TP 0.0000124634 → ..246
        (0, "0.00001234", "3241491", "39.99999894", "0.00001246"),
        # 0.00001234 × 0.995 = 0.0000122783 → 0.00001227; 40 / that = 3259983.7 → 3259983
        (1, "0.00001227", "3259983", "39.99999141", "0.00001233"),
        # × 0.99 = 0.0000122166 → 0.00001221; 3276003.27 → 3276003; TP × 1.02 = 0.0000124542
        (2, "0.00001221", "3276003", "39.99999663", "0.00001245"),
        # × 0.985 = 0.0000121549 → 0.00001215; 3292181.07 → 3292181; TP × 1.015 = 0.00001233225
        (3, "0.00001215", "3292181", "39.99999915", "0.00001233"),
        # × 0.98 = 0.0000120932 → 0.00001209; 3308519.4 → 3308519; TP × 1.01 = 0.0000122109
        (4, "0.00001209", "3308519", "39.99999471", "0.00001221"),
    ]
    preview = legs_to_json(legs, PEPE)
    assert preview[0]["price"] == "0.00001234"
    for leg in preview:
        for key, value in leg.items():
            assert key == "level" or "E" not in value.upper(), (key, value)


def test_small_tp_on_tiny_ticks_stays_above_the_buy_price() -> None:
    # 0.00001234 × 1.0001 = 0.000012341234 → rounds down to 0.00001234, the buy price itself.
    assert trade_tp_price(Decimal("0.00001234"), Decimal("0.01"), PEPE) == Decimal("0.00001235")
    config = _config([_level("0", "100", "0.01")], "50")
    (leg,) = compute_grid(config=config, pyramid_index=0, entry_price=Decimal("0.00001234"), rules=PEPE)
    assert leg.tp_price == Decimal("0.00001235")


def test_trade_tp_price_uses_the_actual_fill() -> None:
    assert trade_tp_price(Decimal("64675"), Decimal("0.5"), BTC) == Decimal("64998.37")
    # An average fill off the tick: the TP is still on the tick and strictly above the fill.
    assert trade_tp_price(Decimal("65000.005"), Decimal("0.000001"), BTC) == Decimal("65000.01")
    with pytest.raises(ValueError):
        trade_tp_price(Decimal("0"), Decimal("1"), BTC)


def test_eth_btc_in_btc() -> None:
    config = _config([_level("0", "50"), _level("-1", "50")], "0.01")
    legs = compute_grid(config=config, pyramid_index=0, entry_price=Decimal("0.06312"), rules=ETH_BTC)
    assert _as_tuples(legs) == [
        # 0.005 / 0.06312 = 0.07921 → 0.0792 ETH; × 0.06312 = 0.004999104 BTC; TP 0.0637512 → 0.06375
        (0, "0.06312", "0.0792", "0.004999104", "0.06375"),
        # 0.06312 × 0.99 = 0.0624888 → 0.06248; 0.005 / 0.06248 = 0.08002 → 0.0800; TP 0.0631048 → 0.06310
        (1, "0.06248", "0.0800", "0.004998400", "0.06310"),
    ]
    # 0.009997504 / 0.1592 = 0.06279839195979899497...; × 1.015 = 0.063740367... → 0.06374
    assert legs[1].cum_avg_price == Decimal("0.062798391959798995")
    assert legs[1].cum_tp_price == Decimal("0.06374")


# --------------------------------------------------------------------------------------------------
# 3Commas generator


def test_generator_matches_3commas_documented_example() -> None:
    # 3Commas' docs: base 10, safety 10, deviation 1 %, step scale 1.5 → SOs at 1 %, 2.5 %, 4.75 %.
    config = parse_grid_config(
        {
            "generator": {
                "base_order_usd": "10",
                "safety_order_usd": "10",
                "max_safety_orders": 3,
                "price_deviation_percent": "1",
                "step_scale": "1.5",
                "volume_scale": "2",
                "tp_percent": "1.2",
            }
        }
    )
    assert config.generator is not None
    assert config.generator.deviations() == [Decimal("1"), Decimal("2.5"), Decimal("4.75")]
    assert config.generator.volumes() == [Decimal(10), Decimal(10), Decimal(20), Decimal(40)]
    # No capital_usd: the capital is base + all safety orders.
    assert capital_for_pyramid(config, 0) == Decimal(80)
    assert [level.gap_percent for level in config.levels] == [
        Decimal(0),
        Decimal(-1),
        Decimal("-2.5"),
        Decimal("-4.75"),
    ]
    assert [level.weight_percent for level in config.levels] == [
        Decimal("12.5"),
        Decimal("12.5"),
        Decimal(25),
        Decimal(50),
    ]
    assert {level.tp_percent for level in config.levels} == {Decimal("1.2")}
    assert config.aggregate_tp_percent == Decimal("1.2")

    legs = compute_grid(config=config, pyramid_index=0, entry_price=Decimal("100"), rules=SOL_LIKE)
    # Each order's USD is kept exactly: 10, 10, 20, 40 at 100, 99, 97.5, 95.25.
    assert _as_tuples(legs) == [
        (0, "100.00", "0.10", "10.0000", "101.20"),
        (1, "99.00", "0.10", "9.9000", "100.18"),  # 10 / 99 = 0.1010 → 0.10; 99 × 1.012 = 100.188
        (2, "97.50", "0.20", "19.5000", "98.67"),  # 20 / 97.5 = 0.2051 → 0.20; 97.5 × 1.012 = 98.67
        (3, "95.25", "0.41", "39.0525", "96.39"),  # 40 / 95.25 = 0.4199 → 0.41; 95.25 × 1.012 = 96.393
    ]
    # cum TP uses the generator's TP: (10 + 9.9) / 0.2 = 99.5; × 1.012 = 100.694 → 100.69.
    assert legs[1].cum_avg_price == Decimal("99.5")
    assert legs[1].cum_tp_price == Decimal("100.69")


SOL_LIKE = _rules("SOL/USDT", "0.01", "0.01", "0.01", "5")


def test_generator_contract_example_arithmetic() -> None:
    config = parse_grid_config(
        {
            "generator": {
                "base_order_usd": "20",
                "safety_order_usd": "20",
                "max_safety_orders": 8,
                "price_deviation_percent": "1.2",
                "step_scale": "1.2",
                "volume_scale": "1.5",
                "tp_percent": "1.2",
            }
        }
    )
    assert config.generator is not None
    # d_i = d_{i-1} × 1.2 + 1.2
    assert config.generator.deviations() == [
        Decimal(text)
        for text in ("1.2", "2.64", "4.368", "6.4416", "8.92992", "11.915904", "15.4990848", "19.79890176")
    ]
    # 20 × 1.5^(i-1)
    assert config.generator.volumes()[1:] == [
        Decimal(text) for text in ("20", "30", "45", "67.5", "101.25", "151.875", "227.8125", "341.71875")
    ]
    # 20 + 20 × (1.5^8 - 1) / 0.5 = 20 + 985.15625
    assert capital_for_pyramid(config, 0) == Decimal("1005.15625")
    total_weight = sum((level.weight_percent for level in config.levels), Decimal(0))
    assert abs(total_weight - 100) < Decimal("1e-20")
    legs = compute_grid(config=config, pyramid_index=0, entry_price=Decimal("65000"), rules=BTC)
    assert [leg.level for leg in legs] == list(range(9))
    # The base order buys 20 USDT: 20 / 65000 = 0.0003076 → 0.00030.
    assert legs[0].quantity == Decimal("0.00030")
    # The last SO sits 19.79890176 % down: 65000 × 0.8020109824 = 52130.713856 → 52130.71,
    # and buys 341.71875 / 52130.71 = 0.0065549 → 0.00655.
    assert (legs[-1].price, legs[-1].quantity) == (Decimal("52130.71"), Decimal("0.00655"))


def test_generator_with_capital_scales_the_orders() -> None:
    config = parse_grid_config(
        {
            "generator": {
                "base_order_usd": 10,
                "safety_order_usd": 30,
                "max_safety_orders": 1,
                "price_deviation_percent": 2,
                "tp_percent": 1,
            },
            "capital_usd": 400,
        }
    )
    # Weights 25 / 75 of a 400 capital: 100 and 300; step and volume scale default to 1.
    legs = compute_grid(config=config, pyramid_index=0, entry_price=Decimal("100"), rules=SOL_LIKE)
    assert [(leg.price, leg.quantity) for leg in legs] == [
        (Decimal("100.00"), Decimal("1.00")),
        (Decimal("98.00"), Decimal("3.06")),  # 300 / 98 = 3.0612 → 3.06
    ]


# --------------------------------------------------------------------------------------------------
# Merging legs below the minimums


def test_sub_minimum_legs_merge_into_the_nearest_valid_leg() -> None:
    # 30 USDT as 15 / 7.5 / 7.5: the two 7.5 USDT legs are below the 10 USDT minimum notional.
    config = _config([_level("0", "50"), _level("-1", "25"), _level("-2", "25")], "30")
    (leg,) = compute_grid(config=config, pyramid_index=0, entry_price=Decimal("65000"), rules=BTC)
    assert leg.level == 0
    assert leg.merged_levels == (1, 2)
    assert leg.weight_percent == Decimal(100)
    # All 30 USDT at 65000: 30 / 65000 = 0.0004615 → 0.00046.
    assert (leg.quantity, leg.notional) == (Decimal("0.00046"), Decimal("29.9000000"))


def test_merge_goes_to_the_nearer_price_and_ties_go_toward_entry() -> None:
    # 50 USDT as 20 / 5 / 25: level 1 (5 USDT at 64350) is 650 from level 0 and 325 from level 2.
    config = _config([_level("0", "40"), _level("-1", "10"), _level("-1.5", "50")], "50")
    legs = compute_grid(config=config, pyramid_index=0, entry_price=Decimal("65000"), rules=BTC)
    assert [(leg.level, leg.merged_levels, leg.weight_percent) for leg in legs] == [
        (0, (), Decimal(40)),
        (2, (1,), Decimal(60)),
    ]
    # With level 2 at -2 the distances tie (650 each): the shallower level wins.
    config = _config([_level("0", "40"), _level("-1", "10"), _level("-2", "50")], "50")
    legs = compute_grid(config=config, pyramid_index=0, entry_price=Decimal("65000"), rules=BTC)
    assert [(leg.level, leg.merged_levels) for leg in legs] == [(0, (1,)), (2, ())]
    # Merging never loses capital: 25 + 25 USDT → 0.00038 + 0.00039 BTC.
    assert sum(leg.notional for leg in legs) <= 50


def test_legs_that_are_all_too_small_pool_together() -> None:
    # 12 USDT in four 3 USDT legs: none is orderable alone, together they are (12 / 65000 → 0.00018).
    config = _config([_level("0", "25"), _level("-1", "25"), _level("-2", "25"), _level("-3", "25")], "12")
    (leg,) = compute_grid(config=config, pyramid_index=0, entry_price=Decimal("65000"), rules=BTC)
    assert (leg.level, leg.merged_levels) == (0, (1, 2, 3))
    assert (leg.quantity, leg.notional) == (Decimal("0.00018"), Decimal("11.7000000"))
    # 24 USDT: the pool reaches 12 USDT in two places, so two legs survive.
    config = _config([_level("0", "25"), _level("-1", "25"), _level("-2", "25"), _level("-3", "25")], "24")
    legs = compute_grid(config=config, pyramid_index=0, entry_price=Decimal("65000"), rules=BTC)
    assert sum(leg.weight_percent for leg in legs) == 100
    assert all(validate_order(leg.price, leg.quantity, BTC) == [] for leg in legs)


def test_whole_pyramid_below_minimum_is_rejected_with_the_numbers() -> None:
    # 10 USDT at 65000 buys 0.00015 BTC (10 / 65000 = 0.0001538 rounded down) = 9.75 USDT < 10.
    config = _config([_level("0", "50"), _level("-1", "50")], "10")
    with pytest.raises(GridError) as error:
        compute_grid(config=config, pyramid_index=0, entry_price=Decimal("65000"), rules=BTC)
    assert error.value.code == "below_minimum"
    message = str(error.value)
    assert "minimum notional is 10 USDT" in message
    assert "10 USDT" in message and "9.75" in message and "0.00015" in message
    assert "pyramid 0" in message


def test_levels_below_the_price_band_merge_into_the_band() -> None:
    # BTCUP's minimum price is 0.6: at entry 0.605 the -1 % and -2 % levels (0.598, 0.592) are out.
    config = _config([_level("0", "40"), _level("-1", "30"), _level("-2", "30")], "100")
    (leg,) = compute_grid(config=config, pyramid_index=0, entry_price=Decimal("0.605"), rules=BTCUP)
    assert (leg.level, leg.merged_levels, leg.price) == (0, (1, 2), Decimal("0.605"))
    assert leg.quantity == Decimal("165.28")  # 100 / 0.605 = 165.289 → 165.28


def test_above_maximum_is_an_error() -> None:
    config = _config([_level("0", "100")], "1000000000")
    with pytest.raises(GridError) as error:
        compute_grid(config=config, pyramid_index=0, entry_price=Decimal("65000"), rules=BTC)
    assert error.value.code == "above_maximum"
    assert "maximum quantity 9000" in str(error.value)


def test_not_trading_and_bad_inputs() -> None:
    config = parse_grid_config(default_grid_config())
    halted = _rules("BCC/BTC", "0.000001", "0.001", "0.001", "0.0001", status="BREAK")
    with pytest.raises(GridError) as error:
        compute_grid(config=config, pyramid_index=0, entry_price=Decimal("0.01"), rules=halted)
    assert error.value.code == "symbol_not_trading"
    assert "BREAK" in str(error.value)
    with pytest.raises(GridError) as error:
        compute_grid(config=config, pyramid_index=0, entry_price=Decimal("0"), rules=BTC)
    assert error.value.code == "invalid_entry_price"
    with pytest.raises(GridError) as error:
        compute_grid(config=config, pyramid_index=0, entry_price=65000.0, rules=BTC)  # type: ignore[arg-type]
    assert error.value.code == "invalid_entry_price"
    with pytest.raises(GridError) as error:
        compute_grid(config=config, pyramid_index=5, entry_price=Decimal("65000"), rules=BTC)
    assert error.value.code == "pyramid_out_of_range"
    with pytest.raises(GridError) as error:
        compute_grid(config=config, pyramid_index=0, entry_price=Decimal("65000"), rules=BTC, side="short")
    assert error.value.code == "unsupported_side"


# --------------------------------------------------------------------------------------------------
# Per-pyramid levels and capital


def test_pyramid_specific_levels_and_capitals() -> None:
    data = default_grid_config()
    data["pyramid_specific_levels"] = {"1": [_level("0", "100", "3")], "2": []}
    data["pyramid_capitals"] = {"2": "400", "3": 50}
    config = parse_grid_config(data)
    assert levels_for_pyramid(config, 0) == config.levels
    assert len(levels_for_pyramid(config, 1)) == 1
    assert levels_for_pyramid(config, 2) == config.levels  # [] means "use the defaults"
    assert [capital_for_pyramid(config, index) for index in range(5)] == [
        Decimal(200),
        Decimal(200),
        Decimal(400),
        Decimal(50),
        Decimal(200),
    ]
    (leg,) = compute_grid(config=config, pyramid_index=1, entry_price=Decimal("65000"), rules=BTC)
    # 200 / 65000 = 0.003076 → 0.00307; TP 65000 × 1.03 = 66950.
    assert (leg.quantity, leg.tp_price) == (Decimal("0.00307"), Decimal("66950.00"))
    legs = compute_grid(config=config, pyramid_index=2, entry_price=Decimal("65000"), rules=BTC)
    assert legs[0].quantity == Decimal("0.00123")  # 80 / 65000 = 0.0012307
    # Pyramid 3 has 50 USDT: 10 USDT legs fall below the minimum after rounding and merge.
    legs = compute_grid(config=config, pyramid_index=3, entry_price=Decimal("65000"), rules=BTC)
    assert sum(leg.weight_percent for leg in legs) == 100
    assert all(validate_order(leg.price, leg.quantity, BTC) == [] for leg in legs)


# --------------------------------------------------------------------------------------------------
# Validation


def _errors(data: dict[str, Any], **kwargs: Any) -> dict[str, list[str]]:
    with pytest.raises(GridConfigError) as error:
        parse_grid_config(data, **kwargs)
    return error.value.errors


def test_default_config_parses_with_defaults() -> None:
    config = parse_grid_config({"levels": [_level("0", "100")], "capital_usd": 100})
    assert (config.max_pyramids, config.entry_order_type, config.tp_mode) == (5, "limit", "per_leg")
    assert config.tp_aggregate_percent == Decimal("1.5")
    assert config.generator is None


def test_numbers_from_json_floats_go_through_str() -> None:
    # As floats 33.33 + 33.33 + 33.34 is 99.99999999999999; as decimals it is exactly 100.
    config = parse_grid_config(
        json.loads(
            '{"levels": [{"gap_percent": 0, "weight_percent": 33.33, "tp_percent": 0.1},'
            ' {"gap_percent": -0.1, "weight_percent": 33.33, "tp_percent": 1},'
            ' {"gap_percent": -0.2, "weight_percent": 33.34, "tp_percent": 1}], "capital_usd": 99.9}'
        )
    )
    assert [level.weight_percent for level in config.levels] == [Decimal("33.33"), Decimal("33.33"), Decimal("33.34")]
    assert config.levels[1].gap_percent == Decimal("-0.1")
    assert config.capital_usd == Decimal("99.9")


def test_weight_sum_tolerance() -> None:
    parse_grid_config({"levels": [_level("0", "50.005"), _level("-1", "50")], "capital_usd": 1})
    errors = _errors({"levels": [_level("0", "50.02"), _level("-1", "50")], "capital_usd": 1})
    assert errors == {"levels": ["weight_percent must sum to 100 (±0.01), got 100.02"]}


def test_every_bad_level_field_is_named() -> None:
    errors = _errors(
        {
            "levels": [
                {"gap_percent": "0", "weight_percent": "50", "tp_percent": "0"},
                {"gap_percent": "0.5", "weight_percent": True, "tp_percent": "1"},
                {"gap_percent": "-1", "weight_percent": "NaN", "tp_percent": "Infinity"},
                {"gap_percent": "-150", "weight_percent": "-5", "tp_percent": "abc"},
                {"gap_percent": "-1", "weight_percent": "5", "extra": 1},
                "not a level",
            ],
            "capital_usd": "100",
        }
    )
    assert set(errors) == {
        "levels[0].tp_percent",
        "levels[1].gap_percent",
        "levels[1].weight_percent",
        "levels[2].weight_percent",
        "levels[2].tp_percent",
        "levels[3].gap_percent",
        "levels[3].weight_percent",
        "levels[3].tp_percent",
        "levels[4].extra",
        "levels[4].tp_percent",
        "levels[5]",
    }
    assert errors["levels[0].tp_percent"] == ["must be > 0, got 0"]
    assert "must be <= 0 for a long grid" in errors["levels[1].gap_percent"][0]
    assert errors["levels[1].weight_percent"] == ["must be a number (a JSON number or a numeric string)"]
    assert "finite" in errors["levels[2].weight_percent"][0]
    assert "must be > -100" in errors["levels[3].gap_percent"][0]
    assert errors["levels[4].extra"] == ["unknown field"]
    assert errors["levels[4].tp_percent"] == ["is required"]


def test_levels_must_go_deeper() -> None:
    errors = _errors({"levels": [_level("0", "50"), _level("-2", "25"), _level("-1", "25")], "capital_usd": 1})
    assert list(errors) == ["levels[2].gap_percent"]
    # Level 0 need not be at gap 0, and equal gaps are allowed.
    parse_grid_config({"levels": [_level("-1", "50"), _level("-1", "50")], "capital_usd": 1})


def test_top_level_fields_are_validated() -> None:
    errors = _errors(
        {
            "levels": [],
            "capital_usd": "0",
            "max_pyramids": 0,
            "entry_order_type": "stop",
            "tp_mode": "moon",
            "tp_aggregate_percent": "-1",
            "pyramid_capitals": {"0": "-5", "x": "10"},
            "surprise": 1,
        }
    )
    assert errors["levels"] == ["must contain at least one level"]
    assert errors["capital_usd"] == ["must be > 0, got 0"]
    assert errors["max_pyramids"] == ["must be between 1 and 50, got 0"]
    assert errors["entry_order_type"] == ["must be one of limit, market"]
    assert errors["tp_mode"] == ["must be one of per_leg, aggregate, hybrid, pyramid_aggregate"]
    assert errors["tp_aggregate_percent"] == ["must be > 0, got -1"]
    assert errors["pyramid_capitals.0"] == ["must be > 0, got -5"]
    assert errors["pyramid_capitals.x"] == ["pyramid index must be a whole number >= 0"]
    assert errors["surprise"] == ["unknown field"]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (51, "must be between 1 and 50, got 51"),
        (True, "must be a whole number"),
        ("5.5", "must be a whole number"),
        ("five", "must be a whole number"),
    ],
)
def test_max_pyramids(value: object, reason: str) -> None:
    errors = _errors({"levels": [_level("0", "100")], "capital_usd": 1, "max_pyramids": value})
    assert errors == {"max_pyramids": [reason]}


def test_pyramid_indexes_must_fit_max_pyramids() -> None:
    errors = _errors(
        {
            "levels": [_level("0", "100")],
            "capital_usd": 1,
            "max_pyramids": 2,
            "pyramid_specific_levels": {"2": [_level("0", "100")], "1": [_level("0", "90")]},
            "pyramid_capitals": {"5": 1},
        }
    )
    assert errors == {
        "pyramid_specific_levels.2": ["pyramid index must be below max_pyramids (2), got 2"],
        "pyramid_specific_levels.1": ["weight_percent must sum to 100 (±0.01), got 90"],
        "pyramid_capitals.5": ["pyramid index must be below max_pyramids (2), got 5"],
    }


def test_levels_or_generator_exactly_one() -> None:
    assert _errors({"capital_usd": 1}) == {"levels": ["is required (or give a generator)"]}
    generator = {
        "base_order_usd": 10,
        "safety_order_usd": 10,
        "max_safety_orders": 2,
        "price_deviation_percent": 1,
        "tp_percent": 1,
    }
    errors = _errors({"levels": [_level("0", "100")], "generator": generator, "capital_usd": 1})
    assert errors == {"generator": ["give either levels or generator, not both"]}
    assert _errors({"levels": [_level("0", "100")]}) == {"capital_usd": ["is required with levels"]}


def test_generator_fields_are_validated() -> None:
    errors = _errors(
        {
            "generator": {
                "base_order_usd": "0",
                "safety_order_usd": "abc",
                "max_safety_orders": 1.5,
                "price_deviation_percent": "-1",
                "step_scale": 0,
                "volume_scale": None,
                "tp_percent": float("nan"),
            }
        }
    )
    assert set(errors) == {
        "generator.base_order_usd",
        "generator.safety_order_usd",
        "generator.max_safety_orders",
        "generator.price_deviation_percent",
        "generator.step_scale",
        "generator.volume_scale",
        "generator.tp_percent",
    }
    assert _errors({"generator": {"base_order_usd": 1, "oops": 1}}) == {
        "generator.oops": ["unknown field"],
        "generator.safety_order_usd": ["is required"],
        "generator.max_safety_orders": ["is required"],
        "generator.price_deviation_percent": ["is required"],
        "generator.tp_percent": ["is required"],
    }
    # 10 SOs at 5 % with step 2 would reach 5 × (2^10 - 1) = 5115 % below the start price.
    errors = _errors(
        {
            "generator": {
                "base_order_usd": 10,
                "safety_order_usd": 10,
                "max_safety_orders": 10,
                "price_deviation_percent": 5,
                "step_scale": 2,
                "tp_percent": 1,
            }
        }
    )
    assert list(errors) == ["generator"]
    assert "5115" in errors["generator"][0]


def test_unknown_keys_can_be_ignored_for_a_whole_engine_config() -> None:
    data = {**default_grid_config(), "trailing_stop_percent": "3"}
    assert _errors(data) == {"trailing_stop_percent": ["unknown field"]}
    assert parse_grid_config(data, ignore_unknown=True).capital_usd == Decimal(200)


def test_config_is_immutable() -> None:
    config = parse_grid_config(default_grid_config())
    with pytest.raises(AttributeError):
        config.capital_usd = Decimal(1)  # type: ignore[misc]
    with pytest.raises(TypeError):
        config.pyramid_capitals[0] = Decimal(1)  # type: ignore[index]
    assert hash(config) == hash(parse_grid_config(default_grid_config()))


# --------------------------------------------------------------------------------------------------
# Properties over the 22 real markets


def _real_markets() -> list[MarketRules]:
    if not EXCHANGE_INFO.is_file():
        return []
    symbols = json.loads(EXCHANGE_INFO.read_text())["symbols"]
    return [market_rules_from_binance_symbol(symbol) for symbol in symbols]


REAL_MARKETS = _real_markets()
TRADING_MARKETS = [market for market in REAL_MARKETS if market.is_trading]
needs_markets = pytest.mark.skipif(not REAL_MARKETS, reason=f"shared data not found at {EXCHANGE_INFO}")

# Where each market has really traded (quote currency); the leveraged tokens are held to their
# PRICE_FILTER band. Entry prices are drawn inside these ranges.
REALISTIC_PRICES: dict[str, tuple[str, str]] = {
    "BTCUSDT": ("15000", "150000"),
    "ETHUSDT": ("800", "6000"),
    "SOLUSDT": ("8", "400"),
    "DOGEUSDT": ("0.05", "0.7"),
    "XRPUSDT": ("0.3", "3.5"),
    "BNBUSDT": ("200", "1200"),
    "ADAUSDT": ("0.2", "3"),
    "SHIBUSDT": ("0.000005", "0.00008"),
    "PEPEUSDT": ("0.0000005", "0.00003"),
    "FLOKIUSDT": ("0.00001", "0.0003"),
    "LUNCUSDT": ("0.00004", "0.0005"),
    "ETHBTC": ("0.02", "0.09"),
    "BTCTUSD": ("15000", "150000"),
    "BTCFDUSD": ("15000", "150000"),
    "XRPBTC": ("0.000005", "0.00003"),
    "TRXUSDT": ("0.05", "0.4"),
    "LTCUSDT": ("40", "400"),
    "BTCUPUSDT": ("0.6", "11.39"),
    "BTCDOWNUSDT": ("0.000726", "0.013784"),
}


@needs_markets
def test_every_trading_market_has_a_realistic_price_range() -> None:
    assert len(REAL_MARKETS) == 22
    assert {market.exchange_symbol for market in TRADING_MARKETS} == set(REALISTIC_PRICES)
    assert {market.exchange_symbol for market in REAL_MARKETS if not market.is_trading} == {
        "BCCBTC",
        "HSRBTC",
        "OAXETH",
    }


@needs_markets
@pytest.mark.parametrize("market", [m for m in REAL_MARKETS if not m.is_trading], ids=lambda m: m.exchange_symbol)
def test_break_markets_get_no_grid(market: MarketRules) -> None:
    config = parse_grid_config(default_grid_config())
    with pytest.raises(GridError) as error:
        compute_grid(config=config, pyramid_index=0, entry_price=market.tick_size * 10_000, rules=market)
    assert error.value.code == "symbol_not_trading"


def _decimal_between(low: Decimal, high: Decimal, places: int = 6) -> st.SearchStrategy[Decimal]:
    """Uniform-ish Decimals in [low, high] with ``places`` digits of resolution over the range."""
    resolution = 10**places
    return st.integers(0, resolution).map(lambda k: low + (high - low) * k / resolution)


@st.composite
def _level_configs(draw: st.DrawFn) -> dict[str, Any]:
    count = draw(st.integers(1, 8))
    first_gap = draw(st.sampled_from([Decimal(0), Decimal(0), Decimal("-0.5")]))
    steps = draw(st.lists(_decimal_between(Decimal(0), Decimal(5), 2), min_size=count - 1, max_size=count - 1))
    gaps = [first_gap]
    for step in steps:
        gaps.append(gaps[-1] - step.quantize(Decimal("0.01")))
    raw = draw(st.lists(st.integers(1, 100), min_size=count, max_size=count))
    weights = [(Decimal(value) * 100 / sum(raw)).quantize(Decimal("0.01"), rounding="ROUND_DOWN") for value in raw]
    weights[-1] += 100 - sum(weights)
    tps = draw(st.lists(_decimal_between(Decimal("0.01"), Decimal(10), 3), min_size=count, max_size=count))
    return {
        "levels": [
            {"gap_percent": str(gap), "weight_percent": str(weight), "tp_percent": str(tp.quantize(Decimal("0.01")))}
            for gap, weight, tp in zip(gaps, weights, tps, strict=True)
        ],
        "tp_aggregate_percent": str(draw(_decimal_between(Decimal("0.1"), Decimal(5), 2))),
    }


@st.composite
def _generator_configs(draw: st.DrawFn) -> dict[str, Any]:
    # Bounded so that the deepest SO stays above -100 %: 2 × (1.5^8 - 1) / 0.5 = 98.5 %.
    return {
        "generator": {
            "base_order_usd": str(draw(_decimal_between(Decimal(1), Decimal(1000), 2))),
            "safety_order_usd": str(draw(_decimal_between(Decimal(1), Decimal(1000), 2))),
            "max_safety_orders": draw(st.integers(0, 8)),
            "price_deviation_percent": str(draw(_decimal_between(Decimal("0.1"), Decimal(2), 2))),
            "step_scale": str(draw(_decimal_between(Decimal("0.5"), Decimal("1.5"), 2))),
            "volume_scale": str(draw(_decimal_between(Decimal("0.5"), Decimal("1.5"), 2))),
            "tp_percent": str(draw(_decimal_between(Decimal("0.05"), Decimal(5), 2))),
        }
    }


@st.composite
def _scenarios(draw: st.DrawFn) -> tuple[MarketRules, Decimal, GridConfig]:
    market = draw(st.sampled_from(TRADING_MARKETS))
    low, high = (Decimal(text) for text in REALISTIC_PRICES[market.exchange_symbol])
    # Entry prices off the tick too: a signal's price is whatever TradingView sent.
    entry = draw(_decimal_between(low, high, 9))
    if market.quote == "BTC":
        capital = draw(_decimal_between(Decimal("0.0002"), Decimal(3), 8))  # ≈ 10..100000 USD
    else:
        capital = draw(_decimal_between(Decimal(10), Decimal(100000), 8))
    data = draw(st.one_of(_level_configs(), _generator_configs()))
    data["capital_usd"] = str(capital.quantize(Decimal("0.00000001")))
    return market, entry, parse_grid_config(data)


@needs_markets
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenario=_scenarios())
def test_grid_properties_on_real_markets(scenario: tuple[MarketRules, Decimal, GridConfig]) -> None:
    rules, entry, config = scenario
    capital = capital_for_pyramid(config, 0)
    levels = levels_for_pyramid(config, 0)
    try:
        legs = compute_grid(config=config, pyramid_index=0, entry_price=entry, rules=rules)
    except GridError as error:
        event(f"refused: {error.code}")
        # The only acceptable refusals, and each must be true.
        if error.code == "below_minimum":
            # With all the capital at the highest level (≤ entry), one valid leg exists once the
            # capital covers the minimums plus one step of rounding.
            enough = max(rules.min_notional + entry * rules.step_size, entry * (rules.min_qty + rules.step_size))
            assert capital < enough, str(error)
        elif error.code == "price_out_of_range":
            # Only the leveraged tokens have a price band; every level must really fall outside it.
            assert rules.min_price is not None and rules.max_price is not None
            prices = [entry * (1 + level.gap_percent / 100) for level in levels]
            assert all(not rules.min_price <= price <= rules.max_price for price in prices), str(error)
        else:
            assert error.code == "above_maximum", str(error)
            lowest = entry * (1 + levels[-1].gap_percent / 100)
            assert rules.max_qty is not None
            assert capital > rules.max_qty * lowest * Decimal("0.99") or (
                rules.max_notional is not None and capital > rules.max_notional
            )
        return

    assert legs, "a grid without an error has at least one leg"
    event("some levels merged" if len(legs) < len(levels) else "every level placed")
    assert [leg.level for leg in legs] == sorted({leg.level for leg in legs})
    covered = sorted([leg.level for leg in legs] + [level for leg in legs for level in leg.merged_levels])
    assert covered == list(range(len(levels))), "every level is placed or merged, none lost"
    assert abs(sum((leg.weight_percent for leg in legs), Decimal(0)) - 100) < Decimal("1e-9")

    total = Decimal(0)
    for position, leg in enumerate(legs):
        assert leg.price % rules.tick_size == 0
        assert leg.quantity % rules.step_size == 0
        assert leg.quantity >= rules.min_qty and leg.quantity > 0
        assert leg.notional == leg.price * leg.quantity
        assert leg.notional >= rules.min_notional
        assert validate_order(leg.price, leg.quantity, rules) == []
        assert leg.price <= entry
        assert leg.tp_price > leg.price and leg.tp_price % rules.tick_size == 0
        so_far = legs[: position + 1]
        assert min(item.price for item in so_far) <= leg.cum_avg_price <= max(item.price for item in so_far)
        assert leg.cum_tp_price > leg.cum_avg_price and leg.cum_tp_price % rules.tick_size == 0
        total += leg.notional
    assert total <= capital

    for row in legs_to_json(legs, rules):
        assert set(row) == {"level", "price", "quantity", "notional", "tp_price", "cum_avg_price", "cum_tp_price"}
        for key, value in row.items():
            if key != "level":
                assert isinstance(value, str) and "E" not in value.upper()
                Decimal(value)
