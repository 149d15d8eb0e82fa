"""The core never imports its own test kit: a key-less ``Licenzy`` gets the Stripe simulator
only when the kit attaches it, and says clearly how when it was not attached."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from licenzy_embed import InMemoryStore, Licenzy
from licenzy_embed.testing import StripeSimulator

from .conftest import catalog


def run(code: str) -> subprocess.CompletedProcess[str]:
    # A fresh interpreter: no pytest plugin, nothing imported but what the code imports.
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=120, check=False)


def test_building_a_licenzy_does_not_import_the_testing_kit() -> None:
    done = run("""
        import sys
        import licenzy_embed
        from licenzy_embed import InMemoryStore, Licenzy, Product
        products = [Product("PRO", kind="subscription", price="price_pro")]
        Licenzy(store=InMemoryStore(), products=products, stripe_api_key="sk_test_x",
                stripe_webhook_secret="whsec_x")
        Licenzy(store=InMemoryStore(), products=products)  # key-less too
        assert "licenzy_embed.testing" not in sys.modules, sorted(
            m for m in sys.modules if m.startswith("licenzy_embed"))
        print("ok")
    """)
    assert (done.returncode, done.stdout.strip()) == (0, "ok"), done.stderr


def test_checkout_on_a_keyless_licenzy_without_the_simulator_says_how_to_attach_it() -> None:
    done = run("""
        from licenzy_embed import InMemoryStore, Licenzy, PaymentProviderError, Product
        lz = Licenzy(store=InMemoryStore(), products=[Product("PACK", kind="usage_pack",
                     price="price_pack", units=10)])
        try:
            lz.create_checkout_session("user_1", "PACK", idempotency_key="k")
        except PaymentProviderError as error:
            print(error.status, error.message)
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("502 ")
    assert "StripeSimulator.for_licenzy(lz)" in done.stdout
    assert "stripe_api_key" in done.stdout


def test_the_simulator_attaches_itself_outside_pytest() -> None:
    done = run("""
        from licenzy_embed import InMemoryStore, Licenzy, Product
        from licenzy_embed.testing import StripeSimulator
        lz = Licenzy(store=InMemoryStore(), products=[Product("PACK", kind="usage_pack",
                     price="price_pack", units=10)])
        sim = StripeSimulator.for_licenzy(lz)
        sim.complete_checkout(lz.create_checkout_session("user_1", "PACK",
                                                         idempotency_key="k"))
        print(lz.check_access("user_1").allowed)
    """)
    assert (done.returncode, done.stdout.strip()) == (0, "True"), done.stderr


def test_under_pytest_the_plugin_attaches_the_simulator_to_every_keyless_licenzy() -> None:
    lz = Licenzy(store=InMemoryStore(), products=catalog())
    assert isinstance(lz.gateway, StripeSimulator)
    assert StripeSimulator.for_licenzy(lz) is lz.gateway
    keyed = Licenzy(store=InMemoryStore(), products=catalog(), stripe_api_key="sk_test_x")
    assert not isinstance(keyed.gateway, StripeSimulator)
