from django.urls import path

from .api import views

urlpatterns = [
    path("api/risk", views.RiskView.as_view(), name="risk"),
    path("api/risk/run", views.RiskRunView.as_view(), name="risk-run"),
    path(
        "api/risk/groups/<str:group_id>/block",
        views.RiskFlagView.as_view(flag="blocked", value=True),
        name="risk-block",
    ),
    path(
        "api/risk/groups/<str:group_id>/unblock",
        views.RiskFlagView.as_view(flag="blocked", value=False),
        name="risk-unblock",
    ),
    path(
        "api/risk/groups/<str:group_id>/skip-once",
        views.RiskFlagView.as_view(flag="skip_once", value=True),
        name="risk-skip-once",
    ),
]
