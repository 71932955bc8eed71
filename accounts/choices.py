from django.db import models


class Role(models.TextChoices):
    VIEWER = "viewer", "Viewer"
    TRADER = "trader", "Trader"
    MANAGER = "manager", "Manager"
    ADMIN = "admin", "Admin"


ROLE_RANK = {Role.VIEWER: 0, Role.TRADER: 1, Role.MANAGER: 2, Role.ADMIN: 3}


class LogLevel(models.TextChoices):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"


class LogCategory(models.TextChoices):
    SECURITY = "SECURITY"
    TRADING = "TRADING"
    SYSTEM = "SYSTEM"
    RISK = "RISK"
    API = "API"
    WEBHOOK = "WEBHOOK"
    ORDER = "ORDER"
    PRECISION = "PRECISION"
