from django.urls import include, path

from . import views

urlpatterns = [
    path("api/webhook/<str:user_id>", views.webhook, name="webhook"),
    path("api/", include("positions.api.urls")),
]
