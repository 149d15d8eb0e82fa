"""Browser fixtures for the example apps' tests: Debian's Chromium driven by Playwright, each
app started as a real server in a subprocess, and a screenshot per step.

No browser is ever downloaded: Playwright drives ``/usr/bin/chromium`` (``.ci/run`` installs it).
Without it, or without the ``playwright`` package, these tests skip, and fail instead under
``LICENZY_REQUIRE_SERVICES=1`` (CI), so a missing browser never passes for a green run.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("LICENZY_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts" / "screenshots"
START_TIMEOUT = 60.0  # seconds for an app to answer its first request; not an assertion


def _unavailable(why: str) -> None:
    if os.environ.get("LICENZY_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{why} (required: LICENZY_REQUIRE_SERVICES=1)")
    pytest.skip(why)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def browser() -> Iterator[Any]:
    """A headless Chromium (Debian's ``/usr/bin/chromium``) driven by Playwright.

    One per test, on purpose: Playwright's sync API keeps an asyncio loop running in the
    thread while it is started, so a longer-lived one would break every later test that
    calls ``asyncio.run`` (the ASGI adapters' tests)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed: pip install playwright")
    if not os.path.exists(CHROMIUM):
        _unavailable(f"no Chromium at {CHROMIUM}: apt-get install -y chromium")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (no cookies) and a page in it."""
    context = browser.new_context(viewport={"width": 1000, "height": 800})
    context.set_default_timeout(15_000)
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def screenshot(page: Any, request: pytest.FixtureRequest) -> Callable[[str], Path]:
    """``screenshot("paid")`` saves the page to
    ``test-artifacts/screenshots/<test>/NN-paid.png``; the folder is printed."""
    folder = ARTIFACTS / re.sub(r"[^\w.-]+", "_", request.node.name)
    if folder.exists():
        for old in folder.glob("*.png"):
            old.unlink()
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {folder}")
    count = iter(range(1, 100))
    unsafe = re.compile(r"[^\w.-]+")

    def take(step: str) -> Path:
        path = folder / f"{next(count):02d}-{unsafe.sub('_', step)}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


def wait_until_serving(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the app exited with {process.returncode}:\n{log.read_text()}")
        try:
            with opener.open(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answered
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"the app did not answer {url} within {START_TIMEOUT:.0f}s:\n{log.read_text()}")


@pytest.fixture
def start_app(tmp_path: Path) -> Iterator[Callable[..., str]]:
    """``start_app(argv, port=…, env={…}, ready="/pricing")`` runs an app server in a
    subprocess (cwd: the repo root, ``sys.executable`` for ``"python"``), waits until it
    answers ``ready`` and returns its base URL; it is stopped after the test."""
    started: list[subprocess.Popen[bytes]] = []

    def start(argv: Sequence[str], *, port: int, env: dict[str, str] | None = None,
              ready: str = "/", cwd: Path = ROOT) -> str:
        log = tmp_path / f"server-{len(started)}.log"
        command = [sys.executable if a == "python" else a for a in argv]
        environment = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        for name in ("STRIPE_API_KEY", "STRIPE_WEBHOOK_SECRET"):
            if env is None or name not in env:
                environment.pop(name, None)  # never a developer's real Stripe account
        with log.open("wb") as out:
            process = subprocess.Popen(command, cwd=cwd, env=environment, stdout=out,
                                       stderr=subprocess.STDOUT)
        started.append(process)
        base = f"http://127.0.0.1:{port}"
        wait_until_serving(base + ready, process, log)
        return base

    yield start
    for process in started:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
