"""An app's own tests, written the way the README tells users to, with the fixtures of the
pytest plugin that the ``pytest11`` entry point installs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

from licenzy_embed import Licenzy
from licenzy_embed.testing import FrozenClock, StripeSimulator

APP_TEST = '''
from datetime import timedelta

import pytest

from licenzy_embed import Product


@pytest.fixture
def licenzy_products():
    return [Product("PRO_MONTHLY", kind="subscription", price="price_pro", units=500)]


def test_pro_monthly_lifecycle(licenzy, stripe_simulator, licenzy_clock):
    session = licenzy.create_checkout_session("user_1", "PRO_MONTHLY", idempotency_key="buy-1")
    assert not licenzy.check_access("user_1")  # checkout alone grants nothing

    stripe_simulator.complete_checkout(session)
    assert licenzy.check_access("user_1")
    assert licenzy.consume_usage("user_1", 200, idempotency_key="r1").usage_remaining == 300

    licenzy_clock.advance(days=30)
    stripe_simulator.renew("user_1")
    assert licenzy.entitlements("user_1")[0].usage_remaining == 500

    licenzy_clock.advance(days=30)
    stripe_simulator.fail_payment("user_1")
    assert licenzy.customer_access("user_1").entitlements[0].availability_reason == (
        "past_due_grace")
    licenzy_clock.advance(days=2)
    assert licenzy.check_access("user_1")

    stripe_simulator.cancel("user_1")
    assert not licenzy.check_access("user_1")
    assert licenzy.customer_access("user_1").status == "canceled"


def test_a_wrong_expectation_fails(licenzy, stripe_simulator):
    session = licenzy.create_checkout_session("user_2", "PRO_MONTHLY", idempotency_key="b")
    stripe_simulator.complete_checkout(session)
    assert not licenzy.check_access("user_2")
'''


def test_buy_renew_fail_grace_cancel(licenzy: Licenzy, stripe_simulator: StripeSimulator,
                                     licenzy_clock: FrozenClock) -> None:
    """The plugin's fixtures, used in-process by this very suite."""
    session = licenzy.create_checkout_session("user_1", "PRO_MONTHLY", idempotency_key="buy")
    assert not licenzy.check_access("user_1")
    stripe_simulator.complete_checkout(session)
    assert licenzy.check_access("user_1")

    licenzy_clock.advance(timedelta(days=30))
    stripe_simulator.renew("user_1")
    assert licenzy.check_access("user_1")

    licenzy_clock.advance(timedelta(days=30))
    stripe_simulator.fail_payment("user_1")
    [ent] = licenzy.entitlements("user_1")
    assert (ent.status, ent.availability_reason) == ("past_due", "past_due_grace")
    licenzy_clock.advance(timedelta(days=2))
    assert licenzy.check_access("user_1")  # still within the 3-day grace

    stripe_simulator.cancel("user_1")
    assert not licenzy.check_access("user_1")


def test_grace_runs_out_without_cancel(licenzy: Licenzy, stripe_simulator: StripeSimulator,
                                       licenzy_clock: FrozenClock) -> None:
    stripe_simulator.complete_checkout(
        licenzy.create_checkout_session("user_1", "PRO_MONTHLY", idempotency_key="buy"))
    stripe_simulator.fail_payment("user_1")
    licenzy_clock.advance(timedelta(days=3))
    assert not licenzy.check_access("user_1")
    assert licenzy.entitlements("user_1")[0].availability_reason == "subscription_past_due"


def test_the_entry_point_gives_an_app_the_fixtures(tmp_path: Path) -> None:
    """A separate pytest run in an empty directory — no conftest, no plugin option — finds
    the fixtures through the installed entry point; the app overrides the catalog; and a
    wrong expectation fails, so the fixtures are not vacuous."""
    (tmp_path / "test_app.py").write_text(textwrap.dedent(APP_TEST))
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-W", "error", "-p", "no:cacheprovider",
         "test_app.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )
    assert "1 failed, 1 passed" in run.stdout, run.stdout + run.stderr
    assert "test_a_wrong_expectation_fails" in run.stdout
