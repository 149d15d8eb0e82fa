"""The named demo users the sign-in page offers (``manage.py migrate`` creates them).

They have no usable password: the example signs them in with ``django.contrib.auth.login``
directly, where a real project would use ``LoginView`` (or its SSO)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.hashers import make_password
from django.db import migrations

DEMO_USERS = ("alice", "bob")  # as example_apps/_pages.py lists them


def create(apps: Any, schema_editor: Any) -> None:
    user = apps.get_model("auth", "User")
    for name in DEMO_USERS:
        user.objects.get_or_create(username=name, defaults={"password": make_password(None)})


def remove(apps: Any, schema_editor: Any) -> None:
    apps.get_model("auth", "User").objects.filter(username__in=DEMO_USERS).delete()


class Migration(migrations.Migration):
    dependencies = [("auth", "0012_alter_user_first_name_max_length")]
    operations = [migrations.RunPython(create, remove)]
