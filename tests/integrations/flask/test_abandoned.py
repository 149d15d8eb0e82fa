"""An async Flask view whose worker gave up on the request is never charged.

Flask runs an async view in asgiref's loop thread while the worker thread waits. A worker
timeout (gunicorn's SIGABRT handler raises in the worker thread) ends the wait with an
exception, and the client gets an error; the loop thread goes on running the coroutine. The
hold must be released by the worker, not committed later by the loop thread."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType
from typing import Any

import pytest
from flask import Flask

from licenzy_embed import Licenzy
from licenzy_embed.integrations.flask import LicenzyFlask, consumes_usage

from .._support import credits, remaining


class WorkerTimeout(Exception):
    """What a worker's timeout handler raises in the thread that serves the request."""


@pytest.fixture
def timeout_signal() -> Iterator[None]:
    def handler(signum: int, frame: FrameType | None) -> None:
        raise WorkerTimeout("the worker gave up on the request")

    previous = signal.signal(signal.SIGUSR1, handler)
    yield
    signal.signal(signal.SIGUSR1, previous)


def settled(lz: Licenzy) -> list[str]:
    """Wait until the hold left ``held`` (released, or committed by the loop thread)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        actions = [e.action for e in lz.ledger("alice")]
        if "released" in actions or "committed" in actions:
            return actions
        time.sleep(0.01)
    raise AssertionError("the hold was never settled")


def test_an_async_view_outliving_its_worker_is_not_charged(lz: Licenzy,
                                                           timeout_signal: None) -> None:
    assert threading.current_thread() is threading.main_thread()  # signals land here
    started, proceed, finished = threading.Event(), threading.Event(), threading.Event()
    app = Flask(__name__)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    LicenzyFlask(lz, app, subject_loader=lambda: "alice")

    @app.post("/work")
    @consumes_usage(10)
    async def work() -> dict[str, Any]:
        started.set()
        while not proceed.is_set():  # a slow upstream call
            await asyncio.sleep(0.005)
        finished.set()
        return {"done": True}

    def give_up() -> None:
        started.wait(30)
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGUSR1)

    credits(lz, "alice")
    killer = threading.Thread(target=give_up)
    killer.start()
    response = app.test_client().post("/work")
    killer.join()
    assert response.status_code == 500  # the client was answered an error...
    proceed.set()  # ...and then the view finishes in asgiref's loop thread
    assert finished.wait(30)
    actions = settled(lz)
    assert "committed" not in actions and actions[-1] == "released"
    assert remaining(lz, "alice") == 100


def test_an_async_view_is_still_charged_once_when_it_succeeds(lz: Licenzy) -> None:
    app = Flask(__name__)
    LicenzyFlask(lz, app, subject_loader=lambda: "alice")

    @app.post("/work")
    @consumes_usage(10)
    async def work() -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"done": True}

    credits(lz, "alice")
    assert app.test_client().post("/work").status_code == 200
    assert remaining(lz, "alice") == 90
