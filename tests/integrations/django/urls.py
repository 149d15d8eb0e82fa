from __future__ import annotations

from django.urls import include, path

from . import views

urlpatterns = [
    path("billing/", include("licenzy_embed.integrations.django.urls")),
    path("sync/report", views.sync_report),
    path("async/report", views.async_report),
    path("class/report", views.ReportView.as_view()),
    path("sync/generate", views.sync_generate),
    path("async/generate", views.async_generate),
    path("sync/boom", views.sync_boom),
    path("async/boom", views.async_boom),
    path("sync/fail500", views.sync_fail500),
    path("async/fail500", views.async_fail500),
    path("sync/sized", views.sync_sized),
    path("sync/redirect", views.sync_redirect),
    path("sync/slow", views.sync_slow),
    path("async/slow", views.async_slow),
    path("features/reports", views.feature_reports),
    path("features/sso", views.feature_sso),
    path("features/api", views.feature_api),
    path("features/typo", views.feature_typo),
    path("csrf", views.csrf),
    path("app/post", views.app_post),
]
