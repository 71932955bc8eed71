"""The pool never passes its cap: 20 new entries for 20 identities at once with 10 free slots, every time."""

from __future__ import annotations

import json

import pytest

from positions.models import PositionGroup, QueuedSignal
from positions.services.configs import config_set
from positions.services.intake import signal_receive
from positions.tests.conftest import alert
from positions.tests.test_intake_locks import _concurrently

pytestmark = pytest.mark.django_db(transaction=True)

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT"]
TIMEFRAMES = ["15", "60", "240", "1D"]  # 5 symbols × 4 timeframes: 20 identities


@pytest.mark.parametrize("round_", range(3))
def test_twenty_entries_at_once_fill_exactly_the_ten_free_slots(trader, sim_config, round_):
    config_set(user=trader, data={"max_open_groups": 12}, partial=True)
    for index in range(2):  # 2 slots taken already
        PositionGroup.objects.create(
            user=trader, exchange_config=sim_config, symbol="PEPE/USDT", timeframe=["5m", "1m"][index]
        )
    bodies = [
        json.dumps(
            alert(
                trader.webhook_secret,
                tv={"symbol": symbol, "timeframe": tf},
                strategy_info={"trade_id": f"R{round_}-{symbol}-{tf}"},
            )
        ).encode()
        for symbol in SYMBOLS
        for tf in TIMEFRAMES
    ]
    results = _concurrently(
        [
            lambda body=body: signal_receive(
                user_id=str(trader.pk), raw=body, content_type="application/json", ip="127.0.0.1"
            )
            for body in bodies
        ]
    )
    classes = sorted(r.body.get("classification") for r in results)
    assert classes == ["new_entry"] * 10 + ["queued"] * 10
    assert PositionGroup.objects.filter(user=trader).count() == 12
    assert QueuedSignal.objects.filter(user=trader).count() == 10
