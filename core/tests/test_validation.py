"""The shared validation layer (core/validation.py): what each check refuses, and that it says why."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.validation import (
    InvalidValueError,
    decimal_bounded,
    json_problems,
    json_sanitized,
    sanitized_text,
    text_problem,
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("65000.5", Decimal("65000.5")), (3, Decimal(3)), (0.1, Decimal("0.1")), (Decimal("-2.5"), Decimal("-2.5"))],
)
def test_decimal_bounded_accepts_numbers_a_money_column_holds(value, expected):
    assert decimal_bounded(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "1e309",
        "1e30",
        10**25,
        Decimal("1e20"),
        "١٢٣",  # Arabic-Indic digits: Python's Decimal takes them, a request may not
        "1_000",
        "0x10",
        "NaN",
        "Infinity",
        "",
        " ",
        True,
        None,
        [1],
        "9" * 80,
        "1e-30",
    ],
)
def test_decimal_bounded_refuses_what_would_overflow_or_is_not_a_plain_number(value):
    with pytest.raises(InvalidValueError) as caught:
        decimal_bounded(value)
    assert caught.value.reason.startswith("must")


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a\x00b", "must not contain NUL characters"),
        ("\ud800", "must be valid Unicode (it holds a lone surrogate)"),
        ("x" * 11, "is longer than 10 characters"),
    ],
)
def test_text_problem_names_the_reason(text, problem):
    assert text_problem(text, max_length=10) == problem


def test_text_problem_lets_ordinary_unicode_through():
    assert text_problem("BTC/USDT ✓ 日本") is None


def test_json_problems_names_each_bad_path_at_any_depth_without_recursion():
    deep: object = "leaf"
    for _ in range(5000):  # far beyond Python's recursion limit
        deep = [deep]
    problems = json_problems({"tv": {"symbol": "BTC\x00"}, "a\x00": 1, "s": ["ok", "\udc80"], "deep": deep})
    assert problems["tv.symbol"] == ["must not contain NUL characters"]
    assert problems["body"] == ["a key must not contain NUL characters"]
    assert problems["s[1]"] == ["must be valid Unicode (it holds a lone surrogate)"]
    assert any("nested deeper than 32 levels" in reason for reason in problems["deep" + "[0]" * 31])
    assert json_problems({"tv": {"symbol": "BTCUSDT", "price": 1.5}, "n": [1, None, True]}) == {}
    assert json_problems({"x": float("inf")}) == {"x": ["must be a finite number"]}


def test_json_sanitized_is_storable():
    deep: object = 1
    for _ in range(100):
        deep = {"k": deep}
    cleaned = json_sanitized({"a\x00": "b\x00\ud800", "deep": deep})
    assert json_problems(cleaned) == {}
    assert cleaned["a"] == "b\ufffd"
    assert sanitized_text("ok") == "ok"
