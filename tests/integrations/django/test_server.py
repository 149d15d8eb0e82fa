"""example_apps/django_project under gunicorn with two workers: sessions, auth and CSRF on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from .._servers import (
    EXAMPLES,
    example_env,
    gunicorn,
    load_example_billing,
    paid_access_over_http,
    serve,
)


@pytest.mark.slow
def test_django_project_under_gunicorn(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    billing = load_example_billing(tmp_path, monkeypatch)
    env = example_env(tmp_path)
    subprocess.run([sys.executable, "manage.py", "migrate", "--verbosity", "0"], cwd=EXAMPLES,
                   env=env, check=True)
    with serve(gunicorn("django_project.wsgi"), env, tmp_path / "server.log") as base, \
            httpx.Client(base_url=base) as client:
        def login(user: str) -> tuple[str, dict[str, str]]:
            if "csrftoken" not in client.cookies:
                client.get("/")
            assert client.post("/login", params={"user": user}).status_code == 403  # no token
            answer = client.post("/login", params={"user": user},
                                 headers={"X-CSRFToken": client.cookies["csrftoken"]})
            assert answer.status_code == 200
            # Django rotates the CSRF token at login.
            return answer.json()["subject_ref"], {"X-CSRFToken": client.cookies["csrftoken"]}

        paid_access_over_http(client, billing.lz, login)
