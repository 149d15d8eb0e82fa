from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from licenzy_embed import Licenzy

from .._support import make_lz
from .app import create_app


@pytest.fixture
def lz() -> Licenzy:
    return make_lz()


@pytest.fixture
def app(lz: Licenzy) -> Starlette:
    return create_app(lz)


@pytest.fixture
def client(app: Starlette) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client
