"""The demo SaaS: a small Flask app selling access with licenzy-embed, to click through.

    make demo                      # http://127.0.0.1:8000 (installs only .[flask,sqlalchemy])
    python example_apps/demo/app.py --port 8000 --state .demo

Sign in with any name, open the pricing page, buy, pay on the local checkout page, and watch the
webhook grant access; spend units until refused, buy a pack, move the demo clock to see renewals,
failed payments with their grace period, and expiries. Nothing here grants access by itself:
every entitlement comes from a signed Stripe event the library's webhook route processed.

Without ``STRIPE_API_KEY`` the Stripe simulator stands in and the local checkout page (mounted at
``/stripe/checkout/…``) plays Stripe Checkout: its Pay and Decline buttons make the simulator post
real signed events over HTTP to ``/billing/webhooks/stripe``. With ``STRIPE_API_KEY``
(``sk_test_…``), ``STRIPE_WEBHOOK_SECRET`` and ``PRICE_PRO_MONTHLY``, ``PRICE_CREDITS_100`` and
``PRICE_WEEK_PASS`` set, the same app talks to Stripe test mode instead (forward the webhooks with
``stripe listen --forward-to localhost:8000/billing/webhooks/stripe``).

Everything that must survive a restart lives in the state folder (``.demo/`` by default): the
SQLite database, the simulator's customers and subscriptions (``simulator.json``), the demo
clock's offset (``clock.json``) and the session cookie's secret key.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import signal
import sys
import threading
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from flask import Flask, flash, redirect, render_template_string, request, session, url_for
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.serving import run_simple

from licenzy_embed import Licenzy, Product
from licenzy_embed.errors import LicenzyError
from licenzy_embed.integrations.flask import LicenzyFlask, consumes_usage, requires_access
from licenzy_embed.stores.sqlalchemy import SQLAlchemyStore
from licenzy_embed.testing import LocalCheckout, StripeSimulator

ROOT = Path(__file__).resolve().parents[2]
LOCAL_WEBHOOK_SECRET = "whsec_demo_local_checkout"  # what the simulator signs with, no Stripe
GENERATE_COST = 25  # units per "generate"
PRICE_ENV = {"PRO_MONTHLY": "PRICE_PRO_MONTHLY", "CREDITS_100": "PRICE_CREDITS_100",
             "WEEK_PASS": "PRICE_WEEK_PASS"}
USER_NAME = re.compile(r"^[a-z0-9_-]{1,32}$")
DESCRIPTIONS = {
    "PRO_MONTHLY": ("Pro, monthly", "100 units every month, renewed with each paid invoice"),
    "CREDITS_100": ("Credits pack", "100 units, used after the subscription's"),
    "WEEK_PASS": ("Week pass", "7 days of access, no units"),
}


def products(stripe_mode: bool) -> list[Product]:
    """The catalog; against Stripe the price ids come from the environment."""
    def price(code: str) -> str:
        if not stripe_mode:
            return f"price_demo_{code.lower()}"
        value = os.environ.get(PRICE_ENV[code], "")
        if not value:
            raise SystemExit(f"{PRICE_ENV[code]} must name your Stripe test-mode price for {code}")
        return value

    return [
        Product("PRO_MONTHLY", kind="subscription", price=price("PRO_MONTHLY"), units=100),
        Product("CREDITS_100", kind="usage_pack", price=price("CREDITS_100"), units=100),
        Product("WEEK_PASS", kind="time_pass", price=price("WEEK_PASS"),
                duration=timedelta(days=7)),
    ]


class DemoClock:
    """Real time plus an offset the account page's buttons move forward; the offset is kept
    in ``clock.json`` so a restarted demo is still "30 days later"."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self.offset = timedelta(0)
        if path.exists():
            self.offset = timedelta(seconds=float(json.loads(path.read_text())["offset"]))

    def __call__(self) -> datetime:
        return datetime.now(timezone.utc) + self.offset

    def advance(self, days: float) -> None:
        with self._lock:
            self.offset += timedelta(days=days)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"offset": self.offset.total_seconds()}))
            os.replace(tmp, self.path)


LAYOUT = """<!doctype html><html><head><meta charset=utf-8><title>{{ title }} · Demo SaaS</title>
<style>
body{font-family:system-ui,sans-serif;max-width:52rem;margin:1.5rem auto;padding:0 1rem;color:#222}
nav{display:flex;gap:1rem;align-items:center;border-bottom:1px solid #ddd;padding-bottom:.6rem}
nav .me{margin-left:auto;color:#555}a{color:#4b44d6}
.plans{display:flex;gap:1rem;flex-wrap:wrap}.plan{border:1px solid #ddd;border-radius:6px;
padding:1rem;flex:1;min-width:12rem}button{font-size:.95rem;padding:.4rem 1rem;border:0;
border-radius:4px;background:#635bff;color:#fff;cursor:pointer}button.secondary{background:#ddd;
color:#222}table{border-collapse:collapse;width:100%;font-size:.85rem}td,th{border-bottom:1px
solid #eee;padding:.3rem;text-align:left}.flash{background:#fff6d6;padding:.5rem;border-radius:4px}
.denied{background:#ffe3e3;padding:.7rem;border-radius:4px}.ok{background:#e3ffe8;padding:.7rem;
border-radius:4px}.inline{display:inline}.mode{font-size:.8rem;background:#f5a623;color:#fff;
padding:0 .4rem;border-radius:3px}
</style></head><body>
<nav><b>Demo SaaS</b> <span class=mode>{{ mode }}</span>
<a href="/pricing">Pricing</a><a href="/app">App</a><a href="/account">Account</a>
<span class=me>{% if user %}signed in as <b id=user>{{ user }}</b>
<form class=inline method=post action="/logout"><button class=secondary>Sign out</button></form>
{% else %}<a href="/login">Sign in</a>{% endif %}</span></nav>
{% for message in get_flashed_messages() %}<p class=flash>{{ message }}</p>{% endfor %}
<h1>{{ title }}</h1>
{{ body|safe }}
</body></html>"""


def create_app(state_dir: Path, base_url: str) -> tuple[Flask, Licenzy, StripeSimulator | None]:
    """The demo app and its billing; ``base_url`` is where the browser reaches it."""
    state_dir.mkdir(parents=True, exist_ok=True)
    stripe_key = os.environ.get("STRIPE_API_KEY") or None
    stripe_mode = stripe_key is not None
    if stripe_mode and not os.environ.get("STRIPE_WEBHOOK_SECRET"):
        raise SystemExit("STRIPE_WEBHOOK_SECRET must be the whsec_… secret `stripe listen` "
                         "prints (or the dashboard endpoint's)")
    clock = DemoClock(state_dir / "clock.json")
    lz = Licenzy(
        store=SQLAlchemyStore(f"sqlite:///{state_dir / 'licenzy.db'}", create_tables=True),
        products=products(stripe_mode),
        stripe_api_key=stripe_key,
        stripe_webhook_secret=os.environ.get("STRIPE_WEBHOOK_SECRET") or LOCAL_WEBHOOK_SECRET,
        success_url=f"{base_url}/welcome?session_id={{CHECKOUT_SESSION_ID}}",
        cancel_url=f"{base_url}/pricing?canceled=1",
        clock=None if stripe_mode else clock,  # Stripe's clock is its own
    )
    if lz.mode != "test":
        lz.store.close()
        raise SystemExit("the demo runs against Stripe test mode only: use an sk_test_… key")
    simulator: StripeSimulator | None = None
    app = Flask(__name__)
    app.config["SECRET_KEY"] = secret_key(state_dir / "secret_key")
    billing = LicenzyFlask(lz, app, url_prefix="/billing")
    mode = "Stripe test mode" if stripe_mode else "test mode · local checkout"

    if not stripe_mode:
        simulator = StripeSimulator.for_licenzy(lz)
        simulator.persist_to(state_dir / "simulator.json")
        checkout_page = LocalCheckout(simulator, f"{base_url}/billing/webhooks/stripe")
        checkout_page.attach(f"{base_url}/stripe")
        app.wsgi_app = DispatcherMiddleware(  # type: ignore[method-assign]
            app.wsgi_app, {"/stripe": checkout_page})

    def current_user() -> str | None:
        user = session.get("user")
        return user if isinstance(user, str) else None

    billing.subject_loader(current_user)

    def render(title: str, body: str, status: int = 200, **context: Any) -> tuple[str, int]:
        inner = render_template_string(body, **context)
        return render_template_string(LAYOUT, title=title, body=inner, user=current_user(),
                                      mode=mode), status

    @billing.denial_handler
    def denied(error: LicenzyError) -> Any:
        """Denials as pages: sign in first (401), buy something (402), out of units (409)."""
        if error.status == 401:
            return redirect(url_for("login", next=request.path))
        title = {402: "No access yet", 409: "Out of units"}.get(error.status, "Not allowed")
        return render(title, """<p class=denied id=refused>{{ message }}
            <br><small>code: {{ code }}</small></p><p><a href="/pricing">See the pricing page</a>
            · <a href="/account">your account</a></p>""", error.status,
                      message=error.message, code=error.code)

    @app.get("/")
    def home() -> Any:
        return redirect(url_for("pricing" if current_user() else "login"))

    @app.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        """Demo sign-in: a name, no password (a real app checks one, or uses SSO)."""
        error = None
        if request.method == "POST":
            name = request.form.get("name", "").strip().lower()
            if USER_NAME.match(name):
                session.clear()
                session["user"] = name
                target = request.args.get("next", "/pricing")
                return redirect(target if target.startswith("/") and not
                                target.startswith("//") else "/pricing")
            error = "A name is 1 to 32 letters, digits, - or _."
        return render("Sign in", """{% if error %}<p class=denied>{{ error }}</p>{% endif %}
            <form method=post><label>Your name <input name=name value="alice" autofocus></label>
            <button id=sign-in>Sign in</button></form>
            <p>Any name works; each is its own customer.</p>""",
                      400 if error else 200, error=error)

    @app.post("/logout")
    def logout() -> Any:
        session.clear()
        return redirect(url_for("login"))

    @app.get("/pricing")
    def pricing() -> Any:
        if current_user() is None:
            return redirect(url_for("login", next="/pricing"))
        if request.args.get("canceled"):
            flash("Checkout canceled: nothing was charged and nothing granted.")
        plans = [(p.code, *DESCRIPTIONS[p.code], uuid.uuid4().hex) for p in lz.catalog]
        return render("Pricing", """<div class=plans>{% for code, name, what, key in plans %}
            <div class=plan><h3>{{ name }}</h3><p>{{ what }}</p><p><code>{{ code }}</code></p>
            <button id="buy-{{ code }}" onclick="buy('{{ code }}', '{{ key }}', this)">Buy</button>
            </div>{% endfor %}</div><p id=error class=denied hidden></p>
            <script>
            // Buy: the library's checkout route answers a checkout_url; the browser goes there.
            // Nothing is granted here: access comes with the paid session's webhook.
            async function buy(code, key, button) {
              button.disabled = true;
              const before = await (await fetch('/billing/access')).json();
              sessionStorage.setItem('buying', JSON.stringify({code, before: mine(before, code)}));
              const r = await fetch('/billing/checkout', {method: 'POST', body:
                JSON.stringify({product_code: code}), headers: {'Content-Type':
                'application/json', 'Idempotency-Key': key}});
              const answer = await r.json();
              if (!r.ok) { const e = document.getElementById('error'); e.hidden = false;
                e.textContent = answer.message; button.disabled = false; return; }
              location.href = answer.checkout_url;
            }
            function mine(access, code) {
              return JSON.stringify(access.entitlements.filter(e => e.product_code === code)
                .map(e => [e.id, e.updated_at, e.status, e.usage_remaining]).sort());
            }
            </script>""", plans=plans)

    @app.get("/welcome")
    def welcome() -> Any:
        """Stripe's success_url. It only reads the access route until the webhook was
        processed: landing here proves nothing (anyone can open this URL)."""
        return render("Thank you", """<p id=activation>activating…</p>
            <p><small>Waiting for the payment's webhook; this page grants nothing itself.</small>
            </p><script>
            const buying = JSON.parse(sessionStorage.getItem('buying') || 'null');
            function mine(access, code) {
              return JSON.stringify(access.entitlements.filter(e => e.product_code === code)
                .map(e => [e.id, e.updated_at, e.status, e.usage_remaining]).sort());
            }
            async function poll() {
              const access = await (await fetch('/billing/access')).json();
              const done = buying
                ? mine(access, buying.code) !== buying.before && access.entitlements.some(
                    e => e.product_code === buying.code && e.available)
                : access.has_access;
              if (!done) { setTimeout(poll, 500); return; }
              sessionStorage.removeItem('buying');
              const p = document.getElementById('activation');
              p.className = 'ok'; p.id = 'active';
              p.innerHTML = 'Access is active' + (buying ? ' (' + buying.code + ')' : '') +
                '. <a href="/app">Open the app</a>';
            }
            poll();
            </script>""")

    @app.get("/app")
    @requires_access
    def workspace() -> Any:
        """The protected page: only for a subject with access."""
        return render("Your workspace", """<p class=ok>You have access.</p>
            <p>Units left: <b id=units>{{ units }}</b> (a generation costs {{ cost }})</p>
            <form method=post action="/generate"><button id=generate>Generate</button></form>
            {% if generated %}<p id=generated>Generated a report ({{ cost }} units).</p>
            {% endif %}""", units=units_left(current_user() or ""), cost=GENERATE_COST,
                      generated=request.args.get("generated"))

    @app.post("/generate")
    @consumes_usage(GENERATE_COST)
    def generate() -> Any:
        """Charged only because it answers 3xx; a 4xx/5xx or an exception gives the units
        back. The redirect lets the page show the units left after the charge."""
        return redirect(url_for("workspace", generated=1), code=303)

    @app.get("/account")
    def account() -> Any:
        user = current_user()
        if user is None:
            return redirect(url_for("login", next="/account"))
        access = lz.customer_access(user)
        ledger = list(reversed(lz.ledger(user)))
        return render("Account", """<p>Access: <b id=access-status>{{ access.status }}</b>
            (has_access={{ access.has_access }}) · now: {{ now.strftime('%Y-%m-%d %H:%M') }}
            {% if offset %}(demo clock +{{ offset }} days){% endif %}</p>
            <h2>Entitlements</h2><table id=entitlements><tr><th>product</th><th>kind</th>
            <th>status</th><th>reason</th><th>units</th><th>expires</th></tr>
            {% for e in access.entitlements %}<tr><td>{{ e.product_code }}</td><td>{{ e.kind }}
            </td><td>{{ e.status }}</td><td>{{ e.availability_reason }}</td>
            <td>{{ e.usage_remaining if e.usage_remaining is not none else '—' }}</td>
            <td>{{ e.expires_at.strftime('%Y-%m-%d %H:%M') if e.expires_at else '—' }}</td></tr>
            {% else %}<tr><td colspan=6>none yet: <a href="/pricing">buy something</a></td></tr>
            {% endfor %}</table>
            {% if simulated %}<h2>Demo clock</h2><p>Move time forward; the simulator sends
            what Stripe would, signed, to the webhook route.</p>
            <form method=post action="/demo/lifecycle">
            <button name=step value=renew>+30 days: renewal paid</button>
            <button name=step value=fail>+30 days: payment fails (past_due, 3 days grace)</button>
            <button name=step value=retry>Retry payment: paid</button>
            <button name=step value=cancel class=secondary>Cancel subscription</button>
            <button name=step value=days4 class=secondary>+4 days</button>
            <button name=step value=days8 class=secondary>+8 days</button></form>{% endif %}
            <h2>Ledger</h2><table id=ledger><tr><th>at</th><th>action</th><th>units</th>
            <th>source</th><th>reason</th></tr>{% for entry in ledger %}<tr>
            <td>{{ entry.at.strftime('%Y-%m-%d %H:%M') }}</td><td>{{ entry.action }}</td>
            <td>{{ entry.units_delta if entry.units_delta is not none else '' }}</td>
            <td>{{ entry.source }}</td><td>{{ entry.reason }}</td></tr>{% endfor %}</table>""",
                      access=access, ledger=ledger, now=lz.now(), simulated=simulator is not None,
                      offset=round(clock.offset.total_seconds() / 86400, 1))

    @app.post("/demo/lifecycle")
    def lifecycle() -> Any:
        """The demo clock's buttons (simulator only): move time, and let "Stripe" act."""
        user = current_user()
        if user is None or simulator is None:
            return redirect(url_for("login"))
        step = request.form.get("step")
        try:
            if step in ("renew", "fail"):
                simulator.subscription(user, "PRO_MONTHLY")  # none: time stays put
            if step == "renew":
                clock.advance(30)
                simulator.renew(user, "PRO_MONTHLY")
                flash("30 days later: the renewal invoice was paid; units reset.")
            elif step == "fail":
                clock.advance(30)
                simulator.fail_payment(user, "PRO_MONTHLY")
                flash("30 days later: the payment failed; access stays during the grace period.")
            elif step == "retry":
                simulator.retry_payment(user, "PRO_MONTHLY")
                flash("The retried payment succeeded.")
            elif step == "cancel":
                simulator.cancel(user, "PRO_MONTHLY")
                flash("The subscription was canceled.")
            elif step in ("days4", "days8"):
                clock.advance(int(step[4:]))
                flash(f"{step[4:]} days later.")
            else:
                return render("Unknown step", "<p>No such step.</p>", 400)
        except ValueError as error:  # no live subscription, no unpaid invoice…
            flash(f"Nothing to do: {error}")
        return redirect(url_for("account"), code=303)

    def units_left(user: str) -> int:
        return sum(e.usage_remaining or 0 for e in lz.entitlements(user) if e.available)

    return app, lz, simulator


def secret_key(path: Path) -> str:
    """The session cookie's key, made once and kept, so sign-ins survive a restart."""
    if not path.exists():
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--host", default=os.environ.get("DEMO_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("DEMO_PORT", "8000")))
    parser.add_argument("--state", type=Path,
                        default=Path(os.environ.get("DEMO_STATE_DIR", ROOT / ".demo")),
                        help="folder for the database and the simulator's state")
    args = parser.parse_args(argv)
    base_url = f"http://{args.host}:{args.port}"
    app, lz, simulator = create_app(args.state.resolve(), base_url)
    print(f"Demo SaaS on {base_url}  (state in {args.state}; Ctrl-C stops it)", flush=True)
    if simulator is None:
        print("Stripe test mode: forward the webhooks with\n  stripe listen --forward-to "
              f"localhost:{args.port}/billing/webhooks/stripe", flush=True)
    # Stopped by Ctrl-C or a plain kill alike, the store is closed on the way out.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        # Threaded: the local checkout page's Pay posts to the webhook route of this server.
        run_simple(args.host, args.port, app, threaded=True)
    finally:
        lz.store.close()


if __name__ == "__main__":
    sys.exit(main())
