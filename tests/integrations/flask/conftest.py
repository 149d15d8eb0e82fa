from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from licenzy_embed import Licenzy

from .._support import make_lz
from .app import create_app


@pytest.fixture
def lz() -> Licenzy:
    return make_lz()


@pytest.fixture
def app(lz: Licenzy) -> Flask:
    return create_app(lz)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()
