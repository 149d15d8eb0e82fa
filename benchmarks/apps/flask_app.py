"""Flask under gunicorn: ``/plain``, ``/access`` (``requires_access``), ``/consume``
(``consumes_usage(1)``), the same view body each; ``/bare-check`` and ``/bare-spend`` do the
floors' work in the view instead (see ``common``)."""

from __future__ import annotations

from common import bare_check, bare_spend, licenzy, subject
from flask import Flask

from licenzy_embed.integrations.flask import LicenzyFlask, consumes_usage, requires_access

app = Flask(__name__)
billing = LicenzyFlask(licenzy())
billing.init_app(app)
billing.subject_loader(subject)


@app.get("/plain")
def plain() -> str:
    return "ok"


@app.get("/access")
@requires_access
def access() -> str:
    return "ok"


@app.get("/consume")
@consumes_usage(1)
def consume() -> str:
    return "ok"


@app.get("/bare-check")
def bare_check_view() -> str:
    bare_check()
    return "ok"


@app.get("/bare-spend")
def bare_spend_view() -> str:
    bare_spend()
    return "ok"
