"""The billing routes under a non-default prefix, beside the app's own routes."""

from __future__ import annotations

from django.urls import include, path

from . import views

urlpatterns = [
    path("api/v2/payments/", include("licenzy_embed.integrations.django.urls")),
    path("csrf", views.csrf),
    path("app/post", views.app_post),
    path("sync/report", views.sync_report),
]
