"""Tests for exchanges.precision against numbers nobody on this team wrote.

* ``reference/precision_rounding_tables.json``: freqtrade's 107 rounding rows.
* ``exchange/ccxt_precision_examples.json``: what ccxt 4.5.90 returned for real Binance markets.
* ``exchange/binance_exchangeInfo_subset.json`` and ``binance_markets_subset_ccxt.json``: the same 22
  markets as Binance sends them and as ccxt parses them.

The data lives in ``../shared/data`` (relative to the repo root) and is read at test time; tests
that need it skip with a reason when it is absent.
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exchanges.precision import (
    CountingMode,
    MarketRules,
    MarketRulesError,
    PrecisionError,
    RoundingMode,
    amount_to_contract_precision,
    amount_to_precision,
    apply_precision,
    check_order,
    decimal_to_str,
    market_rules_from_binance_symbol,
    market_rules_from_ccxt_market,
    normalize_order,
    price_to_precision,
    round_price_down,
    round_qty_down,
    round_to_decimals,
    round_to_significant,
    round_to_tick,
    to_decimal,
    truncate_to_tick,
    validate_order,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("SHARED_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))
MISSING_DATA = f"shared data not found at {SHARED_DATA}"


def _load(relative: str) -> Any:
    path = SHARED_DATA / relative
    if not path.is_file():
        pytest.skip(f"{MISSING_DATA} ({relative})")
    return json.loads(path.read_text())


def _params(relative: str, extract: Any, id_of: Any) -> list[Any]:
    """Parametrize from a data file at collection time, or one skipped case when it is missing."""
    path = SHARED_DATA / relative
    if not path.is_file():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"{MISSING_DATA} ({relative})"))]
    return [pytest.param(item, id=id_of(item)) for item in extract(json.loads(path.read_text()))]


def D(value: object) -> Decimal:  # noqa: N802 - reads like a literal in tables below
    """Decimal from a JSON number the way our parser does it (through str, never binary float)."""
    return to_decimal(value)


def _precision(row: dict[str, Any], mode: CountingMode) -> Decimal | int:
    return D(row["precision"]) if mode is CountingMode.TICK_SIZE else int(row["precision"])


TABLES = "reference/precision_rounding_tables.json"
MARKETS = "exchange/binance_exchangeInfo_subset.json"
CCXT_MARKETS = "exchange/binance_markets_subset_ccxt.json"
CCXT_EXAMPLES = "exchange/ccxt_precision_examples.json"


def _row_id(row: dict[str, Any]) -> str:
    values = [str(value) for key, value in row.items() if key != "expected"]
    return "-".join(values)


# --------------------------------------------------------------------------------------------------
# The 107 reference rows (24 + 76 + 7)


def test_reference_tables_have_107_rows() -> None:
    tables = _load(TABLES)
    counts = {name: len(section["rows"]) for name, section in tables.items() if not name.startswith("_")}
    assert counts == {
        "test_amount_to_precision": 24,
        "test_price_to_precision": 76,
        "test_amount_to_contract_precision_standalone": 7,
    }


@pytest.mark.parametrize("row", _params(TABLES, lambda data: data["test_amount_to_precision"]["rows"], _row_id))
def test_amount_rows_truncate(row: dict[str, Any]) -> None:
    # freqtrade/ccxt amount_to_precision always truncates, whatever the counting mode.
    mode = CountingMode[row["precision_mode"]]
    result = apply_precision(D(row["amount"]), _precision(row, mode), counting=mode, mode=RoundingMode.TRUNCATE)
    assert result == D(row["expected"])


@pytest.mark.parametrize("row", _params(TABLES, lambda data: data["test_price_to_precision"]["rows"], _row_id))
def test_price_rows(row: dict[str, Any]) -> None:
    mode = CountingMode[row["precision_mode"]]
    rounding = RoundingMode[row["rounding_mode"]]
    result = apply_precision(D(row["price"]), _precision(row, mode), counting=mode, mode=rounding)
    assert result == D(row["expected"])


@pytest.mark.parametrize(
    "row",
    _params(TABLES, lambda data: data["test_amount_to_contract_precision_standalone"]["rows"], _row_id),
)
def test_contract_rows(row: dict[str, Any]) -> None:
    # This table gives the counting mode as ccxt's number (2 = decimal places, 4 = tick size).
    mode = CountingMode.from_ccxt(row["precision_mode"])
    result = amount_to_contract_precision(
        D(row["amount"]), _precision(row, mode), counting=mode, contract_size=D(row["contract_size"])
    )
    # freqtrade compares with pytest.approx; our arithmetic is exact, so equality must hold.
    assert result == D(row["expected"])


# --------------------------------------------------------------------------------------------------
# ccxt's own outputs on real markets


def _rules_by_unified_symbol() -> dict[str, MarketRules]:
    info = _load(MARKETS)
    return {rules.symbol: rules for rules in map(market_rules_from_binance_symbol, info["symbols"])}


@pytest.mark.parametrize("example", _params(CCXT_EXAMPLES, lambda data: data, lambda item: item["symbol"]))
def test_ccxt_precision_examples(example: dict[str, Any]) -> None:
    rules = _rules_by_unified_symbol()[example["symbol"]]
    # The example's own precision block must be what we parsed from exchangeInfo.
    assert rules.tick_size == D(example["precision"]["price"])
    assert rules.step_size == D(example["precision"]["amount"])
    assert rules.min_qty == D(example["limits_amount"]["min"])
    assert rules.min_notional == D(example["limits_cost"]["min"])
    assert amount_to_precision(D(example["amount_in"]), rules) == example["amount_to_precision"]
    assert price_to_precision(D(example["price_in"]), rules) == example["price_to_precision"]


def test_ccxt_style_helpers_refuse_zero_like_ccxt() -> None:
    rules = _rules_by_unified_symbol()["BTC/USDT"]
    with pytest.raises(PrecisionError) as amount_error:
        amount_to_precision(Decimal("0.000009"), rules)
    assert amount_error.value.field == "quantity"
    with pytest.raises(PrecisionError) as price_error:
        price_to_precision(Decimal("0.004"), rules)
    assert price_error.value.field == "price"


# --------------------------------------------------------------------------------------------------
# The 22 real markets


def _symbols(data: dict[str, Any]) -> list[dict[str, Any]]:
    return data["symbols"]


@pytest.mark.parametrize("symbol", _params(MARKETS, _symbols, lambda item: item["symbol"]))
def test_binance_and_ccxt_parsing_agree(symbol: dict[str, Any]) -> None:
    ccxt_markets = _load(CCXT_MARKETS)
    from_binance = market_rules_from_binance_symbol(symbol)
    market = ccxt_markets[from_binance.symbol]
    from_ccxt = market_rules_from_ccxt_market(market)
    assert from_ccxt == from_binance
    assert from_binance.exchange_symbol == symbol["symbol"] == market["id"]
    # ccxt's "active" and Binance's status tell the same story.
    assert from_binance.is_trading is market["active"]


def test_there_are_22_markets_and_they_all_parse() -> None:
    info = _load(MARKETS)
    rules = [market_rules_from_binance_symbol(symbol) for symbol in info["symbols"]]
    assert len(rules) == 22
    assert len(_load(CCXT_MARKETS)) == 22
    for market in rules:
        # Formatting a tick never falls back to exponent notation, even for 1e-8.
        assert "E" not in decimal_to_str(market.tick_size).upper()
        assert market.tick_size > 0 and market.step_size > 0


def test_pepe_rules() -> None:
    rules = _rules_by_unified_symbol()["PEPE/USDT"]
    assert rules.exchange_symbol == "PEPEUSDT"
    assert (rules.base, rules.quote) == ("PEPE", "USDT")
    assert rules.tick_size == Decimal("0.00000001")
    assert rules.step_size == Decimal("1")  # sent as "1.00"
    assert rules.min_qty == Decimal("1")
    assert rules.min_notional == Decimal("10")
    assert rules.max_qty == Decimal("92233720368")
    assert decimal_to_str(rules.step_size) == "1"
    # 1e-8 ticks: a price must round on the 8th decimal and print without exponent.
    assert round_price_down(Decimal("0.0000123456"), rules) == Decimal("0.00001234")
    assert decimal_to_str(round_price_down(Decimal("0.0000123456"), rules)) == "0.00001234"
    assert round_qty_down(Decimal("810372.99"), rules) == Decimal("810372")
    assert normalize_order(Decimal("0.0000123456"), Decimal("810373.7"), rules) == (
        Decimal("0.00001234"),
        Decimal("810373"),
    )


@pytest.mark.parametrize("exchange_symbol", ["BCCBTC", "HSRBTC", "OAXETH"])
def test_break_symbols_are_rejected(exchange_symbol: str) -> None:
    info = _load(MARKETS)
    (symbol,) = [item for item in info["symbols"] if item["symbol"] == exchange_symbol]
    rules = market_rules_from_binance_symbol(symbol)
    assert rules.status == "BREAK"
    assert not rules.is_trading
    # An order that would otherwise be fine is refused only because the market is in BREAK.
    price = rules.tick_size * 1000
    qty = rules.min_qty * 1000
    problems = validate_order(price, qty, rules)
    assert [problem.code for problem in problems] == ["symbol_not_trading"]
    assert "BREAK" in problems[0].reason
    with pytest.raises(PrecisionError) as error:
        normalize_order(price, qty, rules)
    assert error.value.field == "symbol"
    assert "not trading" in error.value.reason


def test_btc_quoted_markets() -> None:
    markets = _rules_by_unified_symbol()
    eth_btc = markets["ETH/BTC"]
    assert (eth_btc.quote, eth_btc.tick_size, eth_btc.step_size) == ("BTC", Decimal("0.00001"), Decimal("0.0001"))
    assert eth_btc.min_notional == Decimal("0.0001")
    assert normalize_order(Decimal("0.0631234567"), Decimal("0.123456789"), eth_btc) == (
        Decimal("0.06312"),
        Decimal("0.1234"),
    )
    # 0.0015 ETH at 0.06312 BTC is 0.00009468 BTC: below the 0.0001 BTC minimum notional.
    codes = [problem.code for problem in validate_order(Decimal("0.06312"), Decimal("0.0015"), eth_btc)]
    assert codes == ["below_min_notional"]
    xrp_btc = markets["XRP/BTC"]
    assert (xrp_btc.tick_size, xrp_btc.step_size, xrp_btc.min_qty) == (
        Decimal("0.00000001"),
        Decimal("1"),
        Decimal("1"),
    )
    assert validate_order(Decimal("0.00001234"), Decimal("9"), xrp_btc) == []


def test_leveraged_tokens_ignore_max_position_but_keep_their_price_band() -> None:
    markets = _rules_by_unified_symbol()
    up = markets["BTCUP/USDT"]
    down = markets["BTCDOWN/USDT"]
    assert up.is_trading and down.is_trading
    assert (up.min_price, up.max_price, up.tick_size) == (Decimal("0.6"), Decimal("11.39"), Decimal("0.001"))
    assert (down.min_price, down.max_price) == (Decimal("0.000726"), Decimal("0.013784"))
    # MAX_POSITION (417 BTCUP) is an account limit, not an order rule: 500 units is not refused for it.
    assert validate_order(Decimal("5.000"), Decimal("500"), up) == []
    codes = [problem.code for problem in validate_order(Decimal("0.5"), Decimal("30"), up)]
    assert codes == ["below_min_price"]
    codes = [problem.code for problem in validate_order(Decimal("12"), Decimal("1"), up)]
    assert codes == ["above_max_price"]


def test_binance_zero_limits_mean_no_limit() -> None:
    symbol = {
        "symbol": "FOOUSDT",
        "status": "TRADING",
        "baseAsset": "FOO",
        "quoteAsset": "USDT",
        "filters": [
            {"filterType": "PRICE_FILTER", "minPrice": "0", "maxPrice": "0", "tickSize": "0.0100"},
            {"filterType": "LOT_SIZE", "minQty": "0.1", "maxQty": "0", "stepSize": "0.1"},
            {"filterType": "MIN_NOTIONAL", "minNotional": "5.0", "applyToMarket": True, "avgPriceMins": 5},
        ],
    }
    rules = market_rules_from_binance_symbol(symbol)
    assert (rules.min_price, rules.max_price, rules.max_qty, rules.max_notional) == (None, None, None, None)
    # The older MIN_NOTIONAL filter is read like NOTIONAL.
    assert rules.min_notional == Decimal("5")
    assert rules.tick_size == Decimal("0.01")


def test_missing_filters_are_reported() -> None:
    with pytest.raises(MarketRulesError, match="PRICE_FILTER"):
        market_rules_from_binance_symbol({"symbol": "FOOUSDT", "baseAsset": "FOO", "quoteAsset": "USDT"})
    with pytest.raises(MarketRulesError, match="tick size"):
        MarketRules(
            symbol="FOO/USDT",
            exchange_symbol="FOOUSDT",
            base="FOO",
            quote="USDT",
            tick_size=Decimal(0),
            step_size=Decimal(1),
            min_qty=Decimal(1),
            min_notional=Decimal(5),
        )


def test_ccxt_market_without_status_uses_active_and_decimal_places_mode() -> None:
    market = {
        "symbol": "FOO/USD",
        "id": "FOO-USD",
        "base": "FOO",
        "quote": "USD",
        "active": False,
        "precision": {"price": 2, "amount": 4},
        "limits": {"amount": {"min": 0.001, "max": None}, "cost": {"min": 1, "max": None}},
        "info": {},
    }
    rules = market_rules_from_ccxt_market(market, precision_mode=CountingMode.DECIMAL_PLACES)
    assert (rules.tick_size, rules.step_size) == (Decimal("0.01"), Decimal("0.0001"))
    assert rules.status == "INACTIVE" and not rules.is_trading
    assert rules.min_qty == Decimal("0.001")


# --------------------------------------------------------------------------------------------------
# Checking orders


@pytest.fixture
def btc() -> MarketRules:
    return MarketRules(
        symbol="BTC/USDT",
        exchange_symbol="BTCUSDT",
        base="BTC",
        quote="USDT",
        tick_size=Decimal("0.01"),
        step_size=Decimal("0.00001"),
        min_qty=Decimal("0.00001"),
        max_qty=Decimal("9000"),
        min_notional=Decimal("10"),
        max_notional=Decimal("9000000"),
    )


def test_valid_order_has_no_problems(btc: MarketRules) -> None:
    assert validate_order(Decimal("65000.00"), Decimal("0.00016"), btc) == []
    check_order(Decimal("65000.00"), Decimal("0.00016"), btc)


def test_each_problem_is_named(btc: MarketRules) -> None:
    def codes(price: str, qty: str) -> list[str]:
        return [problem.code for problem in validate_order(Decimal(price), Decimal(qty), btc)]

    assert codes("65000.001", "0.001") == ["price_not_multiple"]
    assert codes("65000", "0.001001") == ["qty_not_multiple"]
    assert codes("65000", "0.00015") == ["below_min_notional"]
    assert codes("50000000", "0.000001") == ["qty_not_multiple", "below_min_qty"]
    assert codes("65000", "9001") == ["above_max_qty", "above_max_notional"]
    assert codes("0", "1") == ["not_positive"]
    assert codes("65000", "-1") == ["not_positive"]


def test_reasons_are_clear(btc: MarketRules) -> None:
    (problem,) = validate_order(Decimal("65000"), Decimal("0.00015"), btc)
    assert problem.field == "notional"
    assert problem.reason == "notional 9.75 USDT is below the minimum notional 10 USDT"
    with pytest.raises(PrecisionError) as error:
        check_order(Decimal("65000"), Decimal("0.00015"), btc)
    assert error.value.field == "notional"
    assert "9.75" in str(error.value)


def test_normalize_order_rounds_down_then_checks(btc: MarketRules) -> None:
    assert normalize_order(Decimal("65000.019"), Decimal("0.000169"), btc) == (
        Decimal("65000.01"),
        Decimal("0.00016"),
    )
    with pytest.raises(PrecisionError) as error:
        # 0.000159 rounds down to 0.00015, and 0.00015 × 65000 = 9.75 < 10.
        normalize_order(Decimal("65000"), Decimal("0.000159"), btc)
    assert error.value.field == "notional"
    with pytest.raises(PrecisionError) as error:
        normalize_order(Decimal("65000"), Decimal("0.000009"), btc)
    assert error.value.field == "quantity"
    assert {problem.code for problem in error.value.problems} >= {"not_positive"}


# --------------------------------------------------------------------------------------------------
# Rounding helpers and formatting


def test_round_to_tick_modes_with_an_odd_tick() -> None:
    tick = Decimal("0.005")
    assert truncate_to_tick(Decimal("2.9999"), tick) == Decimal("2.995")
    assert round_to_tick(Decimal("2.9973"), tick, "round") == Decimal("2.995")
    assert round_to_tick(Decimal("2.9975"), tick, "round") == Decimal("3.000")  # half goes up
    assert round_to_tick(Decimal("2.9951"), tick, "round-up") == Decimal("3.000")
    assert round_to_tick(Decimal("-2.9951"), tick, "round-up") == Decimal("-2.995")  # ceil
    assert round_to_tick(Decimal("-2.9951"), tick, "round-down") == Decimal("-3.000")  # floor
    assert round_to_tick(Decimal("-2.9951"), tick, "truncate") == Decimal("-2.995")
    # The result carries the tick's decimals, however many trailing zeros the input had.
    assert str(round_to_tick(Decimal("65000.0000000"), Decimal("0.01000000"), "truncate")) == "65000.00"
    assert str(round_to_tick(Decimal("1234.5"), Decimal("10"), "truncate")) == "1230"


def test_round_to_decimals_and_significant() -> None:
    assert round_to_decimals(Decimal("29991.5555"), -2, "truncate") == Decimal("29900")
    assert str(round_to_decimals(Decimal("29991.5555"), -2, "truncate")) == "29900"
    assert round_to_decimals(Decimal("2.5"), 0, "round") == Decimal("3")  # not banker's rounding
    assert round_to_significant(Decimal("0.0000077723"), 3, "truncate") == Decimal("0.00000777")
    assert round_to_significant(Decimal("999.9"), 2, "round-up") == Decimal("1000")
    assert round_to_significant(Decimal("0"), 3, "round") == Decimal("0")
    with pytest.raises(ValueError):
        round_to_significant(Decimal("1"), 0, "round")


def test_ccxt_constants_map() -> None:
    assert RoundingMode.from_ccxt(0) is RoundingMode.TRUNCATE
    assert RoundingMode.from_ccxt(2) is RoundingMode.ROUND_UP
    assert CountingMode.from_ccxt(3) is CountingMode.SIGNIFICANT_DIGITS


def test_decimal_to_str() -> None:
    assert decimal_to_str(Decimal("0.00001234")) == "0.00001234"
    assert decimal_to_str(Decimal("1.234E-5")) == "0.00001234"
    assert decimal_to_str(Decimal("2.99E+4")) == "29900"
    assert decimal_to_str(Decimal("65000.00000000")) == "65000"
    assert decimal_to_str(Decimal("65000"), Decimal("0.01000000")) == "65000.00"
    assert decimal_to_str(Decimal("0.000012"), Decimal("1E-8")) == "0.00001200"
    # The tick pads; it never cuts significant digits.
    assert decimal_to_str(Decimal("0.123456"), Decimal("0.01")) == "0.123456"
    assert decimal_to_str(Decimal("810372"), Decimal("1.00")) == "810372"
    assert decimal_to_str(Decimal("-0.000")) == "0"


def test_to_decimal() -> None:
    assert to_decimal(0.1) == Decimal("0.1")  # through str, not the binary float
    assert to_decimal(1.234e-05) == Decimal("0.00001234")
    assert to_decimal("12.50") == Decimal("12.50")
    assert to_decimal(7) == Decimal(7)
    for bad in (True, float("nan"), float("inf"), "NaN", "Infinity", "1_000", "", "0x10", None, [1]):
        with pytest.raises(ValueError):
            to_decimal(bad)


TICKS = st.sampled_from(
    [Decimal(text) for text in ("0.00000001", "0.000001", "0.00001", "0.001", "0.005", "0.01", "0.1", "0.5", "1", "10")]
)
VALUES = st.decimals(min_value=Decimal("-1e9"), max_value=Decimal("1e9"), places=10, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(value=VALUES, tick=TICKS, mode=st.sampled_from(list(RoundingMode)))
def test_round_to_tick_lands_on_the_tick_within_one_step(value: Decimal, tick: Decimal, mode: RoundingMode) -> None:
    result = round_to_tick(value, tick, mode)
    assert result % tick == 0
    assert abs(result - value) < tick
    if mode is RoundingMode.ROUND_DOWN:
        assert result <= value
    elif mode is RoundingMode.ROUND_UP:
        assert result >= value
    elif mode is RoundingMode.TRUNCATE:
        assert abs(result) <= abs(value)
    else:
        assert abs(result - value) * 2 <= tick
    assert "E" not in decimal_to_str(result).upper()
