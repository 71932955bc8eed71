from django.urls import path

from . import views

urlpatterns = [
    path("notifications", views.NotificationSettingsView.as_view(), name="notifications"),
    path("notifications/test", views.NotificationTestView.as_view(), name="notifications-test"),
    path("notifications/deliveries", views.DeliveryListView.as_view(), name="notifications-deliveries"),
    path("notifications/reports", views.ReportListView.as_view(), name="notifications-reports"),
    path(
        "notifications/reports/<str:report_id>/chart.png", views.ReportChartView.as_view(), name="notifications-chart"
    ),
    path("notifications/telegram/<str:channel_id>", views.telegram_update, name="notifications-telegram"),
]
