"""A local checkout page for test mode: the page Stripe Checkout would show, served by the app's
own machine, so a demo or a browser test can buy something with no Stripe account.

The simulator's ``checkout_url``\\ s point here. **Pay** completes the session in the simulator,
which then posts the real signed events over HTTP (``Stripe-Signature`` header and all) to the
app's webhook route, as Stripe would, and the browser is sent to the session's ``success_url``.
**Decline** expires the session (``checkout.session.expired``: nothing is granted) and sends the
browser to its ``cancel_url``. Access therefore only ever comes from the app processing a
webhook, exactly as in production.

Once started, every later lifecycle call on the simulator (``renew``, ``fail_payment``,
``cancel``…) is delivered over HTTP to the same route too.

It is a tiny WSGI app: :meth:`LocalCheckout.start` serves it on its own port in a thread, or an
app mounts it (it is a WSGI callable) and calls :meth:`LocalCheckout.attach` with where it is
mounted. It refuses a live-mode ``Licenzy``: real money never meets a fake checkout.
"""

from __future__ import annotations

import html
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from socketserver import ThreadingMixIn
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from .simulator import DeliveryFailed, StripeSimulator, Transport

if TYPE_CHECKING:
    from ..licenzy import Licenzy

StartResponse = Callable[..., Any]
PATH = "/checkout"


@dataclass(frozen=True)
class HttpResponse:
    """What the app's webhook route answered (``status_code`` is what the simulator checks)."""

    status_code: int
    body: bytes


def http_transport(webhook_url: str, *, timeout: float = 30.0) -> Transport:
    """A simulator transport that POSTs each signed event to ``webhook_url``, as Stripe does.

    Proxies from the environment are ignored: the app is on this machine."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def post(payload: bytes, signature_header: str) -> HttpResponse:
        request = urllib.request.Request(webhook_url, data=payload, method="POST", headers={
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": signature_header,
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks); licenzy simulator",
        })
        try:
            with opener.open(request, timeout=timeout) as response:
                return HttpResponse(response.status, response.read())
        except urllib.error.HTTPError as error:
            return HttpResponse(error.code, error.read())

    return post


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class LocalCheckout:
    """The checkout page for ``simulator`` (or a test-mode ``Licenzy``, whose simulator it
    uses), delivering to ``webhook_url``. ``port=0`` picks a free port when started."""

    def __init__(self, simulator: StripeSimulator | Licenzy, webhook_url: str, *,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        lz = simulator.lz if isinstance(simulator, StripeSimulator) else simulator
        if lz.mode != "test":
            raise ValueError("the local checkout page only runs in test mode, and this Licenzy "
                             "has a live key")
        if not isinstance(webhook_url, str) or not webhook_url.startswith(("http://",
                                                                           "https://")):
            raise ValueError(f"webhook_url must be an http(s) URL, got {webhook_url!r}")
        self.simulator = (simulator if isinstance(simulator, StripeSimulator)
                          else StripeSimulator.for_licenzy(simulator))
        self.webhook_url = webhook_url
        self.host, self.port = host, port
        self.base_url: str | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ serving
    @property
    def url(self) -> str:
        """Where the checkout pages are: ``<base>/checkout``; a session's is ``…/<id>``."""
        if self.base_url is None:
            raise RuntimeError("the local checkout page is not started: call start() or "
                               "attach()")
        return f"{self.base_url}{PATH}"

    def attach(self, base_url: str) -> None:
        """Point the simulator's checkout URLs at ``base_url`` (where this WSGI app is served
        or mounted) and deliver its events over HTTP to the webhook route."""
        self.base_url = base_url.rstrip("/")
        self.simulator.checkout_base = self.url
        self.simulator.deliver_with(http_transport(self.webhook_url))

    def start(self) -> str:
        """Serve the page on ``host:port`` in a background thread; returns the page's URL."""
        if self._server is not None:
            return self.url
        server = make_server(self.host, self.port, self, server_class=_Server,
                             handler_class=_QuietHandler)
        self._server = server
        self.port = int(server.server_address[1])
        self._thread = threading.Thread(target=server.serve_forever, name="local-checkout",
                                        daemon=True)
        self._thread.start()
        self.attach(f"http://{self.host}:{self.port}")
        return self.url

    def stop(self) -> None:
        """Stop serving and give the simulator back its default delivery."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.simulator.deliver_with(None)

    def __enter__(self) -> LocalCheckout:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # ------------------------------------------------------------------ the WSGI app
    def __call__(self, environ: dict[str, Any],
                 start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD", "GET")
        parts = [p for p in str(environ.get("PATH_INFO", "")).split("/") if p]
        if len(parts) < 2 or f"/{parts[0]}" != PATH or len(parts) > 3:
            return _page(start_response, "404 Not Found", "Not found",
                         "<p>No checkout page here.</p>")
        session_id = parts[1]
        action = parts[2] if len(parts) == 3 else None
        try:
            session = self.simulator.checkout_session(session_id)
        except ValueError:
            return _page(start_response, "404 Not Found", "Unknown checkout session",
                         f"<p>No checkout session <code>{html.escape(session_id)}</code>.</p>")
        if action is None and method in ("GET", "HEAD"):
            return self._show(start_response, session_id, session)
        if action in ("pay", "decline") and method == "POST":
            return self._act(start_response, session_id, session, action)
        return _page(start_response, "405 Method Not Allowed", "Not allowed",
                     "<p>Use the buttons on the checkout page.</p>")

    def _show(self, start_response: StartResponse, session_id: str,
              session: dict[str, Any]) -> Iterable[bytes]:
        product = self.simulator.lz.catalog.get(self.simulator.checkout_product(session_id))
        amount = f"${int(session.get('amount_total') or 0) / 100:.2f}"
        if product.kind == "subscription":
            amount += f" every {self.simulator.period.days} days"
        details = [f"<dt>Product</dt><dd class=product>{html.escape(product.code)}</dd>",
                   f"<dt>Amount</dt><dd class=amount>{html.escape(amount)}</dd>"]
        per = " per period" if product.kind == "subscription" else ""
        for meter, count in product.meters.items():
            name = "Units" if meter == "units" else html.escape(meter)
            details.append(f"<dt>{name}</dt><dd>{count}{per}</dd>")
        if product.features:
            shown = ", ".join(html.escape(f) for f in product.features)
            details.append(f"<dt>Features</dt><dd>{shown}</dd>")
        if product.duration is not None:
            details.append(f"<dt>Lasts</dt><dd>{product.duration.days} days</dd>")
        body = f"<dl>{''.join(details)}</dl>"
        if session["status"] == "open":
            sid = quote(session_id)
            body += (f'<form method=post action="{sid}/pay"><button id=pay>Pay</button></form>'
                     f'<form method=post action="{sid}/decline">'
                     '<button id=decline class=secondary>Decline</button></form>'
                     "<p class=note>Test mode: no card is charged. Pay sends the signed events "
                     "Stripe would send to the app's webhook route.</p>")
        else:
            body += f"<p>This checkout session is {html.escape(session['status'])}.</p>"
        return _page(start_response, "200 OK", "Checkout (test mode)", body)

    def _act(self, start_response: StartResponse, session_id: str, session: dict[str, Any],
             action: str) -> Iterable[bytes]:
        if session["status"] != "open":
            return _page(start_response, "409 Conflict", "Already done",
                         f"<p>This checkout session is {html.escape(session['status'])}.</p>")
        try:
            if action == "pay":
                self.simulator.complete_checkout(session_id)
            else:
                self.simulator.expire_checkout(session_id)
        except DeliveryFailed as failed:
            return _page(start_response, "502 Bad Gateway", "Webhook delivery failed",
                         f"<p>The app's webhook route answered {failed.status} to "
                         f"{html.escape(failed.event['type'])}; Stripe would retry it.</p>")
        except OSError as error:
            return _page(start_response, "502 Bad Gateway", "Webhook delivery failed",
                         f"<p>Could not reach {html.escape(self.webhook_url)}: "
                         f"{html.escape(str(error))}</p>")
        except ValueError as error:  # raced with another click: already completed or expired
            return _page(start_response, "409 Conflict", "Already done",
                         f"<p>{html.escape(str(error))}</p>")
        target = session["success_url"] if action == "pay" else session["cancel_url"]
        target = str(target or "/").replace("{CHECKOUT_SESSION_ID}", session_id)
        start_response("303 See Other", [("Location", target), ("Content-Length", "0")])
        return [b""]


STYLE = ("body{font-family:system-ui,sans-serif;max-width:26rem;margin:3rem auto;color:#222}"
         "h1{font-size:1.3rem}dl{display:grid;grid-template-columns:6rem 1fr;gap:.4rem}"
         "dt{color:#666}dd{margin:0}button{font-size:1rem;padding:.5rem 1.5rem;margin:.3rem 0;"
         "border:0;border-radius:4px;background:#635bff;color:#fff;cursor:pointer}"
         "button.secondary{background:#ddd;color:#222}.note{color:#666;font-size:.85rem}"
         ".badge{background:#f5a623;color:#fff;border-radius:3px;padding:0 .4rem;"
         "font-size:.8rem}")


def _page(start_response: StartResponse, status: str, title: str,
          body: str) -> Iterable[bytes]:
    document = (f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}"
                f"</title><style>{STYLE}</style></head><body><p><span class=badge>TEST MODE"
                f"</span> Local checkout</p><h1>{html.escape(title)}</h1>{body}</body></html>")
    data = document.encode()
    start_response(status, [("Content-Type", "text/html; charset=utf-8"),
                            ("Content-Length", str(len(data)))])
    return [data]


__all__ = ["HttpResponse", "LocalCheckout", "http_transport"]
