"""The order ledger (positions.ledger): one way to find and walk orders of both kinds, and their fills."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from exchanges.client_ids import client_order_id_for
from positions import ledger
from positions.models import DCAOrder, ExitOrder, Fill, PositionGroup, Pyramid
from positions.rules.position import FillData

pytestmark = pytest.mark.django_db

D = Decimal


def _group(config, symbol: str = "BTC/USDT") -> PositionGroup:
    return PositionGroup.objects.create(
        user=config.user, exchange_config=config, symbol=symbol, timeframe="60", status="partially_filled"
    )


def _leg(group: PositionGroup, level: int, *, status: str = "open", **extra) -> DCAOrder:
    pyramid, _ = Pyramid.objects.get_or_create(
        group=group, index=0, defaults={"entry_price": D("65000"), "capital_usd": D("200")}
    )
    order_id = uuid.uuid4()
    return DCAOrder.objects.create(
        id=order_id,
        group=group,
        exchange_config=group.exchange_config,
        pyramid=pyramid,
        symbol=group.symbol,
        side="buy",
        order_type="limit",
        price=D("65000"),
        quantity=D("0.001"),
        client_order_id=client_order_id_for(order_id),
        pyramid_level=0,
        dca_level=level,
        expected_price=D("65000"),
        status=status,
        **extra,
    )


def _exit(group: PositionGroup, *, status: str = "open", **extra) -> ExitOrder:
    order_id = uuid.uuid4()
    return ExitOrder.objects.create(
        id=order_id,
        group=group,
        exchange_config=group.exchange_config,
        symbol=group.symbol,
        side="sell",
        order_type="limit",
        price=D("66000"),
        quantity=D("0.001"),
        client_order_id=client_order_id_for(order_id),
        purpose="tp_leg",
        status=status,
        **extra,
    )


def test_one_look_up_finds_either_kind_by_id_client_id_or_exchange_id(sim_config) -> None:
    group = _group(sim_config)
    leg = _leg(group, 0, exchange_order_id="111")
    tp = _exit(group, exchange_order_id="222")
    assert ledger.order_table(leg.pk) is DCAOrder and ledger.order_table(str(tp.pk)) is ExitOrder
    assert ledger.order_get(order_id=leg.pk) == leg and ledger.order_get(order_id=tp.pk) == tp
    assert ledger.order_find(client_order_id=leg.client_order_id) == leg
    assert ledger.order_find(client_order_id=tp.client_order_id) == tp
    assert ledger.order_find(exchange_order_id="222", config_id=sim_config.pk) == tp
    assert ledger.order_find(exchange_order_id="111") == leg
    assert ledger.order_find(client_order_id="web_not_ours") is None
    assert ledger.order_find(client_order_id=client_order_id_for(uuid.uuid4())) is None
    assert ledger.order_find(exchange_order_id="222", config_id=uuid.uuid4()) is None
    assert ledger.order_find() is None
    assert ledger.order_status(order_id=tp.pk) == "open"
    assert ledger.is_entry_leg(leg) and not ledger.is_entry_leg(tp)


def test_an_unknown_order_id_raises_and_is_not_remembered(sim_config) -> None:
    order_id = uuid.uuid4()
    with pytest.raises(ExitOrder.DoesNotExist):
        ledger.order_table(order_id)
    group = _group(sim_config)
    tp = ExitOrder.objects.create(
        id=order_id,
        group=group,
        exchange_config=sim_config,
        symbol="BTC/USDT",
        side="sell",
        order_type="market",
        quantity=D("0.001"),
        client_order_id=client_order_id_for(order_id),
        purpose="manual",
    )
    assert ledger.order_get(order_id=order_id) == tp


def test_walks_cover_both_kinds_with_their_filters(sim_config) -> None:
    group = _group(sim_config)
    other = _group(sim_config, symbol="ETH/USDT")
    resting = _leg(group, 0)
    filled = _leg(group, 1, status="filled")
    unsent = _leg(group, 2, status="pending")
    sent_unanswered = _leg(group, 3, status="pending", submit_attempts=1)
    unknown = _exit(group, status="unknown")
    canceled = _exit(group, status="canceled")
    elsewhere = _leg(other, 0)

    assert ledger.orders_of_group(group_id=group.pk) == [resting, filled, unsent, sent_unanswered, unknown, canceled]
    assert ledger.orders_of_group(group_id=group.pk, unsettled=True) == [resting, unsent, sent_unanswered, unknown]
    assert ledger.group_has_unsettled_orders(group_id=group.pk)
    watched = ledger.orders_watched(config_id=sim_config.pk)
    assert set(watched) == {resting, sent_unanswered, unknown, elsewhere}
    assert ledger.configs_with_watched_orders() == {sim_config.pk}
    assert ledger.orders_count(user_id=sim_config.user_id, statuses=["pending", "unknown"]) == 3
    assert ledger.orders_exist(group_id=group.pk, statuses=["open", "partially_filled"])
    assert not ledger.orders_exist(group_id=other.pk, statuses=["filled"])
    assert ledger.client_order_ids(config_id=sim_config.pk, statuses=["filled", "canceled"]) == {
        filled.client_order_id,
        canceled.client_order_id,
    }
    everything = ledger.orders_list(user_id=sim_config.user_id, related=("group",))
    assert {o.pk for o in everything} == {
        o.pk for o in (resting, filled, unsent, sent_unanswered, unknown, canceled, elsewhere)
    }
    assert all(ledger.is_entry_leg(o) for o in everything[:5]) and not any(
        ledger.is_entry_leg(o) for o in everything[5:]
    )
    old = timezone.now() + timedelta(seconds=1)
    assert ledger.orders_unsent(config_id=sim_config.pk, created_before=old) == [unsent]
    assert ledger.orders_unsent(config_id=sim_config.pk, created_before=old - timedelta(hours=1)) == []
    for order in (resting, filled, unsent, sent_unanswered, unknown, canceled):
        order.status = "filled"
        order.save(update_fields=["status"])
    assert not ledger.group_has_unsettled_orders(group_id=group.pk)


def test_fills_come_back_as_plain_data_in_execution_order(sim_config) -> None:
    group = _group(sim_config)
    leg = _leg(group, 0, status="filled")
    tp = _exit(group, status="filled")
    now = timezone.now()
    Fill.objects.create(
        group=group,
        exit_order=tp,
        trade_id="3",
        side="sell",
        price=D("66000"),
        quantity=D("0.0005"),
        fee=D("0.033"),
        fee_asset="USDT",
        executed_at=now + timedelta(seconds=5),
    )
    Fill.objects.create(
        group=group,
        dca_order=leg,
        trade_id="1",
        side="buy",
        price=D("65000"),
        quantity=D("0.0006"),
        fee=D("0.0000006"),
        fee_asset="BTC",
        executed_at=now,
    )
    Fill.objects.create(
        group=group,
        dca_order=leg,
        trade_id="2",
        side="buy",
        price=D("65000"),
        quantity=D("0.0004"),
        fee=D("0.0000004"),
        fee_asset="BTC",
        executed_at=now,
    )
    fills = ledger.group_fills(group_id=group.pk)
    assert [f.side for f in fills] == ["buy", "buy", "sell"]
    assert fills[0] == FillData(side="buy", price=D("65000"), quantity=D("0.0006"), fee=D("0.0000006"), fee_asset="BTC")
    assert len(ledger.order_fills(order=leg)) == 2 and len(ledger.order_fills(order=tp)) == 1
    assert ledger.order_recorded_quantity(order=leg) == D("0.001")
    assert [f.trade_id for f in Fill.objects.filter(**ledger.fill_owner(tp))] == ["3"]
    assert ledger.pyramid_entry_fills(pyramid_id=leg.pyramid_id) == fills[:2]
