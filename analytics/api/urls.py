from django.urls import include, path

from ..advisor import api as advisor_api
from . import views

urlpatterns = [
    path("tasks", views.TaskListView.as_view(), name="tasks-list"),
    path("tasks/<uuid:task_id>", views.TaskDetailView.as_view(), name="tasks-detail"),
    path("tasks/<str:kind>", views.TaskSubmitView.as_view(), name="tasks-submit"),
    path("backtests", views.BacktestListView.as_view(), name="backtests-list"),
    path("backtests/<uuid:backtest_id>", views.BacktestDetailView.as_view(), name="backtests-detail"),
    path("metrics/performance", views.PerformanceView.as_view(), name="metrics-performance"),
    path("ml/", include("analytics.ml.urls")),  # the model registry (docs/ml.md#registry)
    path("advisor/reviews", advisor_api.ReviewListView.as_view(), name="advisor-reviews"),  # docs/advisor.md
]
