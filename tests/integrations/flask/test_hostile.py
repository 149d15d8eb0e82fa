"""Hostile requests through Flask's test client (assertions in _hostile.py)."""

from __future__ import annotations

from typing import Any

import pytest
from werkzeug.test import EnvironBuilder, run_wsgi_app

from licenzy_embed import Licenzy

from .._hostile import *  # noqa: F403 - the shared hostile-request tests
from .._hostile import CountingBody
from .app import create_app


class FlaskRaw:
    def __init__(self, lz: Licenzy, **limits: int) -> None:
        self.app = create_app(lz)
        for name, value in limits.items():  # the Flask idiom: app.config keys
            self.app.config[f"LICENZY_{name.upper()}"] = value
        self.client = self.app.test_client()

    def send(self, method: str, path: str, body: bytes | CountingBody,
             headers: dict[str, bytes], *, declare_length: bool = True) -> tuple[int, bytes]:
        text = {name: value.decode("latin-1") for name, value in headers.items()}
        if isinstance(body, CountingBody):
            return self._stream(method, path, body, text, declare_length)
        response = self.client.open(path, method=method, headers=text, data=body)
        return response.status_code, response.get_data()

    def _stream(self, method: str, path: str, body: CountingBody, headers: dict[str, str],
                declare_length: bool) -> tuple[int, bytes]:
        # The test client measures a stream by seeking it; a server hands it over as is.
        environ = EnvironBuilder(path=path, method=method, headers=headers).get_environ()
        environ["wsgi.input"] = body
        if declare_length:
            environ["CONTENT_LENGTH"] = str(body.size)
        else:  # a chunked body, as a server that de-chunks it hands it over
            environ.pop("CONTENT_LENGTH", None)
            environ["wsgi.input_terminated"] = True
        app_iter, status, _ = run_wsgi_app(self.app.wsgi_app, environ, buffered=True)
        return int(status.split()[0]), b"".join(app_iter)


@pytest.fixture
def make_raw() -> Any:
    return FlaskRaw


@pytest.fixture
def sized_path() -> str:
    return "/sync/sized"
