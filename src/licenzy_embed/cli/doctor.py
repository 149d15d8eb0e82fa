"""``licenzy-embed doctor``: the production checklist, checked against Stripe and the store.

One line per check — pass, fail or skip — and with each failure the fix. The Stripe checks
read through the official SDK (``StripeClientGateway``) with the app's own key, so they see
what checkout and the webhook route will see; without a key the simulator stands in and
they are skipped. Exit status 1 when any check failed.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import click

from ..catalog import Product
from ..errors import ModeMismatch, PaymentProviderError, StoreUnavailable
from ..licenzy import Licenzy
from ..stores.memory import InMemoryStore
from ..webhooks import HANDLED_EVENTS
from ..webhooks.signature import SECRET_PREFIX
from ._app import pass_licenzy
from ._output import FAILED, JSON_OPTION, PROG, emit_json, one_line

if TYPE_CHECKING:
    from ..gateway import StripeClientGateway

Status = Literal["pass", "fail", "skip"]
# The prefix of the secret StripeSimulator.for_licenzy mints for a key-less Licenzy built without
# one (spelled out here: the CLI, like the core, never imports the testing kit).
_SIMULATOR_SECRET = "whsec_simulator_"


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    detail: str
    fix: str | None = None

    def line(self) -> str:
        text = f"{self.status.upper():<4}  {self.name}: {one_line(self.detail)}"
        return text + (f"; fix: {one_line(self.fix)}" if self.fix else "")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "detail": one_line(self.detail),
                "fix": None if self.fix is None else one_line(self.fix)}


def run_checks(lz: Licenzy) -> Iterator[Check]:
    """The checks in the order a deploy meets them; each is yielded once it is known."""
    from ..gateway import StripeClientGateway  # the SDK loads only for the command needing it

    try:
        gateway: object = lz.gateway
    except PaymentProviderError:  # key-less, and no simulator attached: checkout says so too
        gateway = None
    stripe = gateway if isinstance(gateway, StripeClientGateway) else None
    simulated = stripe is None and gateway is not None
    if stripe is not None:
        yield Check("mode", "pass", f"{lz.mode} mode, from the Stripe key")
    elif simulated:
        yield Check("mode", "pass", "test mode: no Stripe key, the Stripe simulator stands in")
    else:
        yield Check("mode", "fail", "no Stripe key and no gateway: checkout answers "
                    "payment_provider_error", "pass stripe_api_key (sk_test_… or sk_live_…), "
                    "or for a demo attach the simulator with StripeSimulator.for_licenzy(lz)")
    yield _webhook_secret(lz, simulated=simulated)
    if stripe is None:
        yield Check("stripe", "skip", ("the simulator stands in for Stripe" if simulated
                                       else "no Stripe key") +
                    ": prices and webhook endpoints are not checked",
                    "pass stripe_api_key to check them against Stripe")
    else:
        yield from _stripe(lz, stripe)
    yield _store(lz)


def _webhook_secret(lz: Licenzy, *, simulated: bool) -> Check:
    name = "webhook secret"
    secrets = lz.webhook_secrets
    where = ("the endpoint's signing secret (whsec_…): Dashboard > Developers > Webhooks > "
             "the endpoint, or the one `stripe listen` prints")
    if simulated and secrets and all(s.startswith(_SIMULATOR_SECRET) for s in secrets):
        return Check(name, "skip", "none set: the simulator signs with a random secret of "
                     "its own", f"before Stripe sends real events, set stripe_webhook_secret "
                     f"to {where}")
    if not secrets:
        return Check(name, "fail", "none set: every delivery will be refused as "
                     "invalid_signature", f"set stripe_webhook_secret to {where}")
    # A secret with whitespace around it, or one not starting with whsec_, never gets this
    # far: Licenzy refuses it when it is built, and the command line reports that in one line.
    count = "1 secret" if len(secrets) == 1 else f"{len(secrets)} secrets (rotating)"
    return Check(name, "pass", f"set: {count}, {SECRET_PREFIX}…")


def _stripe(lz: Licenzy, stripe: StripeClientGateway) -> Iterator[Check]:
    from ..gateway import NotPermitted

    for product in lz.catalog:
        try:
            check = _price(lz, stripe, product)
        except NotPermitted:
            yield Check("prices", "skip", "cannot read prices with this key",
                        "grant the restricted key read access to Prices, or compare the "
                        "catalog with the Dashboard")
            break
        yield check
        if check.status == "fail" and check.name == "stripe":
            yield Check("webhook endpoints", "skip", "not checked: Stripe did not answer")
            return
    yield from _endpoints(stripe)


def _price(lz: Licenzy, stripe: StripeClientGateway, product: Product) -> Check:
    """The check of one catalog price (``NotPermitted`` when the key may not read it)."""
    from ..gateway import NotPermitted

    name, price_id, mode = f"price {product.code}", product.price, lz.mode
    try:
        price = stripe.retrieve_price(price_id)
    except NotPermitted:
        raise  # for the caller: one line for all prices
    except ModeMismatch:
        other = "live" if mode == "test" else "test"
        return Check(name, "fail", f"{price_id} is a {other}-mode price; the key is a {mode} "
                     "key", f"use the {mode}-mode price's id in Product(price=…): each mode "
                     "has its own prices")
    except PaymentProviderError as exc:
        return Check("stripe", "fail", f"cannot read {price_id} from Stripe: {exc.message}",
                     "check the Stripe key, and that the host can reach api.stripe.com")
    if price is None:
        return Check(name, "fail", f"{price_id} does not exist in {mode} mode",
                     f"create the price in Stripe ({mode} mode) or correct Product(price=…)")
    problems, fixes = [], []
    if bool(price.livemode) != (mode == "live"):
        problems.append(f"{price_id} is a {'live' if price.livemode else 'test'}-mode price; "
                        f"the key is a {mode} key")
        fixes.append(f"use the {mode}-mode price's id in Product(price=…)")
    if not price.active:
        problems.append(f"{price_id} is archived")
        fixes.append("unarchive it in the Dashboard, or point Product(price=…) at an active "
                     "price")
    wanted = "recurring" if product.kind == "subscription" else "one_time"
    if price.type != wanted:
        shown = "one-time" if price.type == "one_time" else str(price.type)
        problems.append(f"{price_id} is a {shown} price but {product.code} is a "
                        f"{product.kind}")
        fixes.append(f"give {product.code} a {wanted.replace('_', '-')} price")
    if problems:
        return Check(name, "fail", "; ".join(problems), "; ".join(fixes))
    return Check(name, "pass", f"{price_id} is active, {_billing(price)}, {mode} mode")


def _billing(price: Any) -> str:
    recurring = getattr(price, "recurring", None)
    if price.type != "recurring" or recurring is None:
        return "one-time"
    count = getattr(recurring, "interval_count", 1) or 1
    interval = getattr(recurring, "interval", "period")
    return f"recurring every {interval}" if count == 1 else (
        f"recurring every {count} {interval}s")


def _endpoints(stripe: StripeClientGateway) -> Iterator[Check]:
    from ..gateway import NotPermitted

    name = "webhook endpoints"
    needed = HANDLED_EVENTS  # an endpoint must subscribe to every type the route handles
    try:
        endpoints = stripe.list_webhook_endpoints()
    except NotPermitted:
        yield Check(name, "skip", "cannot read endpoints with this key",
                    "grant the restricted key read access to Webhook Endpoints, or compare "
                    "the endpoint's events in the Dashboard with the README's list")
        return
    except PaymentProviderError as exc:
        yield Check(name, "fail", f"cannot list them: {exc.message}",
                    "check the Stripe key, and that the host can reach api.stripe.com")
        return
    answered = False
    for endpoint in endpoints:
        events = set(getattr(endpoint, "enabled_events", None) or ())
        label = f"webhook endpoint {getattr(endpoint, 'url', None) or endpoint.id}"
        missing = set() if "*" in events else needed - events
        if missing == needed:
            yield Check(label, "skip", "subscribes to none of the events licenzy-embed "
                        "handles (another app's endpoint?)")
            continue
        answered = True
        problems, fixes = [], []
        status = getattr(endpoint, "status", "enabled")
        if status != "enabled":
            problems.append(f"it is {status}")
            fixes.append("enable it in the Dashboard (Stripe disables an endpoint that keeps "
                         "failing)")
        if missing:
            problems.append(f"missing {len(missing)} event type"
                            f"{'s' if len(missing) > 1 else ''}: {', '.join(sorted(missing))}")
            fixes.append("add them to the endpoint (Dashboard > Webhooks > the endpoint > "
                         "Update details)")
        if problems:
            yield Check(label, "fail", "; ".join(problems), "; ".join(fixes))
        else:
            yield Check(label, "pass", "enabled, subscribes to every event type "
                        "licenzy-embed handles")
    if not answered:
        yield Check(name, "fail", "no endpoint subscribes to the events licenzy-embed handles",
                    "add an endpoint for the app's webhook route with these events: "
                    + ", ".join(sorted(needed)))


def _store(lz: Licenzy) -> Check:
    store = lz.store
    if isinstance(store, InMemoryStore):
        if lz.mode == "live":
            return Check("store", "fail", "an in-memory store in live mode: entitlements are "
                         "lost when the process ends and not shared between processes",
                         "use SQLAlchemyStore")
        return Check("store", "pass", "in-memory store: nothing to migrate (entitlements "
                     "last as long as the process)")
    sql_check = _sql_store(lz)
    if sql_check is not None:
        return sql_check
    return _probe(lz, f"{type(store).__name__} answers")


def _probe(lz: Licenzy, passed: str) -> Check:
    """Ask the store one real question: the hot path's access check."""
    try:
        lz.store.has_access(lz.mode, "licenzy-doctor", lz.now())
    except StoreUnavailable as exc:
        return Check("store", "fail", exc.message,
                     f"check that the database is up, then run `{PROG} migrate --url …`")
    return Check("store", "pass", passed)


def _sql_store(lz: Licenzy) -> Check | None:
    """The SQL store's check, or None when the store is not a ``SQLAlchemyStore``."""
    try:
        from sqlalchemy.exc import SQLAlchemyError

        from ..stores.sqlalchemy import SQLAlchemyStore, current_revision
    except ImportError:  # no SQLAlchemy installed: the store cannot be one
        return None
    store = lz.store
    if not isinstance(store, SQLAlchemyStore):
        return None
    from .migrate import head_revision, known_revisions

    where = store.engine.url.render_as_string(hide_password=True)
    try:
        with store.engine.connect() as conn:
            current = current_revision(conn)
    except SQLAlchemyError as exc:
        reason = getattr(exc, "orig", None) or exc
        return Check("store", "fail", f"cannot reach {where}: {reason}",
                     "check the database URL, and that the server runs and takes connections")
    head = head_revision()
    migrate_it = f"run `{PROG} migrate --url …` with this database's URL"
    if current is None:
        return Check("store", "fail", f"{where} has no licenzy tables", migrate_it)
    if current not in known_revisions():
        return Check("store", "fail", f"{where} is at revision {current}, newer than this "
                     "licenzy-embed knows", "upgrade the licenzy-embed package")
    if current != head:
        return Check("store", "fail", f"{where} is at revision {current}; this licenzy-embed "
                     f"needs {head}", migrate_it)
    return _probe(lz, f"{where} is reachable and at revision {head}, the newest")


@click.command()
@JSON_OPTION
@pass_licenzy
def doctor(lz: Licenzy, as_json: bool) -> None:
    """Check the app's setup: the key's mode, the webhook secret, each catalog price in
    Stripe, the webhook endpoints' event types, the store. Exits 1 when a check failed."""
    checks = []
    for check in run_checks(lz):
        checks.append(check)
        if not as_json:
            click.echo(check.line())
    counts = {status: sum(c.status == status for c in checks)
              for status in ("pass", "fail", "skip")}
    failed = counts["fail"]
    if as_json:
        emit_json({"ok": not failed, "mode": lz.mode,
                   "checks": [check.to_dict() for check in checks]})
    else:
        click.echo(f"{counts['pass']} passed, {failed} failed, {counts['skip']} skipped")
    if failed:
        click.get_current_context().exit(FAILED)


COMMANDS = (doctor,)
