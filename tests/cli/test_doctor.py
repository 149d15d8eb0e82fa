"""``licenzy-embed doctor`` against a local HTTP server standing in for Stripe's API (the
official SDK pointed at it): each misconfiguration a production checklist names is one FAIL
line with its fix, and a good setup passes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from licenzy_embed.cli.migrate import head_revision
from licenzy_embed.stores import _sql_schema as schema
from licenzy_embed.webhooks import HANDLED_EVENTS

from .._stripe_standin import Answer, Request, StripeStandIn, error, not_found, serving
from ..conftest import catalog
from . import apps
from .conftest import Outcome, invoke

ENDPOINT_URL = "https://app.example/billing/webhooks/stripe"


class StripeAccount(StripeStandIn):
    """One Stripe account in one mode: the catalog's prices, as Stripe answers
    ``GET /v1/prices/:id``, and its webhook endpoints (``GET /v1/webhook_endpoints``)."""

    def __init__(self, *, livemode: bool = False) -> None:
        super().__init__()
        self.livemode = livemode
        self.prices: dict[str, dict[str, Any]] = {}
        for product in catalog():
            recurring = product.kind == "subscription"
            self.prices[product.price] = {
                "id": product.price, "object": "price", "active": True, "livemode": livemode,
                "currency": "eur", "unit_amount": 1900, "product": f"prod_{product.code}",
                "type": "recurring" if recurring else "one_time",
                "recurring": {"interval": "month", "interval_count": 1, "usage_type": "licensed"}
                if recurring else None,
            }
        self.endpoints: list[dict[str, Any]] = [self.endpoint(sorted(HANDLED_EVENTS))]
        self.forbid_endpoints = False
        self.forbid_prices = False
        self.in_the_other_mode: set[str] = set()  # price ids only the other mode has

    def endpoint(self, events: list[str], *, url: str = ENDPOINT_URL,
                 status: str = "enabled") -> dict[str, Any]:
        return {"id": f"we_{len(events)}_{status}", "object": "webhook_endpoint", "url": url,
                "enabled_events": events, "status": status, "livemode": self.livemode,
                "api_version": None}

    def respond(self, request: Request) -> Answer:
        forbidden = error(403, "The provided key 'rk_test_…' does not have the required "
                          "permissions for this endpoint on account 'acct_1'.")
        if request.method == "GET" and request.path.startswith("/v1/prices/"):
            if self.forbid_prices:
                return forbidden
            price_id = request.path.removeprefix("/v1/prices/")
            if price_id in self.in_the_other_mode:
                other, mine = ("test", "live") if self.livemode else ("live", "test")
                return error(404, f"No such price: '{price_id}'; a similar object exists in "
                             f"{other} mode, but a {mine} mode key was used to make this "
                             "request.", code="resource_missing", param="price")
            if price_id in self.prices:
                return 200, self.prices[price_id]
            return error(404, f"No such price: '{price_id}'", code="resource_missing",
                         param="price")
        if request.method == "GET" and request.path == "/v1/webhook_endpoints":
            if self.forbid_endpoints:
                return forbidden
            return 200, {"object": "list", "url": "/v1/webhook_endpoints", "has_more": False,
                         "data": self.endpoints}
        return not_found()


@pytest.fixture
def account() -> Iterator[StripeAccount]:
    with serving(StripeAccount()) as server:
        yield server


def doctor(database: str, account: StripeAccount | None, *args: str,
           key: str | None = "sk_test_local", secret: str | None = "whsec_local") -> Outcome:
    env: dict[str, str | None] = {apps.DATABASE_ENV: database,
                                  apps.WEBHOOK_SECRET_ENV: secret,
                                  apps.STRIPE_KEY_ENV: key if account else None,
                                  apps.STRIPE_URL_ENV: account.url if account else None}
    return invoke("doctor", *args, env=env)


def lines(shown: Outcome) -> dict[str, str]:
    """Each check's line, by check name (the summary line left out)."""
    assert shown.stderr == ""
    found = {}
    for line in shown.stdout.splitlines()[:-1]:
        status, _, rest = line.partition("  ")
        name, _, detail = rest.partition(": ")
        found[name] = f"{status.strip()} {detail}"
    return found


def failures(shown: Outcome) -> dict[str, str]:
    assert shown.exit_code == 1, shown.stdout
    return {name: line for name, line in lines(shown).items() if line.startswith("FAIL")}


def test_a_good_setup_passes(db_url: str, account: StripeAccount) -> None:
    shown = doctor(db_url, account)
    assert shown.exit_code == 0, shown.stdout
    found = lines(shown)
    assert found.pop("mode") == "PASS test mode, from the Stripe key"
    assert found.pop("webhook secret") == "PASS set: 1 secret, whsec_…"
    assert found.pop("price PRO_MONTHLY") == (
        "PASS price_pro_monthly is active, recurring every month, test mode")
    assert found.pop("price CREDITS_1K") == "PASS price_credits_1k is active, one-time, test mode"
    assert found.pop(f"webhook endpoint {ENDPOINT_URL}") == (
        "PASS enabled, subscribes to every event type licenzy-embed handles")
    assert found.pop("store").startswith("PASS ")
    assert set(found) == {f"price {p.code}" for p in catalog()} - {
        "price PRO_MONTHLY", "price CREDITS_1K"}
    assert all(line.startswith("PASS") for line in found.values())
    assert shown.stdout.splitlines()[-1] == f"{len(catalog()) + 4} passed, 0 failed, 0 skipped"
    # Every request went through the SDK with the app's key: one per price, one listing.
    assert sorted(r.path for r in account.requests) == sorted(
        [f"/v1/prices/{p.price}" for p in catalog()] + ["/v1/webhook_endpoints"])
    assert {r.headers["Authorization"] for r in account.requests} == {"Bearer sk_test_local"}


def test_the_json_report(db_url: str, account: StripeAccount) -> None:
    account.prices["price_week_pass"]["active"] = False
    shown = doctor(db_url, account, "--json")
    assert shown.exit_code == 1
    report = shown.json()
    assert (report["ok"], report["mode"]) == (False, "test")
    by_name = {check["name"]: check for check in report["checks"]}
    assert by_name["price WEEK_PASS"] == {
        "name": "price WEEK_PASS", "status": "fail", "detail": "price_week_pass is archived",
        "fix": "unarchive it in the Dashboard, or point Product(price=…) at an active price"}
    assert by_name["store"]["status"] == "pass" and by_name["store"]["fix"] is None


def test_a_missing_price(db_url: str, account: StripeAccount) -> None:
    del account.prices["price_pro_monthly"]
    assert failures(doctor(db_url, account)) == {"price PRO_MONTHLY": (
        "FAIL price_pro_monthly does not exist in test mode; fix: create the price in Stripe "
        "(test mode) or correct Product(price=…)")}


def test_an_archived_price(db_url: str, account: StripeAccount) -> None:
    account.prices["price_credits_100"]["active"] = False
    assert failures(doctor(db_url, account)) == {
        "price CREDITS_100": "FAIL price_credits_100 is archived; fix: unarchive it in the "
                             "Dashboard, or point Product(price=…) at an active price"}


def test_a_one_time_price_on_a_subscription_and_the_reverse(db_url: str,
                                                            account: StripeAccount) -> None:
    account.prices["price_pro_monthly"].update(type="one_time", recurring=None)
    account.prices["price_week_pass"].update(type="recurring",
                                             recurring={"interval": "week"})
    assert failures(doctor(db_url, account)) == {
        "price PRO_MONTHLY": "FAIL price_pro_monthly is a one-time price but PRO_MONTHLY is a "
                             "subscription; fix: give PRO_MONTHLY a recurring price",
        "price WEEK_PASS": "FAIL price_week_pass is a recurring price but WEEK_PASS is a "
                           "time_pass; fix: give WEEK_PASS a one-time price"}


def test_a_live_price_with_a_test_key(db_url: str, account: StripeAccount) -> None:
    account.prices["price_credits_1k"]["livemode"] = True
    assert failures(doctor(db_url, account)) == {
        "price CREDITS_1K": "FAIL price_credits_1k is a live-mode price; the key is a test "
                            "key; fix: use the test-mode price's id in Product(price=…)"}


def test_a_price_that_lives_in_the_other_mode(db_url: str, account: StripeAccount) -> None:
    account.in_the_other_mode.add("price_lifetime")
    assert failures(doctor(db_url, account)) == {
        "price LIFETIME": "FAIL price_lifetime is a live-mode price; the key is a test key; "
                          "fix: use the test-mode price's id in Product(price=…): each mode "
                          "has its own prices"}


def test_an_endpoint_missing_an_event_type(db_url: str, account: StripeAccount) -> None:
    events = sorted(HANDLED_EVENTS - {"invoice_payment.paid"})
    account.endpoints = [account.endpoint(events)]
    assert failures(doctor(db_url, account)) == {
        f"webhook endpoint {ENDPOINT_URL}": "FAIL missing 1 event type: invoice_payment.paid; "
        "fix: add them to the endpoint (Dashboard > Webhooks > the endpoint > Update details)"}


def test_the_event_types_include_the_ones_a_forgotten_subscription_would_miss() -> None:
    assert {"invoice_payment.paid", "checkout.session.completed",
            "customer.subscription.deleted", "charge.refunded"} <= HANDLED_EVENTS


def test_endpoints_all_events_disabled_unrelated_and_none(db_url: str,
                                                         account: StripeAccount) -> None:
    account.endpoints = [account.endpoint(["*"]),
                         account.endpoint(["customer.created"], url="https://crm.example/in")]
    shown = doctor(db_url, account)
    assert shown.exit_code == 0
    found = lines(shown)
    assert found[f"webhook endpoint {ENDPOINT_URL}"].startswith("PASS enabled")
    assert found["webhook endpoint https://crm.example/in"] == (
        "SKIP subscribes to none of the events licenzy-embed handles (another app's endpoint?)")

    account.endpoints = [account.endpoint(["*"], status="disabled")]
    assert failures(doctor(db_url, account)) == {
        f"webhook endpoint {ENDPOINT_URL}": "FAIL it is disabled; fix: enable it in the "
        "Dashboard (Stripe disables an endpoint that keeps failing)"}

    account.endpoints = []
    (line,) = failures(doctor(db_url, account)).values()
    assert line.startswith("FAIL no endpoint subscribes to the events licenzy-embed handles; "
                           "fix: add an endpoint for the app's webhook route with these events: "
                           "charge.dispute.closed, ")
    assert "invoice_payment.paid" in line


def test_a_key_that_may_not_read_endpoints_skips_that_check(db_url: str,
                                                            account: StripeAccount) -> None:
    account.forbid_endpoints = True
    shown = doctor(db_url, account, key="rk_test_restricted")
    assert shown.exit_code == 0
    assert lines(shown)["webhook endpoints"].startswith(
        "SKIP cannot read endpoints with this key; fix: grant the restricted key read access")

    account.forbid_prices = True
    shown = doctor(db_url, account, key="rk_test_restricted")
    assert shown.exit_code == 0
    found = lines(shown)
    assert found["prices"] == ("SKIP cannot read prices with this key; fix: grant the "
                               "restricted key read access to Prices, or compare the catalog "
                               "with the Dashboard")
    assert not any(name.startswith("price ") for name in found)


def test_a_missing_webhook_secret(db_url: str, account: StripeAccount) -> None:
    found = failures(doctor(db_url, account, secret=None))
    assert list(found) == ["webhook secret"]
    assert found["webhook secret"].startswith(
        "FAIL none set: every delivery will be refused as invalid_signature; fix: set "
        "stripe_webhook_secret to the endpoint's signing secret (whsec_…")


@pytest.mark.parametrize("secret", ["sk_test_oops", "whsec_abc\n", "abc123"])
def test_a_malformed_webhook_secret_is_refused_when_the_app_is_built(
        db_url: str, account: StripeAccount, secret: str) -> None:
    shown = doctor(db_url, account, secret=secret)
    assert shown.exit_code == 1
    assert shown.stdout == ""
    (line,) = shown.stderr.splitlines()
    assert line.startswith("licenzy-embed: building the app's Licenzy with ")
    assert "stripe_webhook_secret" in line and "Traceback" not in shown.stderr
    assert "sk_test_oops" not in line


def test_stripe_unreachable_is_one_failure_and_no_traceback(db_url: str) -> None:
    account = StripeAccount()  # never started: nothing listens on its port
    account.server.server_close()
    found = lines(doctor(db_url, account))
    assert found["stripe"].startswith("FAIL cannot read price_")
    assert "check the Stripe key, and that the host can reach api.stripe.com" in found["stripe"]
    assert found["webhook endpoints"] == "SKIP not checked: Stripe did not answer"
    assert not any(name.startswith("price ") for name in found)
    assert found["store"].startswith("PASS")


def test_a_key_stripe_refuses(db_url: str, account: StripeAccount) -> None:
    account.fail_next = error(401, "Invalid API Key provided: sk_test_*****ocal",
                              type="invalid_request_error")
    found = failures(doctor(db_url, account))
    assert list(found) == ["stripe"]
    assert "Invalid API Key provided" in found["stripe"]


def test_without_a_key_the_simulator_stands_in(db_url: str) -> None:
    shown = doctor(db_url, None, secret=None)
    assert shown.exit_code == 0
    found = lines(shown)
    assert found["mode"] == "PASS test mode: no Stripe key, the Stripe simulator stands in"
    assert found["webhook secret"].startswith("SKIP none set: the simulator signs with a "
                                              "random secret of its own")
    assert found["stripe"].startswith("SKIP the simulator stands in for Stripe")
    assert found["store"].startswith("PASS")


@pytest.mark.parametrize("backend", [
    "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_a_store_never_migrated(empty_url: str, account: StripeAccount) -> None:
    found = failures(doctor(empty_url, account))
    assert list(found) == ["store"]
    assert found["store"].endswith(" has no licenzy tables; fix: run `licenzy-embed migrate "
                                   "--url …` with this database's URL")


def test_a_store_newer_than_the_package(db_url: str, account: StripeAccount) -> None:
    engine = sa.create_engine(db_url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"UPDATE {schema.VERSION_TABLE} SET version_num = '9999'")
        (line,) = failures(doctor(db_url, account)).values()
        assert line.endswith("is at revision 9999, newer than this licenzy-embed knows; fix: "
                             "upgrade the licenzy-embed package")
    finally:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                f"UPDATE {schema.VERSION_TABLE} SET version_num = '{head_revision()}'")
        engine.dispose()


def test_an_unreachable_store(account: StripeAccount) -> None:
    found = failures(doctor("postgresql+psycopg://postgres:pw@127.0.0.1:1/licenzy_test",
                            account))
    assert list(found) == ["store"]
    assert found["store"].startswith("FAIL cannot reach postgresql+psycopg://postgres:***@")
    assert "pw@" not in found["store"]


def test_an_in_memory_store() -> None:
    shown = doctor("memory", None)
    assert shown.exit_code == 0
    assert lines(shown)["store"].startswith("PASS in-memory store: nothing to migrate")

    live = StripeAccount(livemode=True)
    with serving(live):
        found = failures(doctor("memory", live, key="sk_live_local"))
    assert found == {"store": "FAIL an in-memory store in live mode: entitlements are lost "
                              "when the process ends and not shared between processes; fix: "
                              "use SQLAlchemyStore"}
