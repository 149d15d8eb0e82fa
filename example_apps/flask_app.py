"""A Flask app selling access with licenzy-embed.

    pip install 'licenzy-embed[flask,sqlalchemy]'
    cd example_apps && flask --app flask_app run        # or: gunicorn -w 4 flask_app:app

Then, with the local Stripe simulator (no STRIPE_API_KEY)::

    curl -c jar -X POST 'localhost:5000/login?user=alice'
    curl -b jar localhost:5000/report                     # 402: nothing bought yet
    curl -b jar -X POST localhost:5000/billing/checkout -H 'Content-Type: application/json' \\
         -d '{"product_code": "CREDITS_100"}'              # → checkout_url, attempt_id
    # a real app redirects to checkout_url; Stripe then calls POST /billing/webhooks/stripe
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
