"""The five strategies (strategies/library.py): parameter validation, their rules on real candles, and no
look-ahead: the signal at candle t is the same whether computed on candles up to t or on all of them,
and the live tick's window (`warmup` candles) gives the signals of the whole history. No database."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from strategies.library import STRATEGIES, candles_frame, confirm_allows_entry, strategy_for
from strategies.params import SPECS, StrategyParamError

SPEC_DEFAULTS = {
    "rsi": {"length": 14, "oversold": 30, "overbought": 70},
    "macd": {"fast": 12, "slow": 26, "signal": 9},
    "bollinger": {"length": 20, "std": 2},
    "volume": {"length": 20, "multiplier": 2},
    "stochastic": {"k": 14, "d": 3, "smooth_k": 3, "oversold": 20, "overbought": 80},
}


@pytest.fixture(scope="module")
def btc_1h(shared_data: Path) -> pd.DataFrame:
    frame = pd.read_csv(shared_data / "candles" / "binance_BTC_USDT_1h.csv.gz")
    return frame.set_index("timestamp_ms").iloc[-3000:]


def test_defaults_are_the_spec_ones() -> None:
    assert {kind: spec.defaults() for kind, spec in SPECS.items()} == SPEC_DEFAULTS
    assert set(STRATEGIES) == set(SPECS)
    for spec in SPECS.values():
        assert spec.entry_rule and spec.exit_rule


@pytest.mark.parametrize(
    ("kind", "params", "field", "reason"),
    [
        ("rsi", {"length": 1}, "length", "must be between 2 and 200"),
        ("rsi", {"length": 14.5}, "length", "must be a whole number"),
        ("rsi", {"oversold": 80}, "oversold", "must be below overbought"),
        ("rsi", {"lenght": 14}, "lenght", "unknown parameter"),
        ("macd", {"fast": 30}, "fast", "must be below slow"),
        ("bollinger", {"std": "wide"}, "std", "must be a number"),
        ("volume", {"multiplier": 0.5}, "multiplier", "must be between 1.0 and 100.0"),
        ("stochastic", {"d": True}, "d", "must be a whole number"),
        ("supertrend", {}, "kind", "unknown strategy 'supertrend'"),
    ],
)
def test_bad_params_are_refused_by_field(kind: str, params: dict, field: str, reason: str) -> None:
    with pytest.raises(StrategyParamError) as caught:
        strategy_for(kind, params)
    assert reason in caught.value.fields[field][0]


def test_numeric_strings_are_accepted() -> None:
    assert strategy_for("rsi", {"length": "21", "oversold": "25"}).params == {
        "length": 21,
        "oversold": 25.0,
        "overbought": 70.0,
    }


@pytest.mark.parametrize("kind", list(STRATEGIES))
def test_each_strategy_signals_on_real_candles(kind: str, btc_1h: pd.DataFrame) -> None:
    frame = strategy_for(kind).signals(btc_1h)
    assert list(frame.index) == list(btc_1h.index)
    assert frame["entry"].sum() > 5 and frame["exit"].sum() > 5
    assert not (frame["entry"] & frame["exit"]).any()


def test_rsi_rule_is_the_cross_it_states(btc_1h: pd.DataFrame) -> None:
    frame = strategy_for("rsi").signals(btc_1h)
    rsi = frame["rsi"]
    entries = frame.index[frame["entry"]]
    for at in entries:
        position = frame.index.get_loc(at)
        assert rsi.iloc[position - 1] < 30 <= rsi.iloc[position]


@pytest.mark.parametrize("kind", list(STRATEGIES))
def test_no_look_ahead(kind: str, btc_1h: pd.DataFrame) -> None:
    """Signals of every candle t computed on candles[: t + 1] equal those computed on the whole frame."""
    strategy = strategy_for(kind)
    full = strategy.signals(btc_1h)
    step = 23  # every 23rd candle of 3,000, plus every signal candle
    checked = sorted(set(range(strategy.warmup, len(btc_1h), step)) | set(np.flatnonzero(full["entry"] | full["exit"])))
    for t in checked:
        prefix = strategy.signals(btc_1h.iloc[: t + 1]).iloc[-1]
        assert (bool(prefix["entry"]), bool(prefix["exit"])) == (
            bool(full["entry"].iloc[t]),
            bool(full["exit"].iloc[t]),
        ), t


@pytest.mark.parametrize("kind", list(STRATEGIES))
def test_live_window_gives_the_whole_historys_signals(kind: str, btc_1h: pd.DataFrame) -> None:
    """The live tick evaluates on the newest `warmup` candles only (instant warm-up, little work)."""
    strategy = strategy_for(kind)
    full = strategy.signals(btc_1h)
    for t in range(len(btc_1h) - 300, len(btc_1h)):
        window = strategy.signals(btc_1h.iloc[t + 1 - strategy.warmup : t + 1]).iloc[-1]
        assert (bool(window["entry"]), bool(window["exit"])) == (
            bool(full["entry"].iloc[t]),
            bool(full["exit"].iloc[t]),
        ), t


def test_too_few_candles_give_no_signal() -> None:
    frame = candles_frame([(i * 60_000, 1.0, 1.1, 0.9, 1.0 + i / 100, 10.0) for i in range(5)])
    for kind in STRATEGIES:
        signals = strategy_for(kind).signals(frame)
        assert not signals["entry"].any() and not signals["exit"].any()
    assert confirm_allows_entry(frame) is False


def test_candles_frame_keeps_open_times_and_columns() -> None:
    frame = candles_frame([(60_000, 1.0, 2.0, 0.5, 1.5, 3.0), (120_000, 1.5, 2.5, 1.0, 2.0, 4.0)])
    assert list(frame.index) == [60_000, 120_000]
    assert frame.loc[120_000, "close"] == 2.0 and frame.loc[60_000, "volume"] == 3.0


def test_web_processes_do_not_load_pandas() -> None:
    """The API, admin and URLs of strategies validate params without pandas, pandas-ta or numba (a web
    process never evaluates a strategy; the worker's tick does)."""
    import os
    import subprocess
    import sys

    code = (
        "import django; django.setup(); import strategies.urls, strategies.admin, strategies.selectors, sys; "
        "print(sorted(m for m in ('pandas', 'pandas_ta', 'numba') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        cwd=Path(__file__).parents[2],
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


@pytest.mark.parametrize("kind", list(STRATEGIES))
def test_one_pass_over_many_series_equals_each_on_its_own(kind: str, shared_data: Path) -> None:
    """`last_many` (the live tick: every series of a strategy in one pandas-ta pass) answers what `last`
    answers for each window alone, on real candles of five markets at 300 closes each."""
    strategy = strategy_for(kind)
    windows = []
    for base in ("BTC", "ETH", "SOL", "XRP", "BNB"):
        frame = pd.read_csv(shared_data / "candles" / f"binance_{base}_USDT_1h.csv.gz").set_index("timestamp_ms")
        for end in range(len(frame) - 300, len(frame)):
            windows.append(frame.iloc[end - strategy.warmup - 5 : end])
    windows.append(windows[0].iloc[-10:])  # too short: no signal
    alone = [strategy.last(window.iloc[-strategy.warmup :]) for window in windows]
    assert strategy.last_many(windows) == alone
    assert sum(entry or exit_ for entry, exit_ in alone) > 10
