from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and logs"

    def ready(self) -> None:
        from . import signals  # noqa: F401  (audit of logins, logouts, failures)
