#!/usr/bin/env python
"""Django's command-line utility for the example project.

``python example_apps/manage.py runexample`` migrates and serves it (see
django_project/settings.py); ``migrate``, ``runserver`` and the rest work as usual."""

from __future__ import annotations

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "django_project.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
