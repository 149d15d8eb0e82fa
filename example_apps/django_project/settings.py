"""A Django project selling access with licenzy-embed.

    pip install 'licenzy-embed[django,sqlalchemy]' gunicorn
    cd example_apps && python manage.py migrate && gunicorn django_project.wsgi
"""

from __future__ import annotations

import os

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
        "NAME": os.environ.get("DJANGO_DATABASE", "django-example.sqlite3"),
    }
}

LICENZY = {
    # The Licenzy instance (or a factory returning one). The subject defaults to
    # request.user.pk for a signed-in user; "SUBJECT_RESOLVER" and "DENIAL_HANDLER" take
    # dotted paths to replace it or the JSON denials.
    "INSTANCE": "billing.lz",
}
