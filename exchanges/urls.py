"""URLs of the exchanges app, included at the site root by ``tradingsite.urls``."""

from django.urls import include, path

urlpatterns = [path("api/", include("exchanges.api.urls"))]
