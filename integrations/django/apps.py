from __future__ import annotations

from django.apps import AppConfig


class LicenzyConfig(AppConfig):  # type: ignore[misc, unused-ignore]
    name = "licenzy_embed.integrations.django"
    label = "licenzy_embed"
    verbose_name = "Licenzy billing"

    def ready(self) -> None:
        # Validate LICENZY (and build the instance) at startup: ImproperlyConfigured here
        # stops `manage.py check`/runserver/gunicorn instead of failing a customer's request.
        from .conf import get_settings

        get_settings()
