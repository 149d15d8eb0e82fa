"""SPEC §10 on every store: features gate access, each meter is its own balance spent by the
rules of §4 (order, all or nothing, idempotency, holds), and a refusal names what to buy."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from licenzy_embed import (
    IdempotencyConflict,
    InsufficientUsage,
    InvalidRequest,
    Licenzy,
)
from licenzy_embed.errors import NothingToSpend
from licenzy_embed.stores.base import Store
from licenzy_embed.testing import FrozenClock

from ._meters import API_CALLS, EXPORTS, metered_licenzy, meters_of, upgrade
from ._support import snapshot


@pytest.fixture
def mlz(store: Store, clock: FrozenClock) -> Licenzy:
    return metered_licenzy(store, clock)


# ---------------------------------------------------------------------------- features
def test_a_feature_is_granted_by_a_product_listing_it(mlz: Licenzy, subject: str) -> None:
    assert not mlz.check_access(subject, "reports")
    starter = mlz.grant(subject, "STARTER_MONTHLY", reason="trial")
    assert mlz.check_access(subject)
    assert mlz.check_access(subject, "reports")
    assert not mlz.check_access(subject, "sso")
    assert not mlz.check_access(subject, "api_calls")  # a meter it does not have
    mlz.revoke(starter.id, reason="ended")
    assert not mlz.check_access(subject, "reports")


def test_a_meter_with_units_left_is_granted_as_a_feature(mlz: Licenzy, subject: str) -> None:
    bundle = mlz.grant(subject, "BUNDLE_PACK", reason="promo")
    assert mlz.check_access(subject, "api_calls") and mlz.check_access(subject, "exports")
    assert not mlz.check_access(subject, "reports")
    mlz.consume_usage(subject, 100, idempotency_key="all-calls", meter="api_calls")
    # The pack stays available while any of its meters has units left.
    assert mlz.check_access(subject)
    assert not mlz.check_access(subject, "api_calls")
    assert mlz.check_access(subject, "exports")
    assert meters_of(mlz, subject) == {bundle.id: {"api_calls": 0, "exports": 10}}
    mlz.consume_usage(subject, 10, idempotency_key="all-exports", meter="exports")
    assert not mlz.check_access(subject)
    assert mlz.entitlements(subject)[0].availability_reason == "usage_exhausted"


def test_a_name_no_product_grants_is_a_typo_not_a_denial(mlz: Licenzy, subject: str) -> None:
    mlz.grant(subject, "TEAM_MONTHLY", reason="a")
    before = snapshot(mlz, subject)
    for call in (lambda: mlz.check_access(subject, "repots"),
                 lambda: mlz.check_access(subject, "Reports"),
                 lambda: mlz.consume_usage(subject, 1, idempotency_key="k", meter="api_cals"),
                 lambda: mlz.reserve_usage(subject, 1, idempotency_key="k", meter="reports"),
                 lambda: mlz.consume_usage(subject, 1, idempotency_key="k",
                                           meter=7)):  # type: ignore[arg-type]
        with pytest.raises(InvalidRequest) as err:
            call()
        assert err.value.status == 400
    with pytest.raises(InvalidRequest, match="repots"):
        mlz.check_access(subject, "repots")
    assert snapshot(mlz, subject) == before


def test_customer_access_shows_features_and_meters(mlz: Licenzy, clock: FrozenClock,
                                                   subject: str) -> None:
    team = mlz.grant(subject, "TEAM_MONTHLY", reason="a")
    clock.advance(seconds=1)
    pack = mlz.grant(subject, "API_PACK", reason="b")
    mlz.consume_usage(subject, 60, idempotency_key="k", meter="api_calls")
    mlz.consume_usage(subject, 50, idempotency_key="e", meter="exports")
    body = mlz.customer_access(subject).to_dict()
    assert json.loads(json.dumps(body)) == body
    assert body["features"] == ["api_calls", "reports", "sso"]  # exports is used up
    by_id = {e["id"]: e for e in body["entitlements"]}
    assert by_id[team.id]["features"] == ["reports", "sso"]
    # Both never expire: the older (team) paid the 60 api_calls.
    assert by_id[team.id]["meters"] == {"api_calls": 940, "exports": 0}
    # usage_remaining is the sum of the entitlement's meters (the units meter alone, for a
    # product with only that one, as before meters).
    assert by_id[team.id]["usage_remaining"] == 940
    assert by_id[pack.id] == {**by_id[pack.id], "features": [],
                              "meters": {"api_calls": 500}, "usage_remaining": 500}


# ---------------------------------------------------------------------------- spending
def test_each_meter_is_spent_in_the_order_of_section_4(mlz: Licenzy, clock: FrozenClock,
                                                       subject: str) -> None:
    team = mlz.grant(subject, "TEAM_MONTHLY", reason="no expiry, oldest")
    clock.advance(seconds=1)
    week = mlz.grant(subject, "API_PACK_7D", reason="expires first")
    clock.advance(seconds=1)
    bundle = mlz.grant(subject, "BUNDLE_PACK", reason="no expiry, newer")
    result = mlz.consume_usage(subject, 30, idempotency_key="1", meter="api_calls")
    assert (result.consumed, result.usage_remaining, result.meter) == (30, 1090, "api_calls")
    assert meters_of(mlz, subject) == {
        team.id: {"api_calls": 990, "exports": 50}, week.id: {"api_calls": 0},
        bundle.id: {"api_calls": 100, "exports": 10}}
    # exports: the oldest carrying it pays; api_calls are not touched.
    result = mlz.consume_usage(subject, 55, idempotency_key="2", meter="exports")
    assert (result.usage_remaining, result.meter) == (5, "exports")
    # The JSON a metered view answers says which meter that total is of.
    assert result.to_dict() == {"ok": True, "consumed": 55, "usage_remaining": 5,
                                "meter": "exports"}
    assert meters_of(mlz, subject) == {
        team.id: {"api_calls": 990, "exports": 0}, week.id: {"api_calls": 0},
        bundle.id: {"api_calls": 100, "exports": 5}}


def test_all_or_nothing_per_meter_with_that_meters_total(mlz: Licenzy, subject: str) -> None:
    mlz.grant(subject, "BUNDLE_PACK", reason="a")
    mlz.grant(subject, "API_PACK", reason="b")
    before = snapshot(mlz, subject)
    with pytest.raises(InsufficientUsage) as err:
        mlz.consume_usage(subject, 11, idempotency_key="k", meter="exports")
    assert (err.value.status, err.value.code) == (409, "insufficient_usage")
    assert err.value.to_dict() == {
        "error": "insufficient_usage", "message": str(err.value), "requested": 11,
        "usage_remaining": 10, "meter": "exports", "upgrade": upgrade(*EXPORTS)}
    with pytest.raises(InsufficientUsage) as err:
        mlz.reserve_usage(subject, 601, idempotency_key="h", meter="api_calls")
    assert (err.value.usage_remaining, err.value.meter) == (600, "api_calls")
    assert snapshot(mlz, subject) == before


def test_nothing_to_spend_from_is_a_402_naming_what_to_buy(mlz: Licenzy,
                                                          subject: str) -> None:
    with pytest.raises(NothingToSpend) as err:
        mlz.consume_usage(subject, 1, idempotency_key="k", meter="api_calls")
    assert isinstance(err.value, InsufficientUsage)  # code catching that keeps working
    assert (err.value.status, err.value.code) == (402, "access_denied")
    assert err.value.to_dict()["upgrade"] == upgrade(*API_CALLS)
    mlz.grant(subject, "STARTER_MONTHLY", reason="features, no meters")
    with pytest.raises(NothingToSpend):
        mlz.reserve_usage(subject, 1, idempotency_key="h", meter="exports")
    # "units" stays a valid meter even where no product of the catalog has it in use.
    with pytest.raises(NothingToSpend):
        mlz.consume_usage(subject, 1, idempotency_key="u")
    assert mlz.ledger(subject)[-1].action == "granted"


def test_replays_and_conflicts_per_subject_and_key(mlz: Licenzy, subject: str) -> None:
    mlz.grant(subject, "TEAM_MONTHLY", reason="a")
    first = mlz.consume_usage(subject, 5, idempotency_key="job", meter="api_calls")
    again = mlz.consume_usage(subject, 5, idempotency_key="job", meter="api_calls")
    assert again.replayed and (again.usage_remaining, again.meter) == (995, "api_calls")
    assert not first.replayed
    before = snapshot(mlz, subject)
    with pytest.raises(IdempotencyConflict):
        mlz.consume_usage(subject, 5, idempotency_key="job", meter="exports")
    with pytest.raises(IdempotencyConflict):
        mlz.consume_usage(subject, 5, idempotency_key="job")  # the units meter
    hold = mlz.reserve_usage(subject, 3, idempotency_key="h", meter="exports")
    assert mlz.reserve_usage(subject, 3, idempotency_key="h", meter="exports").id == hold.id
    with pytest.raises(IdempotencyConflict):
        mlz.reserve_usage(subject, 3, idempotency_key="h", meter="api_calls")
    assert mlz.entitlements(subject)[0].to_dict()["meters"] == {
        "api_calls": 995, "exports": 47}
    assert len(mlz.ledger(subject)) == len(before[1]) + 1  # only the hold


def test_holds_per_meter_commit_in_part_and_release(mlz: Licenzy, clock: FrozenClock,
                                                    subject: str) -> None:
    team = mlz.grant(subject, "TEAM_MONTHLY", reason="a")
    hold = mlz.reserve_usage(subject, 40, idempotency_key="h1", meter="exports")
    assert hold.meter == "exports" and hold.to_dict()["meter"] == "exports"
    other = mlz.reserve_usage(subject, 100, idempotency_key="h2", meter="api_calls")
    assert meters_of(mlz, subject) == {team.id: {"api_calls": 900, "exports": 10}}
    result = hold.commit(25)
    assert (result.consumed, result.usage_remaining, result.meter) == (25, 25, "exports")
    other.release()
    assert meters_of(mlz, subject) == {team.id: {"api_calls": 1000, "exports": 25}}
    late = mlz.reserve_usage(subject, 5, idempotency_key="h3", meter="exports",
                             ttl=timedelta(seconds=30))
    clock.advance(minutes=1)
    assert meters_of(mlz, subject) == {team.id: {"api_calls": 1000, "exports": 25}}
    assert late.meter == "exports"
    entries = [(e.action, e.meter, e.units_delta) for e in mlz.ledger(subject)]
    assert entries == [
        ("granted", "api_calls", 1000), ("granted", "exports", 50),
        ("held", "exports", -40), ("held", "api_calls", -100),
        ("released", "exports", 15), ("committed", "exports", 0),
        ("released", "api_calls", 100), ("held", "exports", -5), ("expired", "exports", 5)]


def test_adjust_and_grant_take_a_meter(mlz: Licenzy, subject: str) -> None:
    team = mlz.grant(subject, "TEAM_MONTHLY", reason="comp", meters={"exports": 5})
    assert meters_of(mlz, subject) == {team.id: {"api_calls": 1000, "exports": 5}}
    adjusted = mlz.adjust_usage(team.id, -300, reason="abuse", meter="api_calls")
    assert adjusted.meters == {"api_calls": 700, "exports": 5}
    assert mlz.ledger(subject)[-1].meter == "api_calls"
    before = snapshot(mlz, subject)
    with pytest.raises(InvalidRequest, match="5 remain"):
        mlz.adjust_usage(team.id, -6, reason="x", meter="exports")
    with pytest.raises(InvalidRequest, match="no meter"):
        mlz.adjust_usage(team.id, 1, reason="x")  # the units meter: not this entitlement's
    with pytest.raises(InvalidRequest):
        mlz.grant(subject, "TEAM_MONTHLY", reason="x", meters={"exprts": 5})
    with pytest.raises(InvalidRequest):
        mlz.grant(subject, "DAY_PASS", reason="x", meters={"exports": 5})
    assert snapshot(mlz, subject) == before
    units = mlz.grant(subject, "CREDITS_100", reason="units= keeps meaning the units meter",
                      units=7)
    assert units.meters == {"units": 7} and units.usage_remaining == 7
