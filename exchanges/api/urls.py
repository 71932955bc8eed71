from django.urls import path

from . import views

urlpatterns = [
    path("keys", views.KeyListView.as_view(), name="keys-list"),
    path("keys/<str:exchange>", views.KeyDetailView.as_view(), name="keys-detail"),
    path("keys/<str:exchange>/validate", views.KeyValidateView.as_view(), name="keys-validate"),
    path("keys/<str:exchange>/mode", views.KeyModeView.as_view(), name="keys-mode"),
]
