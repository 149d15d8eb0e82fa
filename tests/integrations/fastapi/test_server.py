"""example_apps/fastapi_app.py under uvicorn with two workers sharing a SQLite store."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from .._servers import example_env, load_example_billing, paid_access_over_http, serve, uvicorn


@pytest.mark.slow
def test_fastapi_app_under_uvicorn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    billing = load_example_billing(tmp_path, monkeypatch)
    with serve(uvicorn("fastapi_app:app"), example_env(tmp_path),
               tmp_path / "server.log") as base, httpx.Client(base_url=base) as client:
        def login(user: str) -> tuple[str, dict[str, str]]:
            assert client.post("/login", params={"user": user}).status_code == 200
            return user, {}

        paid_access_over_http(client, billing.lz, login)
