"""``path("billing/", include("licenzy_embed.integrations.django.urls"))`` mounts
``billing/webhooks/stripe``, ``billing/checkout`` and ``billing/access`` (names
``licenzy:webhook``, ``licenzy:checkout``, ``licenzy:access``). No trailing slashes: these are
API endpoints, and a POST that APPEND_SLASH would redirect loses its body."""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "licenzy"

urlpatterns = [
    path("webhooks/stripe", views.stripe_webhook, name="webhook"),
    path("checkout", views.checkout, name="checkout"),
    path("access", views.access, name="access"),
]
