"""Fixing a customer by hand: ``grant``, ``revoke`` and ``adjust`` print the entitlement the
Python API returns; bad input is a usage error (exit 2) that changes nothing; an unknown
entitlement is a failure (exit 1)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from licenzy_embed import Licenzy

from . import apps
from .conftest import Outcome, Run, invoke


def test_grant_prints_the_granted_entitlement(run: Run, lz: Licenzy) -> None:
    shown = run("grant", "user_1", "CREDITS_1K", "--reason", "comp for ticket 4411", "--json")
    assert (shown.exit_code, shown.stderr) == (0, "")
    (stored,) = lz.entitlements("user_1")
    assert shown.json() == stored.to_dict()
    assert (stored.source, stored.usage_remaining) == ("admin", 1000)
    assert [(e.action, e.reason) for e in lz.ledger("user_1")] == [
        ("granted", "comp for ticket 4411")]
    assert lz.check_access("user_1")


def test_grant_with_units_and_an_expiry(run: Run, lz: Licenzy) -> None:
    shown = run("grant", "user_1", "PRO_MONTHLY", "--reason", "30-day comp", "--units", "50",
                "--expires-at", "2026-03-31T12:00:00+02:00")
    assert shown.exit_code == 0, shown.stderr
    (stored,) = lz.entitlements("user_1")
    assert shown.stdout.splitlines()[0] == f"granted PRO_MONTHLY to user_1: {stored.id}"
    assert stored.to_dict()["expires_at"] == "2026-03-31T10:00:00Z"
    assert stored.usage_remaining == 50
    assert stored.id in shown.stdout.splitlines()[2]

    dated = run("grant", "user_2", "WEEK_PASS", "--reason", "r", "--expires-at", "2026-04-01",
                "--json")
    assert dated.json()["expires_at"] == "2026-04-01T00:00:00Z"  # no offset: UTC


@pytest.mark.parametrize("args, says", [
    (["--units", "0"], "--units"),
    (["--units", "abc"], "--units"),
    (["--units", str(10**12 + 1)], "--units"),
    (["--units", "-5"], "--units"),
    (["--expires-at", "next tuesday"], "ISO 8601"),
    (["--expires-at", "2026-02-01T00:00:00Z"], "not in the future"),
    (["--reason", "   "], "reason"),
])
def test_bad_grant_options_are_usage_errors_and_grant_nothing(run: Run, lz: Licenzy,
                                                              args: list[str],
                                                              says: str) -> None:
    reason = [] if "--reason" in args else ["--reason", "comp"]
    shown = run("grant", "user_1", "CREDITS_1K", *reason, *args, "--json")
    assert shown.exit_code == 2, shown.stderr
    assert says in shown.stderr and shown.stdout == ""
    assert lz.entitlements("user_1") == [] and lz.ledger("user_1") == []


@pytest.mark.parametrize("product, args, says", [
    ("NOT_SOLD", [], "no product 'NOT_SOLD' in the app's catalog; use one of PRO_MONTHLY, "),
    ("pro monthly", [], "product_code must match"),
    ("WEEK_PASS", ["--units", "5"], "a time_pass has no units"),
])
def test_grant_refusals_are_one_line(run: Run, lz: Licenzy, product: str, args: list[str],
                                     says: str) -> None:
    shown = run("grant", "user_1", product, "--reason", "comp", *args)
    assert shown.exit_code == 2
    assert says in shown.error_line()
    assert lz.entitlements("user_1") == []


def test_grant_needs_a_reason(run: Run, lz: Licenzy) -> None:
    shown = run("grant", "user_1", "CREDITS_1K")
    assert shown.exit_code == 2
    assert "Missing option '--reason'" in shown.stderr
    assert lz.entitlements("user_1") == []


def test_revoke(run: Run, lz: Licenzy) -> None:
    granted = lz.grant("user_1", "WEEK_PASS", reason="trial")
    shown = run("revoke", granted.id, "--reason", "chargeback by email", "--json")
    assert shown.exit_code == 0
    (stored,) = lz.entitlements("user_1")
    assert shown.json() == stored.to_dict()
    assert shown.json()["status"] == "revoked"
    assert not lz.check_access("user_1")
    assert lz.ledger("user_1")[-1].reason == "chargeback by email"

    again = run("revoke", granted.id, "--reason", "twice")
    assert again.exit_code == 0
    assert again.stdout.splitlines()[0] == f"{granted.id} was already revoked: nothing changed"
    assert len(lz.ledger("user_1")) == 2


def test_adjust_adds_and_removes_units(run: Run, lz: Licenzy) -> None:
    pack = lz.grant("user_1", "CREDITS_100", reason="pack")
    added = run("adjust", pack.id, "25", "--reason", "goodwill", "--json")
    assert added.exit_code == 0
    assert added.json() == lz.entitlements("user_1")[0].to_dict()
    assert added.json()["usage_remaining"] == 125

    removed = run("adjust", pack.id, "-50", "--reason", "granted twice")  # a negative DELTA
    assert removed.exit_code == 0, removed.stderr
    assert removed.stdout.splitlines()[0] == f"removed 50 units: {pack.id} has 75 left"
    assert [(e.units_delta, e.reason) for e in lz.ledger("user_1")][1:] == [
        (25, "goodwill"), (-50, "granted twice")]


@pytest.mark.parametrize("delta, says", [
    ("0", "non-zero"), ("abc", "DELTA"), ("1.5", "DELTA"), (str(10**12 + 1), "non-zero"),
])
def test_bad_deltas_are_usage_errors(run: Run, lz: Licenzy, delta: str, says: str) -> None:
    pack = lz.grant("user_1", "CREDITS_100", reason="pack")
    shown = run("adjust", pack.id, delta, "--reason", "x")
    assert shown.exit_code == 2
    assert says in shown.stderr
    assert lz.entitlements("user_1")[0].usage_remaining == 100


@pytest.mark.parametrize("product, delta, says", [
    ("CREDITS_100", "-101", "cannot remove 101 units: 100 remain"),
    ("WEEK_PASS", "10", "is not metered"),
])
def test_adjust_refusals_change_nothing(run: Run, lz: Licenzy, product: str, delta: str,
                                        says: str) -> None:
    granted = lz.grant("user_1", product, reason="r")
    shown = run("adjust", granted.id, delta, "--reason", "x")
    assert shown.exit_code == 2
    assert says in shown.error_line()
    assert lz.entitlements("user_1")[0].to_dict() == granted.to_dict()
    assert len(lz.ledger("user_1")) == 1


@pytest.mark.parametrize("args", [
    ["revoke", "ent_missing", "--reason", "x"],
    ["adjust", "ent_missing", "5", "--reason", "x"],
    ["adjust", "ent_missing", "-5", "--reason", "x", "--json"],
])
def test_an_unknown_entitlement_fails(run: Run, args: list[str]) -> None:
    shown = run(*args)
    assert shown.exit_code == 1
    line = shown.error_line()
    assert "no entitlement ent_missing (entitlement_not_found)" in line
    assert "licenzy-embed entitlements SUBJECT" in line


def test_an_unknown_option_after_a_negative_delta_is_still_refused(run: Run,
                                                                   lz: Licenzy) -> None:
    pack = lz.grant("user_1", "CREDITS_100", reason="pack")
    shown = run("adjust", pack.id, "-5", "--reason", "x", "--jsn")
    assert shown.exit_code == 2
    assert lz.entitlements("user_1")[0].usage_remaining == 100


# ---------------------------------------------------------------------------- meters
@pytest.fixture
def metered(db_url: str) -> Iterator[tuple[Run, Licenzy]]:
    """The CLI and the app on the catalog of features and meters."""
    licenzy = apps.build(db_url, metered=True)

    def run_(*args: str) -> Outcome:
        return invoke(*args, env={apps.DATABASE_ENV: db_url, apps.METERED_ENV: "1"})

    yield run_, licenzy
    licenzy.store.close()  # type: ignore[attr-defined]


def test_grant_and_adjust_name_a_meter(metered: tuple[Run, Licenzy]) -> None:
    run, lz = metered
    shown = run("grant", "user_1", "TEAM_MONTHLY", "--reason", "comp", "--meter",
                "exports=5", "--meter", "api_calls=200", "--json")
    assert shown.exit_code == 0, shown.stderr
    (stored,) = lz.entitlements("user_1")
    assert shown.json() == stored.to_dict()
    assert stored.meters == {"api_calls": 200, "exports": 5}

    added = run("adjust", stored.id, "10", "--reason", "goodwill", "--meter", "exports")
    assert added.exit_code == 0, added.stderr
    assert added.stdout.splitlines()[0] == f"added 10 units of exports: {stored.id} has 15 left"
    assert lz.entitlements("user_1")[0].meters == {"api_calls": 200, "exports": 15}
    assert (lz.ledger("user_1")[-1].meter, lz.ledger("user_1")[-1].units_delta) == ("exports",
                                                                                  10)
    # People read each meter's balance, not only their sum; the ledger names its meter.
    table = run("entitlements", "user_1").stdout.splitlines()
    assert table[1].split()[6] == "api_calls=200,exports=15"
    ledger = run("ledger", "user_1").stdout.splitlines()
    assert ledger[-1].split()[3:5] == ["+10", "exports"]


@pytest.mark.parametrize("args, says", [
    (["grant", "user_1", "TEAM_MONTHLY", "--reason", "r", "--meter", "api_cals=5"],
     "no product of the catalog has the meter 'api_cals'"),
    (["grant", "user_1", "TEAM_MONTHLY", "--reason", "r", "--meter", "api_calls"], "NAME=N"),
    (["grant", "user_1", "TEAM_MONTHLY", "--reason", "r", "--meter", "api_calls=x"],
     "whole number"),
    (["grant", "user_1", "TEAM_MONTHLY", "--reason", "r", "--meter", "api_calls=0"],
     "between 1 and"),
])
def test_a_bad_meter_is_a_usage_error_that_grants_nothing(metered: tuple[Run, Licenzy],
                                                          args: list[str], says: str) -> None:
    run, lz = metered
    shown = run(*args)
    assert shown.exit_code == 2, shown.stderr
    assert says in shown.stderr and shown.stdout == ""
    assert lz.entitlements("user_1") == []


def test_adjust_of_a_meter_the_entitlement_lacks_changes_nothing(
        metered: tuple[Run, Licenzy]) -> None:
    run, lz = metered
    pack = lz.grant("user_1", "API_PACK", reason="pack")
    for meter, says in (("exports", "has no meter 'exports'"),
                        ("api_cals", "no product of the catalog has the meter 'api_cals'")):
        shown = run("adjust", pack.id, "5", "--reason", "x", "--meter", meter)
        assert shown.exit_code == 2
        assert says in shown.error_line()
    assert lz.entitlements("user_1")[0].meters == {"api_calls": 500}
