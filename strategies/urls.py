"""URLs of the strategies app, included at the site root by ``tradingsite.urls``."""

from django.urls import include, path

urlpatterns = [path("api/", include("strategies.api.urls"))]
