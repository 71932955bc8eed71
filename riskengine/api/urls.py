from django.urls import path

from . import views

urlpatterns = [
    path("queue", views.QueueListView.as_view(), name="queue"),
    path("queue/<str:entry_id>/promote", views.QueuePromoteView.as_view(), name="queue-promote"),
    path("queue/<str:entry_id>/force-add", views.QueueForceAddView.as_view(), name="queue-force-add"),
    path("queue/<str:entry_id>", views.QueueDeleteView.as_view(), name="queue-delete"),
]
