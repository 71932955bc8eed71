"""The trader's pages (docs/web.md#pages). Paths are part of the contract: `/`, `/positions/`, ..."""

from django.urls import path

from .views import dashboard
from .views import settings as settings_views

app_name = "web"

urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("settings/", settings_views.settings_page, name="settings"),
    path("settings/keys/add", settings_views.key_add, name="settings-key-add"),
    path("settings/keys/<str:exchange>/validate", settings_views.key_validate, name="settings-key-validate"),
    path("settings/keys/<str:exchange>/mode", settings_views.key_mode, name="settings-key-mode"),
    path("settings/keys/<str:exchange>/delete", settings_views.key_delete, name="settings-key-delete"),
    path("settings/engine", settings_views.engine_save, name="settings-engine"),
    path("settings/overrides", settings_views.override_save, name="settings-override"),
    path("settings/overrides/delete", settings_views.override_delete, name="settings-override-delete"),
    path("settings/webhook/regenerate", settings_views.webhook_regenerate, name="settings-webhook-regenerate"),
    path("settings/notifications/<str:kind>", settings_views.notification_save, name="settings-notification"),
    path("settings/notifications/<str:kind>/test", settings_views.notification_test, name="settings-notification-test"),
    path("settings/config.json", settings_views.config_download, name="settings-config-download"),
    path("settings/restore", settings_views.config_restore, name="settings-config-restore"),
]
