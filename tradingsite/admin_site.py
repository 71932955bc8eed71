"""The admin's app config, pointing Django at the ops console's site (tradingsite.admin_console).

Kept apart from the console so that INSTALLED_APPS can name it before any model is importable."""

from django.contrib.admin.apps import AdminConfig


class OpsAdminConfig(AdminConfig):
    default_site = "tradingsite.admin_console.OpsAdminSite"
