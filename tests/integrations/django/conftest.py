"""Django without pytest-django: configure, set up, and build the test database once."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import django
import pytest

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.integrations.django.settings")
django.setup()

from django.contrib.auth.models import User  # noqa: E402
from django.db import connection  # noqa: E402
from django.test.utils import (  # noqa: E402
    override_settings,
    setup_test_environment,
    teardown_test_environment,
)

from licenzy_embed import Licenzy  # noqa: E402

from .._support import make_lz  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def django_test_database() -> Iterator[None]:
    setup_test_environment()
    name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    User.objects.create_user("alice", password="pw")
    User.objects.create_user("bob", password="pw")
    yield
    connection.creation.destroy_test_db(name, verbosity=0)
    teardown_test_environment()


@pytest.fixture
def alice() -> Any:
    return User.objects.get(username="alice")


@pytest.fixture
def bob() -> Any:
    return User.objects.get(username="bob")


@pytest.fixture
def lz() -> Iterator[Licenzy]:
    """A fresh Licenzy per test, installed through the LICENZY setting."""
    instance = make_lz()
    with override_settings(LICENZY={"INSTANCE": instance}):
        yield instance
