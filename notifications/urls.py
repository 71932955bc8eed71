from django.urls import include, path

urlpatterns = [path("api/", include("notifications.api.urls"))]
