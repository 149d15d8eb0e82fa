#!/usr/bin/env python
"""``python manage.py migrate && python manage.py runserver`` (or gunicorn
django_project.wsgi) from example_apps/."""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_project.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
