"""Django adapter: an app for ``INSTALLED_APPS``, configured by one ``LICENZY`` setting.

::

    INSTALLED_APPS = [..., "licenzy_embed.integrations.django"]
    LICENZY = {
        "INSTANCE": "myproject.billing.lz",              # a Licenzy, or a factory returning one
        "SUBJECT_RESOLVER": "myproject.billing.subject",  # optional: default request.user.pk
        "DENIAL_HANDLER": "myproject.billing.denied",     # optional: (request, error) -> response
    }
    urlpatterns = [path("billing/", include("licenzy_embed.integrations.django.urls")), ...]

Views are guarded with :func:`requires_access` and :func:`consumes_usage` from
``licenzy_embed.integrations.django.decorators`` (re-exported here).
"""

from __future__ import annotations

try:
    import asgiref  # noqa: F401
    import django  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "licenzy_embed.integrations.django needs Django: pip install 'licenzy-embed[django]'"
    ) from exc

from licenzy_embed.errors import AccessDenied, Unauthenticated

from .conf import get_licenzy
from .decorators import consumes_usage, requires_access

__all__ = ["AccessDenied", "Unauthenticated", "consumes_usage", "get_licenzy",
           "requires_access"]
