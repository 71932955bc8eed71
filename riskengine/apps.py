from django.apps import AppConfig


class RiskengineConfig(AppConfig):
    name = "riskengine"
