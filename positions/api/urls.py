from django.urls import path

from . import views

urlpatterns = [
    path("positions", views.PositionListView.as_view(), name="positions"),
    path("positions/<str:group_id>", views.PositionDetailView.as_view(), name="position-detail"),
    path("positions/<str:group_id>/close", views.PositionCloseView.as_view(), name="position-close"),
    path("config", views.ConfigView.as_view(), name="config"),
    path("grid/preview", views.GridPreviewView.as_view(), name="grid-preview"),
]
