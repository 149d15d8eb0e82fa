"""A billing period's unit reset and requests still holding units from the period before.

The reset must leave room for units that are held, because those come back to the entitlement
when their hold settles: handing them out again would let one period be spent twice.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from licenzy_embed import Licenzy
from licenzy_embed.testing import FrozenClock, StripeSimulator


def _units(lz: Licenzy, subject: str) -> int:
    (entitlement,) = lz.entitlements(subject)
    assert entitlement.usage_remaining is not None
    return entitlement.usage_remaining


@pytest.mark.parametrize("settle", ["release", "commit_all", "commit_part", "expire"])
def test_a_hold_open_across_a_renewal_is_not_granted_twice(
    lz: Licenzy, clock: FrozenClock, settle: str
) -> None:
    stripe = StripeSimulator.for_licenzy(lz)
    subject = f"renewing-{settle}"
    stripe.complete_checkout(lz.create_checkout_session(subject, "PRO_MONTHLY",
                                                        idempotency_key=f"buy-{settle}"))
    lz.consume_usage(subject, 500, idempotency_key="spent-in-period-1")
    hold = lz.reserve_usage(subject, 200, idempotency_key="in-flight",
                            ttl=timedelta(days=40))
    assert _units(lz, subject) == 300

    clock.advance(days=30)
    stripe.renew(subject)
    # The new period grants 1000, of which 200 are still out with the in-flight request.
    assert _units(lz, subject) == 800

    if settle == "release":
        hold.release()
        assert _units(lz, subject) == 1000
    elif settle == "commit_all":
        hold.commit()
        assert _units(lz, subject) == 800
    elif settle == "commit_part":
        hold.commit(50)
        assert _units(lz, subject) == 950
    else:
        clock.advance(days=11)
        assert _units(lz, subject) == 1000
    assert sum(e.units_delta or 0 for e in lz.ledger(subject)) == _units(lz, subject)
