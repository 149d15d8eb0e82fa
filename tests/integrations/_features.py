"""Features and meters through every adapter (SPEC §10): each framework's ``test_routes.py``
imports these and drives its own app, which exposes the same paths:

* ``GET /features/reports`` — ``requires_access("reports")`` (``require_access(billing,
  "reports")`` in FastAPI), ``GET /features/sso`` — the same with ``feature="sso"``;
* ``POST /features/api`` — ``consumes_usage(10, meter="api_calls")``;
* ``POST /features/typo`` — a meter no product has (``api_cals``).

The catalog is ``_support.products()``."""

from __future__ import annotations

from licenzy_embed import Licenzy

from ._routes import Http

ALICE = {"X-User": "alice"}
REPORTS = [{"product_code": "PRO_MONTHLY", "kind": "subscription"},
           {"product_code": "WEEK_PASS", "kind": "time_pass"},
           {"product_code": "TEAM_MONTHLY", "kind": "subscription"}]
API_CALLS = [{"product_code": "API_PACK", "kind": "usage_pack"},
             {"product_code": "TEAM_MONTHLY", "kind": "subscription"}]


def meters(lz: Licenzy, subject: str = "alice") -> dict[str, dict[str, int]]:
    return {e.product_code: dict(e.meters) for e in lz.entitlements(subject)}


def test_a_feature_view_runs_for_a_product_listing_the_feature(http: Http,
                                                              lz: Licenzy) -> None:
    lz.grant("alice", "WEEK_PASS", reason="test")
    assert http.get("/features/reports", ALICE) == (200, {"feature": "reports"})


def test_a_feature_view_denies_with_what_to_buy(http: Http, lz: Licenzy) -> None:
    status, body = http.get("/features/reports", ALICE)
    assert (status, body["error"], body["feature"]) == (402, "access_denied", "reports")
    assert body["upgrade"] == REPORTS  # catalog order
    lz.grant("alice", "WEEK_PASS", reason="has reports, not sso")
    status, body = http.get("/features/sso", ALICE)
    assert (status, body["error"]) == (402, "access_denied")
    assert body["upgrade"] == [{"product_code": "TEAM_MONTHLY", "kind": "subscription"}]
    lz.grant("alice", "TEAM_MONTHLY", reason="upgraded")
    assert http.get("/features/sso", ALICE) == (200, {"feature": "sso"})


def test_a_bare_access_denial_offers_every_product(http: Http, lz: Licenzy) -> None:
    status, body = http.get("/sync/report", ALICE)
    assert (status, body["error"]) == (402, "access_denied")
    assert [u["product_code"] for u in body["upgrade"]] == [
        "PRO_MONTHLY", "CREDITS_100", "WEEK_PASS", "API_PACK", "TEAM_MONTHLY"]


def test_a_meter_view_charges_that_meter_only(http: Http, lz: Licenzy) -> None:
    lz.grant("alice", "API_PACK", reason="test")
    lz.grant("alice", "CREDITS_100", reason="units of another meter")
    status, body = http.post("/features/api", b"", ALICE)
    assert (status, body) == (200, {"hold": 10, "meter": "api_calls"})
    assert meters(lz) == {"API_PACK": {"api_calls": 90, "exports": 5},
                          "CREDITS_100": {"units": 100}}
    charged = [(e.action, e.meter, e.units_delta) for e in lz.ledger("alice")
               if e.action in ("held", "committed")]
    assert charged == [("held", "api_calls", -10), ("committed", "api_calls", 0)]


def test_a_meter_view_answers_409_when_the_meter_is_short(http: Http, lz: Licenzy) -> None:
    pack = lz.grant("alice", "API_PACK", reason="test")
    lz.adjust_usage(pack.id, -95, reason="leave 5", meter="api_calls")
    status, body = http.post("/features/api", b"", ALICE)
    assert (status, body["error"], body["meter"]) == (409, "insufficient_usage", "api_calls")
    assert (body["requested"], body["usage_remaining"]) == (10, 5)
    assert body["upgrade"] == API_CALLS
    assert meters(lz) == {"API_PACK": {"api_calls": 5, "exports": 5}}


def test_a_meter_view_answers_402_with_nothing_to_spend_from(http: Http,
                                                             lz: Licenzy) -> None:
    status, body = http.post("/features/api", b"", ALICE)
    assert (status, body["error"], body["upgrade"]) == (402, "access_denied", API_CALLS)
    lz.grant("alice", "CREDITS_100", reason="units, not api_calls")
    status, body = http.post("/features/api", b"", ALICE)
    assert (status, body["error"]) == (402, "access_denied")
    assert meters(lz) == {"CREDITS_100": {"units": 100}}


def test_a_meter_no_product_has_is_a_400_naming_it(http: Http, lz: Licenzy) -> None:
    lz.grant("alice", "API_PACK", reason="test")
    status, body = http.post("/features/typo", b"", ALICE)
    assert (status, body["error"]) == (400, "invalid_request")
    assert "api_cals" in body["message"]
    assert meters(lz) == {"API_PACK": {"api_calls": 100, "exports": 5}}
