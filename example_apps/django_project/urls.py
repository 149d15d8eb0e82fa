from __future__ import annotations

from django.urls import include, path

from . import views

urlpatterns = [
    path("", views.home),
    path("login", views.demo_login),
    path("logout", views.demo_logout),
    path("pricing", views.pricing),
    path("report", views.report),
    path("generate", views.generate),
    path("billing/success", views.success),
    path("billing/cancel", views.cancel),
    path("billing/", include("licenzy_embed.integrations.django.urls")),
]
