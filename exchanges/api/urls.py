from django.urls import path

from . import candles, views

urlpatterns = [
    path("keys", views.KeyListView.as_view(), name="keys-list"),
    path("keys/<str:exchange>", views.KeyDetailView.as_view(), name="keys-detail"),
    path("keys/<str:exchange>/validate", views.KeyValidateView.as_view(), name="keys-validate"),
    path("keys/<str:exchange>/mode", views.KeyModeView.as_view(), name="keys-mode"),
    path("candles", candles.CandleListView.as_view(), name="candles-list"),
    path("candles/backfill", candles.CandleBackfillView.as_view(), name="candles-backfill"),
    path(
        "candles/backfill/<uuid:backfill_id>",
        candles.CandleBackfillDetailView.as_view(),
        name="candles-backfill-detail",
    ),
]
