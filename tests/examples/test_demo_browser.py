"""The demo SaaS (the Flask example app) in Debian's Chromium: the first hour, clicked through.

The app runs as ``make demo`` runs it, in a subprocess on a free port with a fresh state folder;
the local checkout page's Pay button makes the simulator post signed events over HTTP to the
app's webhook route. Screenshots of each step go to ``test-artifacts/screenshots/<test>/``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .conftest import free_port

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def demo(start_app: Callable[..., str], tmp_path: Path) -> str:
    port = free_port()
    return start_app(["python", "example_apps/demo/app.py", "--port", str(port),
                      "--state", str(tmp_path / "state")], port=port, ready="/login")


def sign_in(page: Any, base: str, name: str) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=name]", name)
    page.click("#sign-in")
    page.wait_for_url(f"{base}/pricing")
    assert page.text_content("#user") == name


def buy(page: Any, base: str, code: str) -> None:
    page.goto(f"{base}/pricing")
    page.click(f"#buy-{code}")
    page.wait_for_url(f"{base}/stripe/checkout/**")
    assert page.text_content(".product") == code


def units(page: Any) -> int:
    return int(page.text_content("#units") or "-1")


def test_buy_pay_use_run_out_top_up(page: Any, demo: str,
                                    screenshot: Callable[[str], Path]) -> None:
    base = demo
    sign_in(page, base, "alice")
    screenshot("signed-in-pricing")

    refused = page.goto(f"{base}/app")
    assert refused.status == 402
    assert page.is_visible("#refused")
    screenshot("protected-page-refused")

    buy(page, base, "PRO_MONTHLY")
    assert "$10.00" in (page.text_content(".amount") or "")
    screenshot("local-checkout")
    page.click("#pay")
    page.wait_for_url(f"{base}/welcome?session_id=cs_test_*")
    screenshot("success-page")
    page.wait_for_selector("#active")
    assert "PRO_MONTHLY" in (page.text_content("#active") or "")
    screenshot("access-active")

    assert page.goto(f"{base}/app").status == 200
    assert units(page) == 100
    screenshot("protected-page")
    for left in (75, 50, 25, 0):
        page.click("#generate")
        page.wait_for_selector("#generated")
        assert units(page) == left
    screenshot("units-spent")
    with page.expect_response(f"{base}/generate") as answer:
        page.click("#generate")
    assert answer.value.status == 409
    assert page.is_visible("#refused")
    assert "insufficient_usage" in (page.text_content("#refused") or "")
    screenshot("generate-refused")

    buy(page, base, "CREDITS_100")
    page.click("#pay")
    page.wait_for_selector("#active")
    assert "CREDITS_100" in (page.text_content("#active") or "")
    page.goto(f"{base}/app")
    assert units(page) == 100
    page.click("#generate")
    page.wait_for_selector("#generated")
    assert units(page) == 75
    screenshot("after-credits-pack")

    page.goto(f"{base}/account")
    rows = page.text_content("#entitlements") or ""
    assert "PRO_MONTHLY" in rows and "CREDITS_100" in rows
    assert "committed" in (page.text_content("#ledger") or "")
    screenshot("account")

    # The demo clock: a paid renewal resets the subscription's units.
    page.click("button[value=renew]")
    page.wait_for_selector(".flash")
    assert "renewal" in (page.text_content(".flash") or "")
    page.goto(f"{base}/app")
    assert units(page) == 175
    screenshot("after-renewal")


def test_declined_payment_grants_nothing(page: Any, demo: str,
                                         screenshot: Callable[[str], Path]) -> None:
    base = demo
    sign_in(page, base, "bob")
    buy(page, base, "WEEK_PASS")
    checkout_url = page.url
    screenshot("local-checkout")
    page.click("#decline")
    page.wait_for_url(f"{base}/pricing?canceled=1")
    assert "nothing granted" in (page.text_content(".flash") or "")
    screenshot("declined")

    assert page.goto(f"{base}/app").status == 402
    screenshot("still-refused")
    page.goto(f"{base}/account")
    assert "none yet" in (page.text_content("#entitlements") or "")
    assert page.text_content("#access-status") == "none"
    screenshot("account-empty")

    # The session is over: its page offers no Pay button any more.
    page.goto(checkout_url)
    assert "This checkout session is expired" in (page.text_content("body") or "")
    assert page.locator("#pay").count() == 0
    screenshot("expired-session")
    assert page.goto(f"{base}/app").status == 402
