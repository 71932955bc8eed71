from django.urls import path

from . import views

urlpatterns = [
    path("strategies", views.StrategyListView.as_view(), name="strategies-list"),
    path("strategies/<uuid:strategy_id>", views.StrategyDetailView.as_view(), name="strategies-detail"),
    path("strategies/<uuid:strategy_id>/enable", views.StrategyEnableView.as_view(), name="strategies-enable"),
    path("strategies/<uuid:strategy_id>/disable", views.StrategyDisableView.as_view(), name="strategies-disable"),
]
