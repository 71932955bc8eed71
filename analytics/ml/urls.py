"""`/api/ml/...`, included by `analytics.api.urls`."""

from django.urls import path

from . import api

urlpatterns = [
    path("models", api.ModelListView.as_view(), name="ml-models"),
    path("models/rollback", api.ModelRollbackView.as_view(), name="ml-models-rollback"),
    path("models/<uuid:model_id>", api.ModelDetailView.as_view(), name="ml-model"),
    path("models/<uuid:model_id>/deploy", api.ModelDeployView.as_view(), name="ml-model-deploy"),
]
