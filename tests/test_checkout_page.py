"""The local checkout page: Pay and Decline go through real HTTP to a webhook route, and the
simulator's state survives a restart."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from licenzy_embed import InMemoryStore, Licenzy
from licenzy_embed.errors import LicenzyError
from licenzy_embed.testing import FrozenClock, StripeSimulator
from licenzy_embed.testing.checkout_page import LocalCheckout
from licenzy_embed.testing.pytest_plugin import demo_products

NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}),
                                       type("NoRedirect", (urllib.request.HTTPRedirectHandler,),
                                            {"redirect_request": lambda *a, **k: None})())


def make_licenzy(store: InMemoryStore, clock: FrozenClock) -> Licenzy:
    return Licenzy(store=store, products=demo_products(), clock=clock,
                   stripe_webhook_secret="whsec_checkout_page_test",
                   success_url="http://app.test/done?cs={CHECKOUT_SESSION_ID}",
                   cancel_url="http://app.test/pricing")


@pytest.fixture
def lz() -> Licenzy:
    return make_licenzy(InMemoryStore(), FrozenClock())


@pytest.fixture
def webhook_route(lz: Licenzy) -> Iterator[tuple[str, list[tuple[str, int]]]]:
    """A bare HTTP webhook route in front of ``lz.handle_webhook``; records what it answered."""
    seen: list[tuple[str, int]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            try:
                lz.handle_webhook(body, self.headers.get("Stripe-Signature", ""))
                status = 200
            except LicenzyError as error:
                status = error.status
            seen.append((json.loads(body)["type"], status))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/webhooks/stripe", seen
    server.shutdown()
    server.server_close()


def fetch(url: str, data: bytes | None = None) -> tuple[int, dict[str, str], str]:
    try:
        with NO_PROXY.open(urllib.request.Request(url, data=data)) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def test_pay_delivers_signed_events_over_http_and_redirects_to_success(lz: Licenzy,
                                                                       webhook_route) -> None:
    url, seen = webhook_route
    with LocalCheckout(lz, url) as page:
        session = lz.create_checkout_session("alice", "PRO_MONTHLY", idempotency_key="o-1")
        assert session.checkout_url == f"{page.url}/{session.session_id}"
        status, _, body = fetch(session.checkout_url)
        assert status == 200 and "PRO_MONTHLY" in body and "$10.00" in body
        assert not lz.check_access("alice")  # showing the page grants nothing
        status, headers, _ = fetch(f"{session.checkout_url}/pay", b"")
        assert status == 303
        assert headers["Location"] == f"http://app.test/done?cs={session.session_id}"
        assert seen[0][0] == "checkout.session.completed"
        assert all(code == 200 for _, code in seen)
        assert lz.check_access("alice")
        # Lifecycle calls are delivered over HTTP too, while the page runs.
        page.simulator.renew("alice")
        assert seen[-1][0] == "invoice_payment.paid"
        status, _, _ = fetch(f"{session.checkout_url}/pay", b"")
        assert status == 409  # a second click pays nothing twice


def test_decline_expires_the_session_and_grants_nothing(lz: Licenzy, webhook_route) -> None:
    url, seen = webhook_route
    with LocalCheckout(lz, url) as page:
        session = lz.create_checkout_session("bob", "CREDITS_1K", idempotency_key="o-2")
        status, headers, _ = fetch(f"{page.url}/{session.session_id}/decline", b"")
        assert status == 303 and headers["Location"] == "http://app.test/pricing"
    assert seen == [("checkout.session.expired", 200)]
    assert not lz.check_access("bob")
    assert lz.entitlements("bob") == []


def test_bad_requests_are_4xx(lz: Licenzy, webhook_route) -> None:
    with LocalCheckout(lz, webhook_route[0]) as page:
        assert fetch(f"{page.url}/cs_nope")[0] == 404
        assert fetch(f"{page.url}/cs_nope/pay", b"")[0] == 404
        session = lz.create_checkout_session("carol", "WEEK_PASS", idempotency_key="o-3")
        assert fetch(f"{page.url}/{session.session_id}/pay")[0] == 405  # GET cannot pay
        assert fetch(f"{page.url}/{session.session_id}/refund", b"")[0] == 405
    assert not lz.check_access("carol")


def test_refuses_live_mode_and_bad_urls() -> None:
    live = Licenzy(store=InMemoryStore(), products=demo_products(),
                   stripe_api_key="sk_live_x", stripe_webhook_secret="whsec_x")
    with pytest.raises(ValueError, match="test mode"):
        LocalCheckout(live, "http://127.0.0.1:1/webhook")
    test = make_licenzy(InMemoryStore(), FrozenClock())
    with pytest.raises(ValueError, match="webhook_url"):
        LocalCheckout(test, "localhost:8000/webhook")


def test_simulator_state_survives_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "simulator.json"
    store, clock = InMemoryStore(), FrozenClock()
    first = make_licenzy(store, clock)
    sim = StripeSimulator.for_licenzy(first)
    sim.persist_to(state)
    session = first.create_checkout_session("dave", "PRO_MONTHLY", idempotency_key="o-4")
    sim.complete_checkout(session)
    pending = first.create_checkout_session("dave", "CREDITS_1K", idempotency_key="o-5")

    # A new process: same store, a new Licenzy and simulator loading the same file.
    again = make_licenzy(store, clock)
    restarted = StripeSimulator.for_licenzy(again)
    restarted.persist_to(state)
    assert restarted.subscription("dave")["status"] == "active"
    clock.advance(days=30)
    restarted.renew("dave")
    restarted.complete_checkout(pending.session_id)  # a session opened before the restart
    assert again.check_access("dave")
    units = {e.product_code: e.usage_remaining for e in again.entitlements("dave")}
    assert units == {"PRO_MONTHLY": 1000, "CREDITS_1K": 1000}
    with pytest.raises(ValueError, match="not open"):
        restarted.complete_checkout(session.session_id)
