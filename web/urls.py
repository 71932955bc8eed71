"""The trader's pages (docs/web.md#pages). Paths are part of the contract: `/`, `/positions/`, ..."""

from django.urls import path

from .views import backtests as backtest_views
from .views import dashboard
from .views import group as group_views
from .views import logs as logs_views
from .views import performance as performance_views
from .views import positions as positions_views
from .views import queue as queue_views
from .views import risk as risk_views
from .views import settings as settings_views
from .views import signals as signals_views
from .views import strategies as strategies_views

app_name = "web"

urlpatterns = [
    path("", dashboard.dashboard, name="dashboard"),
    path("positions/", positions_views.positions, name="positions"),
    path("positions/<uuid:group_id>/", group_views.group, name="group"),
    path("positions/<uuid:group_id>/candles", group_views.group_candles, name="group-candles"),
    path("positions/<uuid:group_id>/close", group_views.group_close, name="group-close"),
    path("positions/<uuid:group_id>/stop-averaging", group_views.group_stop, name="group-stop-averaging"),
    path("positions/<uuid:group_id>/risk/<str:flag>", group_views.group_flag, name="group-flag"),
    path("queue/", queue_views.queue, name="queue"),
    path("queue/<uuid:entry_id>/promote", queue_views.queue_promote_view, name="queue-promote"),
    path("queue/<uuid:entry_id>/force-add", queue_views.queue_force_add_view, name="queue-force-add"),
    path("queue/<uuid:entry_id>/remove", queue_views.queue_remove_view, name="queue-remove"),
    path("risk/", risk_views.risk, name="risk"),
    path("risk/run", risk_views.risk_run_view, name="risk-run"),
    path("risk/groups/<uuid:group_id>/<str:flag>", risk_views.risk_flag_view, name="risk-flag"),
    path("risk/guards/pause", risk_views.guard_pause_view, name="guard-pause"),
    path("risk/guards/flatten", risk_views.guard_flatten_view, name="guard-flatten"),
    path("risk/guards/reset", risk_views.guard_reset_view, name="guard-reset"),
    path("risk/guards/limits", risk_views.guard_limits_view, name="guard-limits"),
    path("signals/", signals_views.signals, name="signals"),
    path("logs/", logs_views.logs, name="logs"),
    path("strategies/", strategies_views.strategies, name="strategies"),
    path("strategies/new", strategies_views.strategy_new_view, name="strategy-new"),
    path("strategies/<uuid:strategy_id>/edit", strategies_views.strategy_edit_view, name="strategy-edit"),
    path("strategies/<uuid:strategy_id>/enable", strategies_views.strategy_enable_view, name="strategy-enable"),
    path("strategies/<uuid:strategy_id>/disable", strategies_views.strategy_disable_view, name="strategy-disable"),
    path("strategies/<uuid:strategy_id>/delete", strategies_views.strategy_delete_view, name="strategy-delete"),
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
    path("performance/", performance_views.performance, name="performance"),
    path("backtests/", backtest_views.backtests, name="backtests"),
    path("backtests/run", backtest_views.backtest_submit, name="backtest-run"),
    path("backtests/compare", backtest_views.backtest_compare, name="backtest-compare"),
    path("backtests/tasks/<uuid:task_id>/revoke", backtest_views.task_revoke_view, name="task-revoke"),
    path("backtests/optimize/", backtest_views.optimizations, name="optimizations"),
    path("backtests/optimize/run", backtest_views.optimize_submit, name="optimize-run"),
    path("backtests/optimize/<uuid:task_id>/", backtest_views.optimization_detail, name="optimization"),
    path(
        "backtests/optimize/<uuid:task_id>/apply/<int:rank>",
        backtest_views.optimization_apply,
        name="optimization-apply",
    ),
    path("backtests/models/", backtest_views.models, name="models"),
    path("backtests/models/train", backtest_views.train_submit, name="model-train"),
    path("backtests/models/<uuid:model_id>/<str:action>", backtest_views.model_action, name="model-action"),
    path("backtests/<uuid:backtest_id>/", backtest_views.backtest_detail, name="backtest"),
    path("backtests/<uuid:backtest_id>/candles", backtest_views.backtest_candles, name="backtest-candles"),
]
