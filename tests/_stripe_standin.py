"""A local HTTP server standing in for Stripe's API, for tests that drive the official SDK.

The SDK is pointed at it with ``stripe.StripeClient(key, base_addresses={"api": url})``. It
records every request exactly as the SDK sent it (method, path, headers, the form-encoded body
or the query string), so tests check the request itself — not a mock of the SDK. Subclasses
answer by overriding :meth:`StripeStandIn.respond`; ``fail_next`` makes the next request
answer an error whatever it is.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

Answer = tuple[int, dict[str, Any]]
S = TypeVar("S", bound="StripeStandIn")


@dataclass
class Request:
    path: str  # without the query string
    headers: dict[str, str]
    form: dict[str, str]  # the POST body, or a GET's query parameters
    method: str = "POST"


def error(status: int, message: str, *, type: str = "invalid_request_error",
          **fields: Any) -> Answer:
    """An error answer in Stripe's shape."""
    return status, {"error": {"type": type, "message": message, **fields}}


def not_found(message: str = "Unrecognized request URL") -> Answer:
    return error(404, message)


class StripeStandIn:
    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.fail_next: Answer | None = None
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self, method: str) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode() if method == "POST" else url.query
                form = {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}
                status, answer = api.answer(Request(url.path, dict(self.headers), form, method))
                data = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Request-Id", "req_local")
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                self._serve("POST")

            def do_GET(self) -> None:
                self._serve("GET")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.01,),
                                       daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def answer(self, request: Request) -> Answer:
        with self._lock:
            self.requests.append(request)
            if self.fail_next is not None:
                failure, self.fail_next = self.fail_next, None
                return failure
        return self.respond(request)

    def respond(self, request: Request) -> Answer:
        """What Stripe would answer; ``self.requests`` already holds ``request``."""
        return not_found()

    def paths(self) -> list[str]:
        return [r.path for r in self.requests]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def serving(standin: S) -> Iterator[S]:
    """Run ``standin`` for the length of the block (a fixture's body)."""
    standin.thread.start()
    try:
        yield standin
    finally:
        standin.stop()


class SimulatedStripe(StripeStandIn):
    """The stand-in answering the reads ``reconcile`` makes from a ``StripeSimulator``'s
    state: ``GET /v1/events`` (the ``types[]`` and ``created[gte]`` filters, paginated with
    ``starting_after`` in pages of at most ``page_size``, newest first as Stripe lists them),
    ``GET /v1/subscriptions/{id}`` and ``GET /v1/payment_intents/{id}`` (its latest charge
    expanded). What the simulator made — delivered, held or lost — is what Stripe "keeps";
    ``forget_events`` drops them, as Stripe does after 30 days."""

    def __init__(self, simulator: Any, *, page_size: int = 3) -> None:
        super().__init__()
        self.simulator = simulator
        self.page_size = page_size

    def forget_events(self) -> None:
        self.simulator.events_made.clear()

    def respond(self, request: Request) -> Answer:
        if request.method != "GET":
            return not_found()
        parts = request.path.strip("/").split("/")
        if parts == ["v1", "events"]:
            return self._events(request.form)
        if len(parts) == 3 and parts[:2] == ["v1", "subscriptions"]:
            found = self.simulator.retrieve_subscription(parts[2])
        elif len(parts) == 3 and parts[:2] == ["v1", "payment_intents"]:
            found = self.simulator.retrieve_payment_intent(parts[2])
        else:
            return not_found()
        if found is None:
            return error(404, f"No such object: '{parts[2]}'", code="resource_missing")
        return 200, found

    def _events(self, form: dict[str, str]) -> Answer:
        types = [v for k, v in sorted(form.items()) if k.startswith("types[")]
        since = int(form.get("created[gte]", "0"))
        events = self.simulator.list_events(types=types, created_gte=since)
        after = form.get("starting_after")
        if after is not None:
            ids = [e["id"] for e in events]
            events = events[ids.index(after) + 1:] if after in ids else []
        limit = min(int(form.get("limit", "10")), self.page_size)
        return 200, {"object": "list", "url": "/v1/events", "data": events[:limit],
                     "has_more": len(events) > limit}
