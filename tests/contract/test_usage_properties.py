"""Property-based tests of usage (hypothesis), run against every store of the fixture.

A state machine grants packs (some expiring), consumes with keys (replays included), holds,
commits (in part), releases and moves the clock, while a plain-Python model of SPEC §4 says
what every call must answer. After each step: every balance matches the model and is never
negative, the ledger adds up to it, nothing spent exceeds what was granted, and a replay
never spends twice. Each example works on a fresh subject, so a shared SQL database is fine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from licenzy_embed import (
    IdempotencyConflict,
    InsufficientUsage,
    InvalidRequest,
    Licenzy,
    ReservationExpired,
)
from licenzy_embed.testing import FrozenClock
from licenzy_embed.usage import Reservation

from ._support import new_subject

CONSUME_KEYS = [f"c{i}" for i in range(6)]
HOLD_KEYS = [f"h{i}" for i in range(4)]
EXPIRIES = [None, timedelta(hours=1), timedelta(days=1), timedelta(days=10)]
TTLS = [timedelta(minutes=1), timedelta(minutes=5), timedelta(hours=2)]
_END_OF_TIME = datetime.max


@dataclass
class ModelEntitlement:
    id: str
    remaining: int
    expires_at: datetime | None
    created_at: datetime

    def spendable(self, now: datetime) -> bool:
        return self.remaining > 0 and (self.expires_at is None or now < self.expires_at)

    def order(self) -> tuple[bool, datetime, datetime, str]:
        exp = self.expires_at.replace(tzinfo=None) if self.expires_at else _END_OF_TIME
        return (self.expires_at is None, exp, self.created_at, self.id)


@dataclass
class ModelHold:
    units: int
    allocations: list[tuple[str, int]]
    status: str
    expires_at: datetime
    handle: Reservation
    committed: int | None = None


@dataclass
class ModelUsage:
    entitlements: dict[str, ModelEntitlement] = field(default_factory=dict)
    consumed: dict[str, tuple[int, int]] = field(default_factory=dict)  # key -> units, left
    holds: dict[str, ModelHold] = field(default_factory=dict)
    granted: int = 0
    spent: int = 0

    def available(self, now: datetime) -> int:
        return sum(e.remaining for e in self.entitlements.values() if e.spendable(now))

    def take(self, units: int, now: datetime) -> list[tuple[str, int]]:
        plan = []
        for ent in sorted((e for e in self.entitlements.values() if e.spendable(now)),
                          key=ModelEntitlement.order):
            if units == 0:
                break
            step = min(units, ent.remaining)
            ent.remaining -= step
            units -= step
            plan.append((ent.id, step))
        assert units == 0, "the caller checked the balance first"
        return plan

    def give_back(self, allocations: list[tuple[str, int]]) -> None:
        for ent_id, units in allocations:
            self.entitlements[ent_id].remaining += units

    def expire(self, now: datetime) -> None:
        for hold in self.holds.values():
            if hold.status == "held" and hold.expires_at <= now:
                self.give_back(hold.allocations)
                hold.status = "expired"

    def held(self) -> int:
        return sum(h.units for h in self.holds.values() if h.status == "held")


def tail(allocations: list[tuple[str, int]], units: int) -> list[tuple[str, int]]:
    back = []
    for ent_id, taken in reversed(allocations):
        if units == 0:
            break
        give = min(units, taken)
        back.append((ent_id, give))
        units -= give
    return back


def make_machine(lz: Licenzy, clock: FrozenClock) -> type[RuleBasedStateMachine]:
    class UsageMachine(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.subject = new_subject("prop")
            self.model = ModelUsage()

        @rule(units=st.integers(1, 60), expiry=st.sampled_from(EXPIRIES))
        def grant(self, units: int, expiry: timedelta | None) -> None:
            # One second apart: "oldest first" is then decided by time, not by random ids.
            now = clock.advance(seconds=1)
            self.model.expire(now)
            ent = lz.grant(self.subject, "CREDITS_100", reason="property", units=units,
                           expires_at=None if expiry is None else now + expiry)
            self.model.entitlements[ent.id] = ModelEntitlement(ent.id, units, ent.expires_at,
                                                               ent.created_at)
            self.model.granted += units

        @rule(units=st.integers(1, 40), key=st.sampled_from(CONSUME_KEYS))
        def consume(self, units: int, key: str) -> None:
            now, model = clock(), self.model
            if key in model.consumed:
                first_units, first_left = model.consumed[key]
                if units != first_units:
                    with pytest.raises(IdempotencyConflict):
                        lz.consume_usage(self.subject, units, idempotency_key=key)
                    return
                replay = lz.consume_usage(self.subject, units, idempotency_key=key)
                assert (replay.consumed, replay.usage_remaining, replay.replayed) == (
                    first_units, first_left, True)
                return
            available = model.available(now)
            if units > available:
                with pytest.raises(InsufficientUsage) as err:
                    lz.consume_usage(self.subject, units, idempotency_key=key)
                assert (err.value.requested, err.value.usage_remaining) == (units, available)
                return
            result = lz.consume_usage(self.subject, units, idempotency_key=key)
            model.take(units, now)
            model.spent += units
            model.consumed[key] = (units, available - units)
            assert (result.ok, result.consumed, result.usage_remaining) == (
                True, units, available - units)

        @precondition(lambda self: bool(self.model.consumed))
        @rule(data=st.data())
        def replay_consume(self, data: st.DataObject) -> None:
            """A retry of an earlier request: same key, same units (random draws rarely
            produce one)."""
            key = data.draw(st.sampled_from(sorted(self.model.consumed)), label="replayed key")
            self.consume(self.model.consumed[key][0], key)

        @precondition(lambda self: bool(self.model.holds))
        @rule(data=st.data(), ttl=st.sampled_from(TTLS))
        def replay_reserve(self, data: st.DataObject, ttl: timedelta) -> None:
            key = data.draw(st.sampled_from(sorted(self.model.holds)), label="replayed key")
            self.reserve(self.model.holds[key].units, key, ttl)

        @rule(units=st.integers(1, 40), key=st.sampled_from(HOLD_KEYS),
              ttl=st.sampled_from(TTLS))
        def reserve(self, units: int, key: str, ttl: timedelta) -> None:
            now, model = clock(), self.model
            previous = model.holds.get(key)
            if previous is not None and previous.units != units:
                with pytest.raises(IdempotencyConflict):
                    lz.reserve_usage(self.subject, units, idempotency_key=key, ttl=ttl)
                return
            if previous is not None and previous.status in ("held", "committed"):
                again = lz.reserve_usage(self.subject, units, idempotency_key=key, ttl=ttl)
                assert (again.id, again.status) == (previous.handle.id, previous.status)
                return
            available = model.available(now)
            if units > available:
                with pytest.raises(InsufficientUsage) as err:
                    lz.reserve_usage(self.subject, units, idempotency_key=key, ttl=ttl)
                assert err.value.usage_remaining == available
                return
            hold = lz.reserve_usage(self.subject, units, idempotency_key=key, ttl=ttl)
            assert (hold.units, hold.status, hold.expires_at) == (units, "held", now + ttl)
            model.holds[key] = ModelHold(units, model.take(units, now), "held", now + ttl,
                                         hold)

        @precondition(lambda self: bool(self.model.holds))
        @rule(data=st.data())
        def commit(self, data: st.DataObject) -> None:
            model = self.model
            key = data.draw(st.sampled_from(sorted(model.holds)), label="hold")
            hold = model.holds[key]
            units = data.draw(st.none() | st.integers(1, hold.units + 2), label="commit units")
            wanted = hold.units if units is None else units
            if wanted > hold.units:
                with pytest.raises(InvalidRequest):
                    hold.handle.commit(units)
            elif hold.status == "committed":
                if wanted != hold.committed:
                    with pytest.raises(IdempotencyConflict):
                        hold.handle.commit(units)
                else:
                    assert hold.handle.commit(units).replayed
            elif hold.status != "held":
                with pytest.raises(ReservationExpired):
                    hold.handle.commit(units)
            else:
                result = hold.handle.commit(units)
                model.give_back(tail(hold.allocations, hold.units - wanted))
                hold.status, hold.committed = "committed", wanted
                model.spent += wanted
                assert (result.consumed, result.usage_remaining) == (
                    wanted, model.available(clock()))

        @precondition(lambda self: bool(self.model.holds))
        @rule(data=st.data())
        def release(self, data: st.DataObject) -> None:
            hold = self.model.holds[data.draw(st.sampled_from(sorted(self.model.holds)))]
            hold.handle.release()
            if hold.status == "held":
                self.model.give_back(hold.allocations)
                hold.status = "released"

        @rule(minutes=st.integers(1, 3 * 24 * 60))
        def advance(self, minutes: int) -> None:
            clock.advance(minutes=minutes)
            self.model.expire(clock())

        @invariant()
        def balances_match_the_model(self) -> None:
            now, model = clock(), self.model
            ents = {e.id: e for e in lz.entitlements(self.subject)}
            assert {i: e.usage_remaining for i, e in ents.items()} == {
                i: e.remaining for i, e in model.entitlements.items()}
            assert all((e.usage_remaining or 0) >= 0 for e in ents.values())
            left = sum(e.usage_remaining or 0 for e in ents.values() if e.available)
            assert left == model.available(now)
            assert bool(lz.check_access(self.subject)) == (left > 0)

        @invariant()
        def units_are_conserved(self) -> None:
            model = self.model
            assert model.spent <= model.granted
            in_packs = sum(e.remaining for e in model.entitlements.values())
            assert in_packs + model.held() + model.spent == model.granted
            ledger = lz.ledger(self.subject)
            assert sum(e.units_delta or 0 for e in ledger) == in_packs
            consumed = -sum(e.units_delta or 0 for e in ledger if e.action == "consumed")
            assert consumed == sum(units for units, _ in model.consumed.values())

    return UsageMachine


def test_usage_state_machine(lz: Licenzy, clock: FrozenClock) -> None:
    run_state_machine_as_test(
        make_machine(lz, clock),
        settings=settings(max_examples=60, stateful_step_count=30, deadline=None,
                          database=None),
    )
