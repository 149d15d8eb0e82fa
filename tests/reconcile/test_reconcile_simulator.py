"""``reconcile`` against the Stripe simulator, on every store: what lost webhooks left wrong
is found and fixed, a dry run reports exactly that and writes nothing, a second run changes
and announces nothing, and the late webhook copy of a reconciled event is a duplicate."""

from __future__ import annotations

from datetime import timedelta

import pytest

from licenzy_embed import ChangeEvent, Licenzy
from licenzy_embed.errors import InvalidRequest
from licenzy_embed.testing import FrozenClock, StripeSimulator

Lost = tuple[StripeSimulator, list[dict[str, object]]]


def buy(sim: StripeSimulator, lz: Licenzy, subject: str, product: str) -> None:
    sim.complete_checkout(lz.create_checkout_session(subject, product,
                                                     idempotency_key=f"buy-{subject}"))


def lose_three(lz: Licenzy) -> Lost:
    """A subscription canceled, a pack refunded and a purchase completed, while every
    webhook about them was lost."""
    sim = StripeSimulator.for_licenzy(lz)
    buy(sim, lz, "sub_user", "PRO_MONTHLY")
    buy(sim, lz, "pack_user", "CREDITS_1K")
    pending = lz.create_checkout_session("new_user", "WEEK_PASS", idempotency_key="buy-new")
    with sim.hold_deliveries() as held:
        sim.cancel("sub_user")
        sim.refund("pack_user")
        sim.complete_checkout(pending)
    lost = list(held)
    held.clear()
    return sim, lost


def access(lz: Licenzy) -> dict[str, bool]:
    return {s: lz.check_access(s).allowed for s in ("sub_user", "pack_user", "new_user")}


BROKEN = {"sub_user": True, "pack_user": True, "new_user": False}
HEALED = {"sub_user": False, "pack_user": False, "new_user": True}


def test_reconcile_finds_and_fixes_what_lost_webhooks_left_wrong(lz: Licenzy) -> None:
    sim, lost = lose_three(lz)
    changes: list[ChangeEvent] = []
    lz.on("*", changes.append)
    assert access(lz) == BROKEN

    report = lz.reconcile()

    assert access(lz) == HEALED
    assert sorted(c.subject_ref for c in report.changes) == ["new_user", "pack_user",
                                                            "sub_user"]
    assert report.events_applied == len(lost)
    assert report.duplicates == report.events_seen - len(lost) > 0  # applied ones: duplicates
    body = report.to_dict()
    change = next(c for c in body["changes"] if c["subject_ref"] == "sub_user")
    assert (change["before"]["has_access"], change["after"]["has_access"]) == (True, False)
    assert {c.type for c in changes} >= {"subscription.deleted", "entitlement.updated",
                                         "purchase.finalized"}
    # Each reconciled event was recorded under its own Stripe id: the late copy is a duplicate.
    assert [r.outcome for r in sim.deliver(lost)] == ["duplicate"] * len(lost)  # type: ignore[attr-defined]

    seen = len(changes)
    again = lz.reconcile()
    assert again.changes == [] and again.events_applied == 0 and again.claims_applied == 0
    assert again.duplicates == again.events_seen
    assert len(changes) == seen  # nothing announced
    assert access(lz) == HEALED


def test_a_dry_run_reports_exactly_those_subjects_and_writes_nothing(lz: Licenzy) -> None:
    _, lost = lose_three(lz)
    changes: list[ChangeEvent] = []
    lz.on("*", changes.append)
    ledgers = {s: len(lz.ledger(s)) for s in ("sub_user", "pack_user", "new_user")}
    outbox = len(lz.change_events(limit=10_000))

    report = lz.reconcile(dry_run=True)

    assert report.dry_run
    assert sorted(c.subject_ref for c in report.changes) == ["new_user", "pack_user",
                                                            "sub_user"]
    new = next(c for c in report.changes if c.subject_ref == "new_user")
    assert (new.before["has_access"], new.after["has_access"]) == (False, True)
    assert access(lz) == BROKEN
    assert {s: len(lz.ledger(s)) for s in ledgers} == ledgers
    assert changes == [] and len(lz.change_events(limit=10_000)) == outbox
    assert all(lz.store.get_processed_event(lz.mode, e["id"]) is None  # type: ignore[arg-type]
               for e in lost)
    # The real run then does what the dry run said.
    real = lz.reconcile()
    assert [c.to_dict() for c in real.changes] == [c.to_dict() for c in report.changes]


def test_drift_older_than_the_event_window_is_healed_from_current_state(
        lz: Licenzy, clock: FrozenClock) -> None:
    lose_three(lz)
    clock.advance(timedelta(days=31))  # Stripe no longer lists those events
    report = lz.reconcile()
    assert report.events_seen == 0
    assert report.objects_reread >= 2 and report.claims_applied == 2
    # The subscription and the refund are re-read and fixed; a purchase none of whose events
    # Stripe still has has no entitlement to re-read (the README says so).
    assert access(lz) == {"sub_user": False, "pack_user": False, "new_user": False}
    (pack,) = lz.entitlements("pack_user")
    assert (pack.status, pack.usage_remaining) == ("refunded", 0)
    assert lz.reconcile().claims_applied == 0


def test_a_later_real_event_still_wins_over_a_claim(lz: Licenzy, clock: FrozenClock) -> None:
    sim = StripeSimulator.for_licenzy(lz)
    buy(sim, lz, "sub_user", "PRO_MONTHLY")
    with sim.hold_deliveries() as held:
        sim.pause("sub_user")
    held.clear()
    clock.advance(timedelta(days=31))
    lz.reconcile()
    assert lz.entitlements("sub_user")[0].status == "paused"
    clock.advance(timedelta(seconds=5))
    sim.resume("sub_user")  # created after the claim was read
    assert lz.entitlements("sub_user")[0].status == "active"


@pytest.mark.parametrize("since", [timedelta(0), timedelta(days=-1), "yesterday"])
def test_a_bad_since_is_refused(lz: Licenzy, since: object) -> None:
    StripeSimulator.for_licenzy(lz)
    with pytest.raises(InvalidRequest):
        lz.reconcile(since=since)  # type: ignore[arg-type]


def test_an_unreadable_event_is_skipped_and_the_rest_applied(lz: Licenzy) -> None:
    sim, lost = lose_three(lz)
    bad = sim.event("customer.subscription.updated", {"id": "sub_" + "x" * 300,
                                                      "object": "subscription"})
    report = lz.reconcile()
    assert report.skipped == 1 and bad["id"]
    assert report.events_applied == len(lost)
    assert access(lz) == HEALED
