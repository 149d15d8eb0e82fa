"""Run an example app in a real server process (gunicorn or uvicorn) on 127.0.0.1.

The app shares its entitlement database (a SQLite file) with the test process, so the test
can create checkout sessions with the Stripe simulator and then check what the server did,
while the server's several worker processes see one state.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from licenzy_embed import Licenzy
from licenzy_embed.testing import StripeSimulator, sign_payload

from ._support import WEBHOOK_SECRET, free_port

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "example_apps"
BIN = Path(sys.executable).parent


def example_env(tmp_path: Path) -> dict[str, str]:
    # Nothing of the test process's own configuration (its DJANGO_SETTINGS_MODULE, say).
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("STRIPE_", "PRICE_", "DJANGO_", "LICENZY_", "APP_"))}
    env.update({
        "LICENZY_DATABASE_URL": f"sqlite:///{tmp_path / 'licenzy.db'}",
        "STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
        "DJANGO_DATABASE": str(tmp_path / "django.sqlite3"),
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    return env


def gunicorn(app: str, *, workers: int = 2) -> list[str]:
    return [str(BIN / "gunicorn"), "--workers", str(workers), "--log-level", "warning", app]


def uvicorn(app: str, *, workers: int = 2) -> list[str]:
    return [str(BIN / "uvicorn"), "--workers", str(workers), "--log-level", "warning", app]


@contextmanager
def serve(command: list[str], env: dict[str, str], log: Path) -> Iterator[str]:
    """Start ``command`` bound to a free port; yield its base URL once it answers HTTP."""
    port = free_port()
    bind = (["--bind", f"127.0.0.1:{port}"] if "gunicorn" in command[0]
            else ["--host", "127.0.0.1", "--port", str(port)])
    with log.open("wb") as out:
        process = subprocess.Popen([*command, *bind], cwd=EXAMPLES, env=env, stdout=out,
                                   stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(process, base, log)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hung server
            process.kill()
            process.wait()


def _wait_until_up(process: subprocess.Popen[bytes], base: str, log: Path) -> None:
    # A readiness poll, not a timed assertion: the deadline only bounds a broken start.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited ({process.returncode}):\n{log.read_text()}")
        try:
            with httpx.Client(base_url=base, timeout=2) as client:
                client.get("/billing/access")
            return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"the server did not start:\n{log.read_text()}")


def load_example_billing(tmp_path: Path, monkeypatch: Any) -> Any:
    """Import example_apps/billing.py in the test process with the server's environment, so
    its ``lz`` is a second Licenzy on the server's database (and migrates it first, before
    the workers start)."""
    for key, value in example_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    for key in [k for k in os.environ if k.startswith(("STRIPE_API", "PRICE_"))]:
        monkeypatch.delenv(key)
    spec = importlib.util.spec_from_file_location(f"example_billing_{tmp_path.name}",
                                                  EXAMPLES / "billing.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


Login = Callable[[str], tuple[str, dict[str, str]]]


def paid_access_over_http(client: httpx.Client, lz: Licenzy, login: Login) -> None:
    """The scenario every server test runs. ``login(name)`` signs the client in and returns
    the subject_ref and any headers its POSTs need (Django's CSRF token).

    Signed in as alice: nothing bought → 402 (a metered view too: nothing to spend from); a
    signed webhook posted over HTTP grants access; the decorated views answer; a metered
    call is charged once even when retried.
    Then bob starts a checkout over HTTP, which is his whatever the body says."""
    assert client.get("/report").status_code == 401
    subject, headers = login("alice")
    assert client.get("/report").status_code == 402
    assert client.post("/generate", headers=headers).status_code == 402  # nothing to spend
    assert client.get("/billing/access").json()["has_access"] is False

    # The purchase: a session this process's simulator knows (the server's own simulator
    # lives in the server), completed by a signed webhook posted to the server over HTTP.
    delivered: list[tuple[bytes, str, httpx.Response]] = []

    def over_http(payload: bytes, signature: str) -> httpx.Response:
        answer = client.post("/billing/webhooks/stripe", content=payload,
                             headers={"Stripe-Signature": signature,
                                      "Content-Type": "application/json"})
        delivered.append((payload, signature, answer))
        return answer

    simulator = StripeSimulator.for_licenzy(lz)
    simulator.deliver_with(over_http)
    session = lz.create_checkout_session(subject, "CREDITS_100", idempotency_key="buy-1")
    simulator.complete_checkout(session)  # raises DeliveryFailed on a non-2xx answer
    assert delivered[0][2].json()["outcome"] == "processed"
    payload, signature, _ = delivered[0]
    assert over_http(payload, signature).json()["outcome"] == "duplicate"
    forged = over_http(payload, sign_payload(payload, "whsec_forged"))
    assert (forged.status_code, forged.json()["error"]) == (400, "invalid_signature")

    body = client.get("/billing/access").json()
    assert body["subject_ref"] == subject and body["has_access"] is True
    assert client.get("/report").status_code == 200
    retry = {**headers, "Idempotency-Key": "gen-1"}
    assert client.post("/generate", headers=retry).status_code == 200
    assert client.post("/generate", headers=retry).status_code == 200
    assert client.post("/generate", headers=headers).status_code == 200
    assert [e.usage_remaining for e in lz.entitlements(subject)] == [80]

    bob, headers = login("bob")
    response = client.post("/billing/checkout", json={"product_code": "WEEK_PASS",
                                                      "subject_ref": subject},
                           headers={**headers, "Idempotency-Key": "chk-1"})
    assert response.status_code == 200, response.text
    assert response.json()["subject_ref"] == bob != subject
    assert response.json()["checkout_url"].startswith("http")
    assert client.get("/report").status_code == 402  # checkout alone grants nothing
