"""A Django project selling access with licenzy-embed.

Run it from the repository (after ``make .venv/.installed``) and open http://127.0.0.1:8000::

    .venv/bin/python example_apps/manage.py runexample

(``PORT=…`` changes the port; in production: ``manage.py migrate`` in the deploy, then
``gunicorn django_project.wsgi`` from example_apps/). Without ``STRIPE_API_KEY`` it runs in
test mode: the Stripe simulator and its local checkout page stand in for Stripe, and
entitlements live in example_apps/licenzy-example.db (see billing.py).
"""

from __future__ import annotations

import os
from pathlib import Path

HERE = Path(__file__).resolve().parent

SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "change-me")
DEBUG = os.environ.get("DJANGO_DEBUG") == "1"
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
USE_TZ = True
ROOT_URLCONF = "django_project.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "licenzy_embed.integrations.django",
    "django_project",  # the demo users' migration and the runexample command
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_DATABASE", str(HERE.parent / "django-example.db")),
    }
}

LICENZY = {
    # The Licenzy instance (or a factory returning one). The subject is request.user.pk for
    # a signed-in user (the default resolver; "SUBJECT_RESOLVER" replaces it).
    "INSTANCE": "billing.lz",
    # Denials as pages for browsers, as the library's JSON for other clients.
    "DENIAL_HANDLER": "django_project.views.denied",
}
