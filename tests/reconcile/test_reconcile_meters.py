"""``reconcile`` with products of several meters (SPEC §10 meets §11), on every store: a lost
period renewal resets each meter once, a dry run writes no meter, ledger entry or outbox row,
and re-reading a refunded subscription or pack changes and announces nothing."""

from __future__ import annotations

from datetime import timedelta

from licenzy_embed import ChangeEvent, Licenzy
from licenzy_embed.stores.base import Store
from licenzy_embed.testing import FrozenClock, StripeSimulator

from ..contract._meters import metered_licenzy, meters_of


def bought(store: Store, clock: FrozenClock) -> tuple[Licenzy, StripeSimulator]:
    lz = metered_licenzy(store, clock)
    sim = StripeSimulator.for_licenzy(lz)
    for subject, product in (("team", "TEAM_MONTHLY"), ("bundle", "BUNDLE_PACK")):
        sim.complete_checkout(lz.create_checkout_session(subject, product,
                                                         idempotency_key=f"buy-{subject}"))
    return lz, sim


def test_a_lost_renewal_resets_each_meter_once_and_a_dry_run_writes_nothing(
        store: Store, clock: FrozenClock) -> None:
    lz, sim = bought(store, clock)
    lz.consume_usage("team", 10, idempotency_key="calls", meter="api_calls")
    lz.consume_usage("team", 3, idempotency_key="exports", meter="exports")
    clock.advance(timedelta(days=31))
    with sim.hold_deliveries() as held:
        sim.renew("team")
    held.clear()
    spent = meters_of(lz, "team")
    assert list(spent.values()) == [{"api_calls": 990, "exports": 47}]
    changes: list[ChangeEvent] = []
    lz.on("*", changes.append)
    ledger, outbox = len(lz.ledger("team")), len(lz.change_events(limit=10_000))

    dry = lz.reconcile(dry_run=True)

    assert [c.subject_ref for c in dry.changes] == ["team"]
    (after,) = dry.changes[0].after["entitlements"]
    assert after["meters"] == {"api_calls": 1000, "exports": 50}
    assert meters_of(lz, "team") == spent
    assert (len(lz.ledger("team")), len(lz.change_events(limit=10_000))) == (ledger, outbox)
    assert changes == []

    real = lz.reconcile()
    assert [c.to_dict() for c in real.changes] == [c.to_dict() for c in dry.changes]
    assert list(meters_of(lz, "team").values()) == [{"api_calls": 1000, "exports": 50}]
    resets = [e for e in lz.ledger("team") if e.action == "units_reset"]
    assert sorted((e.meter, e.units_delta) for e in resets[-2:]) == [("api_calls", 10),
                                                                     ("exports", 3)]
    seen, entries = len(changes), len(lz.ledger("team"))
    again = lz.reconcile()
    assert (again.changes, again.events_applied, again.claims_applied) == ([], 0, 0)
    assert (len(changes), len(lz.ledger("team"))) == (seen, entries)


def test_re_reading_a_refunded_subscription_or_pack_changes_and_announces_nothing(
        store: Store, clock: FrozenClock) -> None:
    lz, sim = bought(store, clock)
    clock.advance(timedelta(hours=1))
    sim.refund("team")
    sim.refund("bundle")
    assert [lz.check_access(s).allowed for s in ("team", "bundle")] == [False, False]
    assert list(meters_of(lz, "bundle").values()) == [{"api_calls": 0, "exports": 0}]
    changes: list[ChangeEvent] = []
    lz.on("*", changes.append)
    ledgers = {s: len(lz.ledger(s)) for s in ("team", "bundle")}

    for _ in range(2):
        clock.advance(timedelta(minutes=5))  # each run reads Stripe at another instant
        report = lz.reconcile()
        assert (report.changes, report.events_applied, report.claims_applied) == ([], 0, 0)

    assert changes == []
    assert {s: len(lz.ledger(s)) for s in ledgers} == ledgers
    assert [lz.check_access(s).allowed for s in ("team", "bundle")] == [False, False]
