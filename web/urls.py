"""The trader's pages (docs/web.md#pages). Paths are part of the contract: `/`, `/positions/`, ..."""

from django.urls import path

from .views import dashboard

app_name = "web"

urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
]
