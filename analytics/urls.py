"""URLs of the analytics app, included at the site root by ``tradingsite.urls``."""

from django.urls import include, path

urlpatterns = [path("api/", include("analytics.api.urls"))]
