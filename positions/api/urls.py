from django.urls import path

from . import guards, queue, views

urlpatterns = [
    path("positions", views.PositionListView.as_view(), name="positions"),
    path("positions/<str:group_id>", views.PositionDetailView.as_view(), name="position-detail"),
    path("positions/<str:group_id>/close", views.PositionCloseView.as_view(), name="position-close"),
    path("positions/<str:group_id>/stop-averaging", guards.StopAveragingView.as_view(), name="position-stop-averaging"),
    path("guards", guards.GuardsView.as_view(), name="guards"),
    path("guards/flatten", guards.FlattenView.as_view(), name="guards-flatten"),
    path("config", views.ConfigView.as_view(), name="config"),
    path("grid/preview", views.GridPreviewView.as_view(), name="grid-preview"),
    path("queue", queue.QueueListView.as_view(), name="queue"),
    path("queue/<str:entry_id>/promote", queue.QueuePromoteView.as_view(), name="queue-promote"),
    path("queue/<str:entry_id>/force-add", queue.QueueForceAddView.as_view(), name="queue-force-add"),
    path("queue/<str:entry_id>", queue.QueueDeleteView.as_view(), name="queue-delete"),
]
