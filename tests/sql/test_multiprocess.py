"""Several app processes on one database (SPEC §8): separate interpreters, separate engines,
started together on a barrier. Nothing here sleeps or measures time; a generous guard only
keeps a hung worker from hanging the suite."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from licenzy_embed import InsufficientUsage, Licenzy
from licenzy_embed.testing import FrozenClock, StripeSimulator

from ..conftest import START
from . import _workers as workers
from ._workers import WEBHOOK_SECRET, licenzy

pytestmark = pytest.mark.slow
PROCESSES = 4


def units_left(url: str, subject: str) -> int:
    lz = licenzy(url)
    try:
        return sum(e.usage_remaining or 0 for e in lz.entitlements(subject) if e.available)
    finally:
        lz.store.close()


def test_processes_spend_exactly_the_balance(
        db_url: str, open_licenzy: Callable[..., Licenzy]) -> None:
    lz = open_licenzy()
    subject = "user_spenders"
    lz.grant(subject, "CREDITS_100", reason="a", units=200)
    lz.grant(subject, "CREDITS_30D", reason="b", units=100)  # expires: pays first
    balance = 300

    outcomes = workers.run(workers.spend_until_empty,
                           [(db_url, subject, seed) for seed in range(PROCESSES)])

    successes = [s for ok, _ in outcomes for s in ok]
    refusals = [r for _, refused in outcomes for r in refused]
    # Spends serialise: sorted by what they left, each left the previous balance minus what
    # it took, from the full balance down to exactly zero.
    chain = [balance]
    for consumed, left in sorted(successes, key=lambda s: -s[1]):
        assert left == chain[-1] - consumed, (chain[-5:], consumed, left)
        chain.append(left)
    assert chain[-1] == 0
    assert sum(consumed for consumed, _ in successes) == balance
    # Every refusal saw a balance the subject really had, too small for what it asked.
    for requested, left in refusals:
        assert left in chain and left < requested, (requested, left)
    assert sum(1 for _, left in refusals if left == 0) == PROCESSES  # each stopped at zero

    assert [e.usage_remaining for e in lz.entitlements(subject)] == [0, 0]
    spent = [e.units_delta or 0 for e in lz.ledger(subject) if e.action == "consumed"]
    assert -sum(spent) == balance and len(spent) >= len(successes)


def test_the_same_keys_from_several_processes_spend_once(
        db_url: str, open_licenzy: Callable[..., Licenzy]) -> None:
    lz = open_licenzy()
    subject = "user_retries"
    lz.grant(subject, "CREDITS_100", reason="a")
    keys = [f"request-{i}" for i in range(15)]

    outcomes = workers.run(workers.spend_shared_keys,
                           [(db_url, subject, keys, 3, seed) for seed in range(PROCESSES)])

    by_key: dict[str, set[tuple[int, int]]] = {}
    firsts: dict[str, int] = {}
    for results in outcomes:
        for key, consumed, left, replayed in results:
            by_key.setdefault(key, set()).add((consumed, left))
            firsts[key] = firsts.get(key, 0) + (not replayed)
    # Every process got the one answer of each key; exactly one process spent it.
    assert all(len(answers) == 1 for answers in by_key.values()), by_key
    assert firsts == {key: 1 for key in keys}
    assert sorted(left for (_, left), in by_key.values()) == list(range(55, 100, 3))
    assert units_left(db_url, subject) == 100 - 3 * len(keys)
    assert [e.units_delta for e in lz.ledger(subject) if e.action == "consumed"] == (
        [-3] * len(keys))


def test_the_same_webhook_from_several_processes_is_applied_once(
        db_url: str, open_licenzy: Callable[..., Licenzy]) -> None:
    lz = open_licenzy(stripe_webhook_secret=WEBHOOK_SECRET)
    sim = StripeSimulator.for_licenzy(lz)

    def purchase(subject: str) -> list[dict[str, object]]:
        session = lz.create_checkout_session(subject, "CREDITS_1K",
                                             idempotency_key=f"buy-{subject}")
        with sim.hold_deliveries():
            events = sim.complete_checkout(session)
        sim.held.clear()
        return events

    # A control purchase delivered once shows what one application of the event writes.
    (control,) = purchase("user_control")
    sim.deliver(control)
    (event,) = purchase("user_contested")
    assert event["type"] == "checkout.session.completed"
    payload, header = sim.signed(event)

    outcomes = workers.run(workers.deliver_webhook,
                           [(db_url, payload, header, 2) for _ in range(PROCESSES)])

    flat = [o for per_process in outcomes for o in per_process]
    assert flat.count("processed") == 1
    assert flat.count("duplicate") == 2 * PROCESSES - 1
    (pack,) = lz.entitlements("user_contested")
    assert (pack.product_code, pack.usage_remaining, pack.available) == ("CREDITS_1K", 1000, True)
    stored = lz.store.get_processed_event(lz.mode, str(event["id"]))
    assert stored is not None and stored.outcome == "processed"

    def written(subject: str) -> list[tuple[str, int | None]]:
        return [(e.action, e.units_delta) for e in lz.ledger(subject)]

    assert written("user_contested") == written("user_control")
    assert len(written("user_control")) >= 1


def test_holds_of_a_killed_process_come_back_after_their_expiry(
        db_url: str, open_licenzy: Callable[..., Licenzy]) -> None:
    clock = FrozenClock(START)
    lz = open_licenzy(clock=clock)
    subject = "user_crashing_worker"
    lz.grant(subject, "CREDITS_100", reason="a")

    running = workers.start(workers.hold_and_hang, [(db_url, subject, 60, 90)])
    _, (hold_id, expires_at) = running.next_message()
    running.kill(0)
    running.stop()

    assert expires_at == START + timedelta(seconds=90)
    assert units_left(db_url, subject) == 40  # the dead worker's hold still counts
    with pytest.raises(InsufficientUsage) as refused:
        lz.consume_usage(subject, 50, idempotency_key="too-early")
    assert (refused.value.requested, refused.value.usage_remaining) == (50, 40)

    clock.advance(seconds=90)  # the hold's expiry: its units are back
    assert lz.consume_usage(subject, 50, idempotency_key="after-expiry").usage_remaining == 50
    reservation = lz.get_reservation(hold_id)
    assert reservation is not None and reservation.status == "expired"
    assert [(e.action, e.units_delta) for e in lz.ledger(subject)] == [
        ("granted", 100), ("held", -60), ("expired", 60), ("consumed", -50)]


def test_a_process_killed_inside_a_transaction_leaves_nothing_behind(
        db_url: str, open_licenzy: Callable[..., Licenzy]) -> None:
    lz = open_licenzy()
    subject = "user_killed_mid_transaction"
    lz.grant(subject, "CREDITS_100", reason="a")

    running = workers.start(workers.hang_inside_transaction, [(db_url, subject, 60)])
    running.next_message()  # units taken, ledger written, not committed
    running.kill(0)
    running.stop()

    # The dead transaction's row locks are gone and none of its writes happened.
    assert lz.consume_usage(subject, 100, idempotency_key="all").usage_remaining == 0
    assert [(e.action, e.units_delta) for e in lz.ledger(subject)] == [
        ("granted", 100), ("consumed", -100)]


@pytest.mark.parametrize("backend", ["sqlite"])
def test_a_licenzy_on_sqlite_keeps_its_state_across_a_restart(db_url: str) -> None:
    subject = "user_restarted"
    (first,) = workers.run(workers.first_life, [(db_url, subject)])
    (second,) = workers.run(workers.second_life, [(db_url, subject, first["hold"])])

    (pack,) = second["before"]
    assert (pack["id"], pack["usage_remaining"], pack["available"]) == (first["pack"], 50, True)
    assert second["replayed"] == (True, 70)  # the key spent before the restart replays
    assert second["committed"] == (15, 55)  # the hold survived the restart: 5 of 20 back
    assert second["after"] == 50
    assert second["ledger"] == [("granted", 100), ("consumed", -30), ("held", -20),
                                ("released", 5), ("committed", 0), ("consumed", -5)]
    assert units_left(db_url, subject) == 50


def test_processes_spending_two_meters_of_one_subject_at_once(db_url: str) -> None:
    """Two processes drain api_calls while two drain exports of the same subject (the same
    entitlement rows): each meter's spends form one chain down to zero, and neither meter
    pays for the other."""
    from licenzy_embed.stores.sqlalchemy import SQLAlchemyStore

    from ..contract._meters import metered_catalog

    lz = Licenzy(store=SQLAlchemyStore(db_url), products=metered_catalog(),
                 clock=FrozenClock(START))
    subject = "user_two_meters"
    try:
        lz.grant(subject, "TEAM_MONTHLY", reason="a", meters={"api_calls": 120,
                                                              "exports": 60})
        lz.grant(subject, "BUNDLE_PACK", reason="b")  # 100 api_calls, 10 exports
        balances = {"api_calls": 220, "exports": 70}

        outcomes = workers.run(workers.spend_meter_until_empty, [
            (db_url, subject, meter, seed)
            for seed, meter in enumerate(["api_calls", "exports", "api_calls", "exports"])])

        for meter, balance in balances.items():
            successes = [s for m, ok, _ in outcomes if m == meter for s in ok]
            refusals = [r for m, _, refused in outcomes if m == meter for r in refused]
            chain = [balance]
            for consumed, left in sorted(successes, key=lambda s: -s[1]):
                assert left == chain[-1] - consumed, (meter, chain[-5:], consumed, left)
                chain.append(left)
            assert chain[-1] == 0 and sum(c for c, _ in successes) == balance
            for requested, left in refusals:
                assert left in chain and left < requested, (meter, requested, left)
            spent = [e.units_delta or 0 for e in lz.ledger(subject)
                     if e.action == "consumed" and e.meter == meter]
            assert -sum(spent) == balance
        assert [dict(e.meters) for e in lz.entitlements(subject)] == [
            {"api_calls": 0, "exports": 0}, {"api_calls": 0, "exports": 0}]
        assert not lz.check_access(subject, "api_calls")
    finally:
        lz.store.close()
