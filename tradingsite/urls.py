from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from . import views
from .metrics import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("allauth.urls")),
    path("api/health", views.health, name="api-health"),
    path("metrics", metrics_view, name="metrics"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/", include("accounts.api.urls")),
    path("", include("web.urls")),
]

for app in ("exchanges", "positions", "riskengine", "strategies", "analytics", "notifications"):
    try:
        urlpatterns.append(path("", include(f"{app}.urls")))
    except ModuleNotFoundError as exc:
        if exc.name not in (f"{app}.urls",):
            raise

handler404 = "tradingsite.views.not_found"
handler500 = "tradingsite.views.server_error"
