from django.urls import path

from . import views

urlpatterns = [
    path("auth/register", views.RegisterView.as_view(), name="auth-register"),
    path("auth/login", views.LoginView.as_view(), name="auth-login"),
    path("auth/logout", views.LogoutView.as_view(), name="auth-logout"),
    path("auth/refresh", views.RefreshView.as_view(), name="auth-refresh"),
    path("auth/forgot-password", views.ForgotPasswordView.as_view(), name="auth-forgot"),
    path("auth/reset-password", views.ResetPasswordView.as_view(), name="auth-reset"),
    path("account", views.AccountView.as_view(), name="account"),
    path("account/webhook-secret", views.WebhookSecretView.as_view(), name="account-webhook-secret"),
    path("logs/system", views.SystemLogListView.as_view(), name="logs-system"),
    path("logs/audit", views.AuditLogListView.as_view(), name="logs-audit"),
    path("logs/system/<int:days_old>", views.SystemLogDeleteView.as_view(), name="logs-system-delete"),
    path("logs/export", views.LogExportView.as_view(), name="logs-export"),
]
