"""SPEC §4 availability: each kind over time, statuses, reasons, CustomerAccess, JSON shapes."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from licenzy_embed import InsufficientUsage, Licenzy
from licenzy_embed.testing import FrozenClock

from ._support import insert_entitlement, new_subject

SECOND = timedelta(seconds=1)


def only(lz: Licenzy, subject_ref: str) -> dict[str, object]:
    (ent,) = lz.entitlements(subject_ref)
    return {"available": ent.available, "reason": ent.availability_reason,
            "status": ent.status, "allowed": lz.check_access(subject_ref).allowed}


def test_a_subject_without_entitlements_has_no_access(lz: Licenzy, subject: str) -> None:
    decision = lz.check_access(subject)
    assert not decision
    assert decision.to_dict() == {"subject_ref": subject, "allowed": False}
    access = lz.customer_access(subject)
    assert not access
    assert access.to_dict() == {"subject_ref": subject, "has_access": False, "status": "none",
                                "features": [], "entitlements": []}
    assert lz.entitlements(subject) == []


# ---------------------------------------------------------------- subscriptions
def test_granted_subscription_is_available_with_its_units(lz: Licenzy, clock: FrozenClock,
                                                           subject: str) -> None:
    ent = lz.grant(subject, "PRO_MONTHLY", reason="comp")
    assert (ent.kind, ent.status, ent.available) == ("subscription", "active", True)
    assert ent.availability_reason == "subscription_active"
    assert ent.usage_remaining == 1000
    assert ent.expires_at is None
    clock.advance(days=400)  # no expiry given: a comp without end
    assert only(lz, subject) == {"available": True, "reason": "subscription_active",
                                 "status": "active", "allowed": True}


def test_unmetered_subscription_has_no_usage_remaining(lz: Licenzy, subject: str) -> None:
    ent = lz.grant(subject, "BASIC_MONTHLY", reason="comp")
    assert ent.usage_remaining is None
    assert ent.available and lz.check_access(subject)


def test_granted_subscription_with_expires_at_ends_then(lz: Licenzy, clock: FrozenClock,
                                                        subject: str) -> None:
    end = clock() + timedelta(days=30)
    ent = lz.grant(subject, "PRO_MONTHLY", reason="30 days comp", expires_at=end)
    assert ent.expires_at == end and ent.available
    clock.set(end - SECOND)
    assert only(lz, subject)["allowed"] is True
    clock.set(end)
    assert only(lz, subject) == {"available": False, "reason": "expired", "status": "active",
                                 "allowed": False}


@pytest.mark.parametrize(("status", "available", "reason"), [
    ("active", True, "subscription_active"),
    ("trialing", True, "subscription_trialing"),
    ("unpaid", False, "subscription_unpaid"),
    ("canceled", False, "subscription_canceled"),
    ("incomplete", False, "subscription_incomplete"),
    ("incomplete_expired", False, "subscription_incomplete_expired"),
    ("paused", False, "subscription_paused"),
    ("past_due", False, "subscription_past_due"),  # no grace recorded: none given
])
def test_subscription_status_decides_availability(lz: Licenzy, clock: FrozenClock,
                                                  subject: str, status: str, available: bool,
                                                  reason: str) -> None:
    insert_entitlement(lz, subject, "PRO_MONTHLY", status=status,
                       expires_at=clock() + timedelta(days=20),
                       stripe_subscription_id="sub_" + subject)
    assert only(lz, subject) == {"available": available, "reason": reason, "status": status,
                                 "allowed": available}
    access = lz.customer_access(subject)
    assert access.has_access is available
    assert access.status == ("active" if available else status)


def test_stripe_subscription_availability_follows_status_not_period_end(
        lz: Licenzy, clock: FrozenClock, subject: str) -> None:
    # Stripe keeps a paid subscription's status and period in step (invoice.paid renews it);
    # the period end alone does not cut a paying customer off between two webhooks.
    insert_entitlement(lz, subject, "PRO_MONTHLY", status="active",
                       expires_at=clock() + timedelta(days=1))
    clock.advance(days=2)
    assert only(lz, subject)["allowed"] is True


def test_past_due_is_available_during_grace_then_not(lz: Licenzy, clock: FrozenClock,
                                                     subject: str) -> None:
    grace_until = clock() + lz.past_due_grace
    insert_entitlement(lz, subject, "PRO_MONTHLY", status="past_due", grace_until=grace_until,
                       expires_at=clock() + timedelta(days=10))
    assert only(lz, subject) == {"available": True, "reason": "past_due_grace",
                                 "status": "past_due", "allowed": True}
    assert lz.customer_access(subject).status == "active"
    clock.set(grace_until - SECOND)
    assert only(lz, subject)["reason"] == "past_due_grace"
    clock.set(grace_until)
    assert only(lz, subject) == {"available": False, "reason": "subscription_past_due",
                                 "status": "past_due", "allowed": False}
    assert lz.customer_access(subject).status == "past_due"


def test_units_of_a_subscription_in_grace_can_be_spent_until_it_ends(
        lz: Licenzy, clock: FrozenClock, subject: str) -> None:
    insert_entitlement(lz, subject, "PRO_MONTHLY", status="past_due",
                       grace_until=clock() + timedelta(days=3))
    assert lz.consume_usage(subject, 10, idempotency_key="k1").usage_remaining == 990
    clock.advance(days=3)
    with pytest.raises(InsufficientUsage) as err:
        lz.consume_usage(subject, 10, idempotency_key="k2")
    assert (err.value.requested, err.value.usage_remaining) == (10, 0)


def test_default_past_due_grace_is_three_days(lz: Licenzy) -> None:
    assert lz.past_due_grace == timedelta(days=3)


# ---------------------------------------------------------------- usage packs
def test_pack_is_available_while_it_has_units(lz: Licenzy, clock: FrozenClock,
                                              subject: str) -> None:
    ent = lz.grant(subject, "CREDITS_100", reason="welcome")
    assert (ent.kind, ent.usage_remaining, ent.expires_at) == ("usage_pack", 100, None)
    assert ent.availability_reason == "usage_available"
    clock.advance(days=3650)  # a pack without a duration never expires
    assert only(lz, subject)["allowed"] is True
    lz.consume_usage(subject, 100, idempotency_key="all")
    assert only(lz, subject) == {"available": False, "reason": "usage_exhausted",
                                 "status": "active", "allowed": False}
    # Not available, but its status field still says "active": the customer view says why.
    assert lz.customer_access(subject).status == "usage_exhausted"


def test_expiring_pack_expires_with_units_left(lz: Licenzy, clock: FrozenClock,
                                               subject: str) -> None:
    ent = lz.grant(subject, "CREDITS_30D", reason="promo")
    assert ent.expires_at == clock() + timedelta(days=30)
    assert ent.usage_remaining == 500
    clock.set(ent.expires_at - SECOND)
    assert only(lz, subject)["reason"] == "usage_available"
    clock.set(ent.expires_at)
    assert only(lz, subject) == {"available": False, "reason": "expired", "status": "active",
                                 "allowed": False}
    assert lz.customer_access(subject).status == "expired"
    (after,) = lz.entitlements(subject)
    assert after.usage_remaining == 500  # nothing taken, just no longer spendable


@pytest.mark.parametrize(("status", "reason"), [
    ("pending", "payment_pending"),
    ("refunded", "refunded"),
    ("disputed", "disputed"),
    ("failed", "payment_failed"),
    ("revoked", "revoked"),
])
@pytest.mark.parametrize("product", ["CREDITS_1K", "WEEK_PASS"])
def test_unsettled_or_reversed_purchases_are_not_available(
        lz: Licenzy, subject: str, product: str, status: str, reason: str) -> None:
    kw: dict[str, Any] = {}
    if status == "refunded" and product == "CREDITS_1K":
        kw["usage_remaining"] = 0  # a refunded pack keeps no units
    insert_entitlement(lz, subject, product, status=status,
                       expires_at=lz.now() + timedelta(days=7) if product == "WEEK_PASS"
                       else None, **kw)
    assert only(lz, subject) == {"available": False, "reason": reason, "status": status,
                                 "allowed": False}
    assert lz.customer_access(subject).status == status


def test_units_of_an_unavailable_pack_cannot_be_spent(lz: Licenzy, subject: str) -> None:
    insert_entitlement(lz, subject, "CREDITS_1K", status="disputed")
    with pytest.raises(InsufficientUsage) as err:
        lz.consume_usage(subject, 1, idempotency_key="k")
    assert err.value.usage_remaining == 0
    (ent,) = lz.entitlements(subject)
    assert ent.usage_remaining == 1000


# ---------------------------------------------------------------- time passes
def test_time_pass_is_available_until_purchase_plus_duration(lz: Licenzy, clock: FrozenClock,
                                                             subject: str) -> None:
    ent = lz.grant(subject, "WEEK_PASS", reason="trial week")
    assert ent.kind == "time_pass" and ent.usage_remaining is None
    assert ent.expires_at == clock() + timedelta(days=7)
    assert ent.availability_reason == "pass_active"
    clock.advance(timedelta(days=7) - SECOND)
    assert only(lz, subject) == {"available": True, "reason": "pass_active", "status": "active",
                                 "allowed": True}
    clock.advance(SECOND)
    assert only(lz, subject) == {"available": False, "reason": "expired", "status": "active",
                                 "allowed": False}


def test_time_pass_without_duration_never_expires(lz: Licenzy, clock: FrozenClock,
                                                  subject: str) -> None:
    ent = lz.grant(subject, "LIFETIME", reason="founder")
    assert ent.expires_at is None
    clock.advance(days=365 * 30)
    assert only(lz, subject)["allowed"] is True


def test_explicit_expires_at_overrides_the_duration(lz: Licenzy, clock: FrozenClock,
                                                    subject: str) -> None:
    end = clock() + timedelta(days=1)
    ent = lz.grant(subject, "WEEK_PASS", reason="one day", expires_at=end)
    assert ent.expires_at == end
    clock.set(end)
    assert not lz.check_access(subject)


def test_expires_at_in_another_timezone_is_stored_as_utc(lz: Licenzy, clock: FrozenClock,
                                                         subject: str) -> None:
    from datetime import timezone
    paris = timezone(timedelta(hours=1))
    end = (clock() + timedelta(days=2)).astimezone(paris)
    ent = lz.grant(subject, "LIFETIME", reason="tz", expires_at=end)
    assert ent.expires_at == end
    assert ent.to_dict()["expires_at"] == "2026-03-03T12:00:00Z"


# ---------------------------------------------------------------- the subject as a whole
def test_any_available_entitlement_gives_access(lz: Licenzy, clock: FrozenClock,
                                                subject: str) -> None:
    lz.grant(subject, "WEEK_PASS", reason="a")
    insert_entitlement(lz, subject, "PRO_MONTHLY", status="canceled")
    assert lz.check_access(subject)
    access = lz.customer_access(subject)
    assert (access.has_access, access.status, len(access.entitlements)) == (True, "active", 2)
    clock.advance(days=8)
    assert not lz.check_access(subject)


def test_status_without_access_is_the_most_recently_changed_entitlements(
        lz: Licenzy, clock: FrozenClock, subject: str) -> None:
    insert_entitlement(lz, subject, "PRO_MONTHLY", status="canceled")
    clock.advance(hours=1)
    pack = lz.grant(subject, "CREDITS_100", reason="a")
    clock.advance(hours=1)
    insert_entitlement(lz, subject, "BASIC_MONTHLY", status="unpaid")
    assert lz.customer_access(subject).status == "active"  # the pack is available
    clock.advance(hours=1)
    lz.revoke(pack.id, reason="abuse")
    assert lz.customer_access(subject).status == "revoked"  # the revocation is newest
    clock.advance(hours=1)
    insert_entitlement(lz, subject, "CREDITS_1K", status="pending")
    assert lz.customer_access(subject).status == "pending"


def test_other_subjects_do_not_share_access(lz: Licenzy, subject: str) -> None:
    lz.grant(subject, "LIFETIME", reason="a")
    other = new_subject()
    assert not lz.check_access(other)
    assert lz.entitlements(other) == []


def test_entitlement_fields(lz: Licenzy, clock: FrozenClock, subject: str) -> None:
    ent = lz.grant(subject, "CREDITS_30D", reason="promo")
    assert ent.id and ent.subject_ref == subject and ent.product_code == "CREDITS_30D"
    assert ent.created_at == ent.updated_at == clock()
    assert (ent.source, ent.mode) == ("admin", "test")
    (listed,) = lz.entitlements(subject)
    assert listed == ent
    clock.advance(minutes=5)
    lz.consume_usage(subject, 5, idempotency_key="k")
    (listed,) = lz.entitlements(subject)
    assert listed.created_at == ent.created_at
    assert listed.updated_at == clock()


def test_to_dict_shapes_are_licenzys_json(lz: Licenzy, clock: FrozenClock,
                                          subject: str) -> None:
    lz.grant(subject, "CREDITS_30D", reason="promo")
    body = lz.customer_access(subject).to_dict()
    assert json.loads(json.dumps(body)) == body
    assert set(body) == {"subject_ref", "has_access", "status", "features", "entitlements"}
    (ent,) = body["entitlements"]
    assert {"kind", "status", "available", "usage_remaining", "availability_reason",
            "expires_at", "id", "subject_ref", "product_code", "created_at",
            "updated_at"} <= set(ent)
    assert ent == {
        **ent,
        "kind": "usage_pack", "status": "active", "available": True, "usage_remaining": 500,
        "availability_reason": "usage_available", "expires_at": "2026-03-31T12:00:00Z",
        "created_at": "2026-03-01T12:00:00Z", "updated_at": "2026-03-01T12:00:00Z",
        "subject_ref": subject, "product_code": "CREDITS_30D",
    }
    assert lz.check_access(subject).to_dict() == {"subject_ref": subject, "allowed": True}
    assert lz.entitlements(subject)[0].to_dict() == ent
    used = lz.consume_usage(subject, 20, idempotency_key="k").to_dict()
    assert used == {"ok": True, "consumed": 20, "usage_remaining": 480,
                    "meter": "units"}


def test_unmetered_and_unexpiring_fields_are_json_null(lz: Licenzy, subject: str) -> None:
    body = lz.grant(subject, "BASIC_MONTHLY", reason="comp").to_dict()
    assert body["usage_remaining"] is None and body["expires_at"] is None
    assert '"usage_remaining": null' in json.dumps(body)
