from __future__ import annotations

from rest_framework import serializers

from positions.models import DCAOrder, ExitOrder, Fill, GroupEvent, PositionGroup, Pyramid


class DecimalStr(serializers.DecimalField):
    def __init__(self, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(max_digits=38, decimal_places=18, coerce_to_string=True, normalize_output=True, **kwargs)


class FillSerializer(serializers.ModelSerializer):
    price = DecimalStr()
    quantity = DecimalStr()
    fee = DecimalStr()
    fee_quote_value = DecimalStr(allow_null=True)  # a third-asset (BNB) fee in quote; docs/engine.md

    class Meta:
        model = Fill
        fields = ["trade_id", "side", "price", "quantity", "fee", "fee_asset", "fee_quote_value", "executed_at"]


class OrderFields(serializers.ModelSerializer):
    price = DecimalStr(allow_null=True)
    quantity = DecimalStr()
    filled_quantity = DecimalStr()
    filled_price = DecimalStr(allow_null=True)
    fee = DecimalStr()


class DCAOrderSerializer(OrderFields):
    expected_price = DecimalStr()
    tp_price = DecimalStr(allow_null=True)
    tp_percent = DecimalStr()
    pnl = serializers.SerializerMethodField()

    def get_pnl(self, order: DCAOrder) -> dict | None:
        return self.context.get("breakdown", {}).get("legs", {}).get(str(order.pk))

    class Meta:
        model = DCAOrder
        fields = [
            "id",
            "pyramid_level",
            "dca_level",
            "side",
            "order_type",
            "expected_price",
            "price",
            "quantity",
            "filled_price",
            "filled_quantity",
            "fee",
            "fee_asset",
            "status",
            "client_order_id",
            "exchange_order_id",
            "tp_percent",
            "tp_price",
            "created_at",
            "filled_at",
            "last_error",
            "pnl",
        ]


class ExitOrderSerializer(OrderFields):
    leg_id = serializers.UUIDField(allow_null=True)
    reference_price = DecimalStr(allow_null=True)
    slippage_percent = DecimalStr(allow_null=True)

    class Meta:
        model = ExitOrder
        fields = [
            "id",
            "purpose",
            "leg_id",
            "side",
            "order_type",
            "price",
            "quantity",
            "filled_price",
            "filled_quantity",
            "fee",
            "fee_asset",
            "status",
            "client_order_id",
            "exchange_order_id",
            "reference_price",
            "slippage_percent",
            "created_at",
            "filled_at",
            "last_error",
        ]


class PyramidSerializer(serializers.ModelSerializer):
    entry_price = DecimalStr()
    capital_usd = DecimalStr()
    orders = DCAOrderSerializer(many=True)
    pnl = serializers.SerializerMethodField()

    def get_pnl(self, pyramid: Pyramid) -> dict | None:
        return self.context.get("breakdown", {}).get("pyramids", {}).get(str(pyramid.index))

    class Meta:
        model = Pyramid
        fields = ["index", "entry_price", "capital_usd", "entry_order_type", "levels", "created_at", "orders", "pnl"]


class EventSerializer(serializers.ModelSerializer):
    class Meta:
        model = GroupEvent
        fields = ["at", "kind", "message", "details"]


class GroupListSerializer(serializers.ModelSerializer):
    exchange = serializers.CharField(source="exchange_config.exchange_name")
    filled_quantity = DecimalStr()
    avg_entry_price = DecimalStr(allow_null=True)
    total_cost = DecimalStr()
    realized_pnl = DecimalStr()
    fees_quote = DecimalStr()
    pnl = serializers.SerializerMethodField()

    class Meta:
        model = PositionGroup
        fields = [
            "id",
            "exchange",
            "symbol",
            "timeframe",
            "side",
            "status",
            "tp_mode",
            "pyramid_count",
            "max_pyramids",
            "filled_quantity",
            "avg_entry_price",
            "total_cost",
            "realized_pnl",
            "fees_quote",
            "pnl",
            "close_reason",
            "failure_reason",
            "created_at",
            "closed_at",
        ]

    def get_pnl(self, group: PositionGroup) -> dict:
        return self.context.get("pnl", {}).get(str(group.pk), {})


class GroupDetailSerializer(GroupListSerializer):
    pyramids = PyramidSerializer(many=True)
    exit_orders = ExitOrderSerializer(many=True)
    fills = FillSerializer(many=True)
    events = EventSerializer(many=True)
    trailing_stop_price = DecimalStr(allow_null=True)
    stop_loss_price = DecimalStr(allow_null=True)

    class Meta(GroupListSerializer.Meta):
        fields = [
            *GroupListSerializer.Meta.fields,
            "config",
            "trailing_active",
            "trailing_stop_price",
            "stop_loss_price",
            "pyramids",
            "exit_orders",
            "fills",
            "events",
        ]
