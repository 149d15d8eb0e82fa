"""SPEC §3 input rules on every public call: bad input raises InvalidRequest and changes nothing.

Each test sets up a subject with a pack, a hold and some history, makes the bad call, and then
compares the subject's entitlements and ledger with what they were before.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest

from licenzy_embed import InvalidRequest, Licenzy
from licenzy_embed.usage import Reservation

from ._support import snapshot

BAD_SUBJECTS: list[Any] = [
    "", "x" * 256, "user\n1", "user\x00", "\t", "tab\there", "del\x7f", "nbsp-ctl\x85", None, 42,
    b"user_1",
]
BAD_UNITS: list[Any] = [0, -1, True, False, 1.5, 5.0, 10**13, 10**12 + 1, "5", None]
BAD_CODES: list[Any] = ["pro", "A-B", "A" * 65, "", "PRO MONTHLY", "CRÉDITS", None, 7]
BAD_KEYS: list[Any] = [None, "", 7, "k" * 256, "key\n"]


@pytest.fixture
def setup(lz: Licenzy, subject: str) -> tuple[Licenzy, str, str, Reservation]:
    pack = lz.grant(subject, "CREDITS_100", reason="setup")
    lz.consume_usage(subject, 10, idempotency_key="spent")
    hold = lz.reserve_usage(subject, 20, idempotency_key="held")
    return lz, subject, pack.id, hold


def refused(lz: Licenzy, subject: str, call: Callable[[], object]) -> None:
    before = snapshot(lz, subject)
    with pytest.raises(InvalidRequest) as err:
        call()
    assert (err.value.code, err.value.status) == ("invalid_request", 400)
    assert err.value.to_dict()["error"] == "invalid_request"
    assert snapshot(lz, subject) == before


@pytest.mark.parametrize("bad", BAD_SUBJECTS, ids=repr)
def test_bad_subject_ref_everywhere(setup: tuple[Licenzy, str, str, Reservation],
                                   bad: Any) -> None:
    lz, subject, _, _ = setup
    for call in (
        lambda: lz.check_access(bad),
        lambda: lz.customer_access(bad),
        lambda: lz.entitlements(bad),
        lambda: lz.ledger(bad),
        lambda: lz.consume_usage(bad, 1, idempotency_key="k"),
        lambda: lz.reserve_usage(bad, 1, idempotency_key="k"),
        lambda: lz.grant(bad, "CREDITS_100", reason="x"),
    ):
        refused(lz, subject, call)


def test_subject_ref_limits_are_inclusive(lz: Licenzy) -> None:
    for ok in ("x", "x" * 255, "équipe/42 · ünïcode", "user with spaces"):
        ent = lz.grant(ok, "WEEK_PASS", reason="edge")
        assert ent.subject_ref == ok
        assert lz.check_access(ok)
        lz.revoke(ent.id, reason="cleanup")  # SQL stores may share a database between tests


@pytest.mark.parametrize("bad", BAD_UNITS, ids=repr)
def test_bad_units_everywhere(setup: tuple[Licenzy, str, str, Reservation], bad: Any) -> None:
    lz, subject, _, hold = setup
    calls: list[Callable[[], object]] = [
        lambda: lz.consume_usage(subject, bad, idempotency_key="new"),
        lambda: lz.consume_usage(subject, bad, idempotency_key="spent"),  # a used key too
        lambda: lz.reserve_usage(subject, bad, idempotency_key="new"),
    ]
    if bad is not None:  # None means "the product's units" / "all held units" there
        calls += [lambda: lz.grant(subject, "CREDITS_100", reason="x", units=bad),
                  lambda: hold.commit(bad)]
    for call in calls:
        refused(lz, subject, call)


def test_largest_units_are_accepted(lz: Licenzy, subject: str) -> None:
    lz.grant(subject, "CREDITS_100", reason="whale", units=10**12)
    assert lz.consume_usage(subject, 10**12, idempotency_key="all").usage_remaining == 0


@pytest.mark.parametrize("bad", BAD_CODES, ids=repr)
def test_bad_product_code(setup: tuple[Licenzy, str, str, Reservation], bad: Any) -> None:
    lz, subject, _, _ = setup
    refused(lz, subject, lambda: lz.grant(subject, bad, reason="x"))


@pytest.mark.parametrize("bad", BAD_KEYS, ids=repr)
def test_bad_idempotency_key(setup: tuple[Licenzy, str, str, Reservation], bad: Any) -> None:
    lz, subject, _, _ = setup
    refused(lz, subject, lambda: lz.consume_usage(subject, 1, idempotency_key=bad))
    refused(lz, subject, lambda: lz.reserve_usage(subject, 1, idempotency_key=bad))


def test_missing_idempotency_key(setup: tuple[Licenzy, str, str, Reservation]) -> None:
    lz, subject, _, _ = setup
    before = snapshot(lz, subject)
    with pytest.raises(TypeError):
        lz.consume_usage(subject, 1)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        lz.reserve_usage(subject, 1)  # type: ignore[call-arg]
    assert snapshot(lz, subject) == before


def test_bad_admin_arguments(setup: tuple[Licenzy, str, str, Reservation]) -> None:
    lz, subject, pack_id, _ = setup
    for call in (
        lambda: lz.revoke("", reason="x"),
        lambda: lz.revoke(pack_id, reason=""),
        lambda: lz.adjust_usage(pack_id, 0, reason="x"),
        lambda: lz.adjust_usage(pack_id, True, reason="x"),
        lambda: lz.adjust_usage(pack_id, 1.5, reason="x"),  # type: ignore[arg-type]
        lambda: lz.adjust_usage(pack_id, 10**13, reason="x"),
        lambda: lz.adjust_usage(pack_id, "5", reason="x"),  # type: ignore[arg-type]
        lambda: lz.adjust_usage(pack_id, 5, reason=None),  # type: ignore[arg-type]
        lambda: lz.grant(subject, "CREDITS_100", reason="x", expires_at="tomorrow"),  # type: ignore[arg-type]
        lambda: lz.reserve_usage(subject, 1, idempotency_key="k", ttl=timedelta(0)),
    ):
        refused(lz, subject, call)
