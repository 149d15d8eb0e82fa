"""Property-based differential test: any sequence of money operations gives exactly the same
answers and leaves exactly the same state on SQLAlchemyStore as on the reference
InMemoryStore — every result, every refusal, every balance, every ledger line, every instant
to the microsecond.

Subjects and idempotency keys are drawn from look-alikes ("u", "U", "u ", "ü", "ü"), which a
database collation could fold together, and the clock moves by arbitrary microseconds, which a
column without sub-second precision would round. Each example uses its own subject prefix, so
the shared database needs no cleaning between examples.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from licenzy_embed import InMemoryStore, Licenzy, LicenzyError
from licenzy_embed.stores.sqlalchemy import SQLAlchemyStore
from licenzy_embed.testing import FrozenClock
from licenzy_embed.usage import Reservation

from ..conftest import START, catalog

SUBJECTS = ["u", "U", "u ", "\u00fc", "u\u0308"]
KEYS = ["k", "K", "k ", "\u0137"]
PRODUCTS = ["CREDITS_100", "CREDITS_30D", "CREDITS_1K", "WEEK_PASS"]

units = st.integers(min_value=1, max_value=120)
operations = st.lists(st.one_of(
    st.tuples(st.just("grant"), st.sampled_from(range(len(SUBJECTS))),
              st.sampled_from(PRODUCTS), st.none() | units),
    st.tuples(st.just("consume"), st.sampled_from(range(len(SUBJECTS))), units,
              st.sampled_from(range(len(KEYS)))),
    st.tuples(st.just("reserve"), st.sampled_from(range(len(SUBJECTS))), units,
              st.sampled_from(range(len(KEYS))), st.integers(1, 3600)),
    st.tuples(st.just("commit"), st.integers(0, 7), st.none() | units),
    st.tuples(st.just("release"), st.integers(0, 7)),
    st.tuples(st.just("adjust"), st.integers(0, 7), st.integers(-150, 150).filter(bool)),
    st.tuples(st.just("revoke"), st.integers(0, 7)),
    st.tuples(st.just("advance"), st.integers(0, 4 * 24 * 3600), st.integers(0, 999_999)),
    st.tuples(st.just("sweep")),
), min_size=1, max_size=25)


class World:
    """One Licenzy, its clock, and the handles an operation may refer to by index."""

    def __init__(self, lz: Licenzy, clock: FrozenClock, prefix: str) -> None:
        self.lz, self.clock, self.prefix = lz, clock, prefix
        self.entitlements: list[str] = []
        self.holds: list[Reservation] = []

    def subject(self, index: int) -> str:
        return self.prefix + SUBJECTS[index]

    def apply(self, op: tuple[Any, ...]) -> Any:
        """Run one operation; return what the caller would observe (ids left out: they are
        random in each store)."""
        lz, kind = self.lz, op[0]
        try:
            if kind == "grant":
                _, s, product, n = op
                granted = lz.grant(self.subject(s), product, reason="property",
                                   units=None if product == "WEEK_PASS" else n)
                self.entitlements.append(granted.id)
                return _view(granted.to_dict())
            if kind == "consume":
                _, s, n, k = op
                return lz.consume_usage(self.subject(s), n, idempotency_key=KEYS[k]).to_dict()
            if kind == "reserve":
                _, s, n, k, ttl = op
                hold = lz.reserve_usage(self.subject(s), n, idempotency_key=KEYS[k],
                                        ttl=timedelta(seconds=ttl))
                self.holds.append(hold)
                return _view(hold.to_dict())
            if kind in ("commit", "release"):
                if not self.holds:
                    return "no hold"
                hold = self.holds[op[1] % len(self.holds)]
                if kind == "release":
                    hold.release()
                    return hold.status
                return (hold.commit(op[2]).to_dict(), hold.status)
            if kind in ("adjust", "revoke"):
                if not self.entitlements:
                    return "no entitlement"
                target = self.entitlements[op[1] % len(self.entitlements)]
                if kind == "adjust":
                    return _view(lz.adjust_usage(target, op[2], reason="property").to_dict())
                return _view(lz.revoke(target, reason="property").to_dict())
            if kind == "advance":
                self.clock.advance(timedelta(seconds=op[1], microseconds=op[2]))
                return None
            lz.release_expired_holds()
            # Not its count: the SQL database also holds earlier examples' holds, which a sweep
            # of the whole mode releases too.
            return [_status(lz, hold) for hold in self.holds]
        except LicenzyError as exc:
            return _view(exc.to_dict())

    def state(self) -> list[Any]:
        out = []
        for index in range(len(SUBJECTS)):
            subject = self.subject(index)
            out.append((
                [_view(e.to_dict()) for e in self.lz.entitlements(subject)],
                [_view(e.to_dict()) for e in self.lz.ledger(subject)],
                self.lz.check_access(subject).allowed,
            ))
        return out


def _status(lz: Licenzy, hold: Reservation) -> str | None:
    stored = lz.get_reservation(hold.id)
    return None if stored is None else stored.status


def _view(data: dict[str, Any]) -> dict[str, Any]:
    hidden = {"id", "entitlement_id", "reference"}
    return {k: v for k, v in data.items() if k not in hidden and "ent_" not in str(v)
            and "hold_" not in str(v)}


def _world(store: Any, prefix: str) -> World:
    clock = FrozenClock(START + timedelta(microseconds=123_457))
    return World(Licenzy(store=store, products=catalog(), clock=clock), clock, prefix)


def check_same_behaviour(sql_store: SQLAlchemyStore, ops: list[tuple[Any, ...]]) -> None:
    prefix = f"p{uuid.uuid4().hex[:12]}-"
    reference, candidate = _world(InMemoryStore(), prefix), _world(sql_store, prefix)
    for step, op in enumerate(ops):
        expected, got = reference.apply(op), candidate.apply(op)
        assert got == expected, (step, op)
        # Entitlements created at the same instant are ordered by their random ids, which
        # differ between the two stores: one microsecond apart, every order is decided.
        reference.clock.advance(microseconds=1)
        candidate.clock.advance(microseconds=1)
    assert candidate.state() == reference.state()


@settings(max_examples=100, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(ops=operations)
def test_sql_store_behaves_exactly_like_the_reference_store(
        sql_store: SQLAlchemyStore, ops: list[tuple[Any, ...]]) -> None:
    # One store for all examples (each example has its own subjects): building a database
    # per example would cost more than the example.
    check_same_behaviour(sql_store, ops)
