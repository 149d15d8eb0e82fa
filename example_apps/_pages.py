"""The HTML of the Django, Starlette and FastAPI example apps, written once.

Each app keeps only its framework's idiom (routing, sign-in, the decorators); what a page says
lives here, as small Python-string templates, so the apps do not carry near-copies. Nothing
here imports a framework: every function takes plain values and returns an HTML string.

The flow the pages make: sign in as a demo user (``/``) → ``/pricing``, whose Buy buttons post
to the library's checkout route and send the browser to the ``checkout_url`` it answers → the
checkout page (Stripe's, or the local one in test mode) → ``/billing/success``, which polls the
library's access route and says "activating…" until the webhook was processed (it never grants
anything itself) → ``/report`` (``requires_access``) and its Generate button (``consumes_usage``).

The same routes answer JSON to clients that do not ask for HTML (curl, the server tests), so
:func:`wants_html` picks the representation from the ``Accept`` header.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from html import escape

from licenzy_embed import CustomerAccess, LicenzyError, Product

#: The users the sign-in page offers. A real app checks a password or an SSO assertion.
DEMO_USERS = ("alice", "bob")
#: Where every example mounts the library's routes.
BILLING = "/billing"
#: What one Generate click costs (``consumes_usage(GENERATE_UNITS)`` in every app).
GENERATE_UNITS = 10

#: A page function: ``render(user, *, csrf=…, framework=…) -> html``.
Render = Callable[..., str]

_STYLE = """
body { font: 16px/1.5 system-ui, sans-serif; max-width: 44rem; margin: 2rem auto; padding: 0 1rem; }
nav a, nav form { margin-right: 1rem; display: inline; }
.plans { display: flex; gap: 1rem; flex-wrap: wrap; }
.plan { border: 1px solid #ccc; border-radius: .5rem; padding: 1rem; flex: 1 1 10rem; }
.refusal { border-left: .3rem solid #c33; padding-left: 1rem; }
.ok { border-left: .3rem solid #3a3; padding-left: 1rem; }
button { font: inherit; padding: .3rem .8rem; cursor: pointer; }
"""


def wants_html(accept: str | None) -> bool:
    """A browser asks for ``text/html``; curl, ``fetch`` and test clients send ``*/*`` and get
    the library's JSON."""
    return "text/html" in (accept or "")


def _csrf_field(csrf: str | None) -> str:
    # Django's CsrfViewMiddleware reads this field from form posts; the ASGI apps pass None.
    if not csrf:
        return ""
    return f'<input type="hidden" name="csrfmiddlewaretoken" value="{escape(csrf)}">'


def _post_button(action: str, label: str, csrf: str | None, *, name: str = "") -> str:
    test_id = f' data-testid="{escape(name)}"' if name else ""
    return (f'<form method="post" action="{escape(action)}">{_csrf_field(csrf)}'
            f"<button{test_id}>{escape(label)}</button></form>")


def layout(title: str, body: str, *, user: str | None, csrf: str | None = None,
           framework: str = "") -> str:
    """The frame of every page: a navigation bar saying who is signed in."""
    who = (f"signed in as <strong data-testid='user'>{escape(user)}</strong> "
           + _post_button("/logout", "Sign out", csrf)) if user else "<a href='/'>Sign in</a>"
    suffix = f" — licenzy-embed {escape(framework)} example" if framework else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}{suffix}</title>
<style>{_STYLE}</style></head>
<body><nav><a href="/">Home</a><a href="/pricing">Pricing</a><a href="/report">Report</a>
{who}</nav>
<h1>{escape(title)}</h1>
{body}
</body></html>"""


def home(user: str | None, *, csrf: str | None = None, framework: str = "") -> str:
    """Sign-in buttons for the demo users, or where to go next once signed in."""
    if user:
        body = ("<p>Buy a plan on the <a href='/pricing'>pricing page</a>, then open the "
                "<a href='/report'>report</a>.</p>")
    else:
        buttons = "".join(_post_button(f"/login?user={name}", f"Sign in as {name}", csrf,
                                       name=f"sign-in-{name}") for name in DEMO_USERS)
        body = f"<p>Pick a demo user (no password in this example):</p>{buttons}"
    return layout("Welcome", body, user=user, csrf=csrf, framework=framework)


def _offer(product: Product) -> str:
    if product.kind == "subscription":
        return f"a monthly subscription with {product.units} units each month"
    if product.kind == "usage_pack":
        return f"a pack of {product.units} units, paid once"
    days = product.duration.days if product.duration else 0
    return f"{days} days of access, paid once"


def pricing(user: str | None, products: Iterable[Product], *, csrf: str | None = None,
            framework: str = "") -> str:
    """Buy buttons. A click asks the library's checkout route (the subject is the signed-in
    user, never the page) for a Checkout Session and sends the browser to its checkout_url.

    One ``Idempotency-Key`` per product and page load, so a double click gives one session."""
    nonce = secrets.token_hex(8)
    plans = "".join(
        f"<div class='plan'><h2>{escape(p.code)}</h2><p>{escape(_offer(p))}</p>"
        f"<button data-testid='buy-{escape(p.code)}' "
        f"onclick=\"buy('{escape(p.code)}', '{nonce}-{escape(p.code)}')\">Buy</button></div>"
        for p in products)
    script = (f'<p id="error" class="refusal" hidden></p><script data-billing="{BILLING}" '
              f'data-csrf="{escape(csrf or "")}">{_BUY_JS}</script>')
    body = f"<div class='plans'>{plans}</div>{script}"
    return layout("Pricing", body, user=user, csrf=csrf, framework=framework)


_BUY_JS = """
const BILLING = document.currentScript.dataset.billing;
const CSRF = document.currentScript.dataset.csrf;
async function buy(product, key) {
  // The entitlements this product already has, so the success page can tell the new one apart.
  const before = await fetch(BILLING + "/access").then(r => r.json());
  const known = (before.entitlements || []).filter(e => e.product_code === product)
                                           .map(e => e.id);
  const headers = {"Content-Type": "application/json", "Idempotency-Key": key};
  if (CSRF) headers["X-CSRFToken"] = CSRF;
  const answer = await fetch(BILLING + "/checkout", {
    method: "POST", headers, body: JSON.stringify({product_code: product})});
  const session = await answer.json();
  if (!answer.ok) {
    const error = document.getElementById("error");
    error.textContent = session.message || session.error;
    error.hidden = false;
    return;
  }
  sessionStorage.setItem("licenzy-pending", JSON.stringify({product, known}));
  location.href = session.checkout_url;
}
"""


def success(user: str | None, *, csrf: str | None = None, framework: str = "") -> str:
    """Where Checkout sends the browser after paying. It grants nothing: it polls the access
    route until the webhook was processed and the bought entitlement is available."""
    body = ('<p id="status" data-state="activating">Payment received — activating…</p>'
            '<p id="next" hidden>Open the <a href="/report">report</a>.</p>'
            f'<script data-billing="{BILLING}">{_POLL_JS}</script>')
    return layout("Thank you", body, user=user, csrf=csrf, framework=framework)


_POLL_JS = """
const BILLING = document.currentScript.dataset.billing;
const pending = JSON.parse(sessionStorage.getItem("licenzy-pending") || "null");
async function poll() {
  const access = await fetch(BILLING + "/access").then(r => r.json());
  const done = pending
    ? (access.entitlements || []).some(e => e.product_code === pending.product && e.available
                                            && !pending.known.includes(e.id))
    : access.has_access;
  if (!done) { setTimeout(poll, 500); return; }
  sessionStorage.removeItem("licenzy-pending");
  const status = document.getElementById("status");
  status.textContent = pending ? pending.product + " is active." : "Access is active.";
  status.dataset.state = "active";
  document.getElementById("next").hidden = false;
}
poll();
"""


def cancelled(user: str | None, *, csrf: str | None = None, framework: str = "") -> str:
    """Where Checkout sends the browser when the payment did not go through."""
    body = ("<p class='refusal' data-testid='cancelled'>The payment did not go through; "
            "nothing was granted. Back to the <a href='/pricing'>pricing page</a>.</p>")
    return layout("Payment not completed", body, user=user, csrf=csrf, framework=framework)


def units_left(access: CustomerAccess) -> int:
    """The units the subject can still spend, over all its available metered entitlements."""
    return sum(e.usage_remaining or 0 for e in access.entitlements if e.available)


def report(user: str | None, access: CustomerAccess, *, csrf: str | None = None,
           framework: str = "") -> str:
    """The protected page (the view behind ``requires_access``), with the Generate button."""
    body = (f"<p class='ok' data-testid='report'>The monthly report for {escape(user or '')}."
            "</p>" + _generate_form(access, csrf))
    return layout("Report", body, user=user, csrf=csrf, framework=framework)


def generated(user: str | None, access: CustomerAccess, *, csrf: str | None = None,
              framework: str = "") -> str:
    """The answer of the metered action (the view behind ``consumes_usage``)."""
    body = (f"<p class='ok' data-testid='generated'>Generated, for {GENERATE_UNITS} units."
            "</p>" + _generate_form(access, csrf))
    return layout("Generated", body, user=user, csrf=csrf, framework=framework)


def _generate_form(access: CustomerAccess, csrf: str | None) -> str:
    return (f"<p><span data-testid='units-left'>{units_left(access)}</span> units left.</p>"
            + _post_button("/generate", f"Generate ({GENERATE_UNITS} units)", csrf,
                           name="generate"))


_REFUSALS = {
    "unauthenticated": ("Please sign in", "Sign in on the <a href='/'>home page</a> first."),
    "access_denied": ("No access yet", "This page needs a plan: see the "
                                       "<a href='/pricing'>pricing page</a>."),
    "insufficient_usage": ("Out of units", "Buy a credits pack on the "
                                           "<a href='/pricing'>pricing page</a> to go on."),
}


def refusal(error: LicenzyError, user: str | None, *, csrf: str | None = None,
            framework: str = "") -> str:
    """A denial as a page, for the apps' denial handlers; the status stays the error's."""
    title, hint = _REFUSALS.get(error.code, ("Not available", escape(error.message)))
    details = error.to_dict()
    if error.code == "insufficient_usage":
        hint = (f"This needs {details.get('requested')} units and "
                f"{details.get('usage_remaining')} are left. {hint}")
    body = (f"<p class='refusal' data-testid='refusal' data-code='{escape(error.code)}'>"
            f"{hint}</p>")
    return layout(title, body, user=user, csrf=csrf, framework=framework)
