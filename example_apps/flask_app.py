"""A Flask JSON API selling access with licenzy-embed: the smallest Flask integration.

The Flask example app to click through in a browser is the demo SaaS (``make demo``,
example_apps/demo/app.py); this one is the same integration without pages, and what the
gunicorn test runs.

    pip install -e '.[flask,sqlalchemy]'               # from the repository's root
    cd example_apps && flask --app flask_app run --port 8000   # or: gunicorn -w 4 flask_app:app

(port 8000: the success and cancel URLs ``billing.py`` gives Stripe use APP_BASE_URL, by default
http://127.0.0.1:8000.) Then, with the local Stripe simulator (no STRIPE_API_KEY)::

    curl -c jar -X POST 'localhost:8000/login?user=alice'
    curl -b jar localhost:8000/report                     # 402: nothing bought yet
    curl -b jar -X POST localhost:8000/billing/checkout -H 'Content-Type: application/json' \\
         -d '{"product_code": "CREDITS_100"}'              # → checkout_url, attempt_id
    # a real app redirects to checkout_url; Stripe then calls POST /billing/webhooks/stripe
    # and sends the customer back to /billing/success (or /billing/cancel)
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, request, session

from billing import lz
from licenzy_embed.integrations.flask import LicenzyFlask, consumes_usage, requires_access

app = Flask(__name__)
app.config["SECRET_KEY"] = os.environ.get("FLASK_SECRET_KEY", "change-me")

billing = LicenzyFlask(lz, app, url_prefix="/billing")


@billing.subject_loader
def current_subject() -> str | None:
    # Your user id; with Flask-Login the default loader already uses current_user.get_id().
    return session.get("user")


@app.post("/login")
def login() -> dict[str, Any]:
    """Demo sign-in: a real app checks a password or an SSO assertion."""
    session["user"] = request.args["user"]
    return {"user": session["user"]}


@app.get("/billing/success")
def checkout_success() -> dict[str, Any]:
    """Stripe's success_url. Landing here grants nothing: access comes with the webhook."""
    return {"status": "processing",
            "message": "Thank you! Access starts once Stripe's webhook is processed; "
                       "GET /billing/access shows it."}


@app.get("/billing/cancel")
def checkout_canceled() -> dict[str, Any]:
    return {"status": "canceled", "message": "Checkout canceled; nothing was charged."}


@app.get("/report")
@requires_access
def report() -> dict[str, Any]:
    return {"report": f"the monthly report for {session['user']}"}


@app.post("/generate")
@consumes_usage(10)
async def generate() -> dict[str, Any]:
    # Charged only when this answers 2xx/3xx; send an Idempotency-Key header so a retry of
    # the same request is not charged twice.
    return {"generated": True}
