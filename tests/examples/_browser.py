"""The browser steps every example app's test runs, written once (the apps share their pages,
example_apps/_pages.py, so one script drives them all).

A test starts its app with the command the README documents (:data:`COMMANDS`), on a free port
and with fresh state, and hands the page to :func:`buy_and_use`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .conftest import free_port

#: The one command that runs each example app, from the repository root after
#: ``make .venv/.installed`` — as the README's "Example apps" list gives it (tests/test_readme.py
#: checks that the list and this table agree).
COMMANDS = {
    "django": ".venv/bin/python example_apps/manage.py runexample",
    "starlette": ".venv/bin/python example_apps/starlette_app.py",
    "fastapi": ".venv/bin/python example_apps/fastapi_app.py",
}

PRO_UNITS = 50  # PRO_MONTHLY's monthly units in example_apps/billing.py
PACK_UNITS = 100  # CREDITS_100's
GENERATE_UNITS = 10  # what one Generate click costs (example_apps/_pages.py)


def start_example(name: str, start_app: Callable[..., str], tmp_path: Path) -> str:
    """Run example ``name`` with its documented command (``.venv/bin/python`` becomes this
    interpreter) on a free port, with its databases in ``tmp_path``; returns its base URL."""
    port = free_port()
    argv = ["python" if word == ".venv/bin/python" else word for word in COMMANDS[name].split()]
    env = {
        "PORT": str(port),
        "APP_BASE_URL": f"http://127.0.0.1:{port}",
        "LICENZY_DATABASE_URL": f"sqlite:///{tmp_path / 'licenzy.db'}",
        "DJANGO_DATABASE": str(tmp_path / "django.db"),
        "DJANGO_SETTINGS_MODULE": "django_project.settings",
        "SESSION_SECRET": "browser-test",
    }
    return start_app(argv, port=port, env=env, ready="/")


def _access(page: Any, base: str) -> dict[str, Any]:
    """The library's access route, fetched with the browser's cookies (the signed-in user)."""
    response = page.request.get(f"{base}/billing/access")
    assert response.ok, response.text()
    body: dict[str, Any] = json.loads(response.text())
    return body


def _buy(page: Any, base: str, product: str, shot: Callable[[str], Path]) -> None:
    """From the pricing page to the checkout page of ``product``."""
    page.goto(f"{base}/pricing")
    page.get_by_test_id(f"buy-{product}").click()
    page.wait_for_url("**/checkout/cs_test_*")
    assert product in page.locator(".product").inner_text()
    shot(f"checkout-{product}")


def _pay(page: Any, base: str, product: str, shot: Callable[[str], Path]) -> None:
    """Pay on the local checkout page; the success page waits for the webhook."""
    page.locator("#pay").click()
    page.wait_for_url(f"{base}/billing/success")
    shot(f"success-{product}")
    page.locator("#status[data-state=active]").wait_for()
    assert page.locator("#status").inner_text() == f"{product} is active."
    shot(f"active-{product}")


def _generate(page: Any, base: str) -> tuple[int, Any]:
    """Click Generate; returns the answer's status and the page."""
    with page.expect_response(lambda r: r.request.method == "POST"
                              and r.url == f"{base}/generate") as answer:
        page.get_by_test_id("generate").click()
    page.wait_for_load_state()
    return answer.value.status, page


def _units_left(page: Any) -> int:
    return int(page.get_by_test_id("units-left").inner_text())


def buy_and_use(page: Any, base: str, shot: Callable[[str], Path]) -> None:
    """Sign in; be refused the report; a declined payment grants nothing, and neither does
    opening the success page; buy PRO_MONTHLY and pay; the success page waits until access is
    active; open the report; generate until the
    units run out and see the refusal; buy a credits pack and go on generating."""
    page.goto(f"{base}/")
    shot("home")
    page.get_by_test_id("sign-in-alice").click()
    page.wait_for_url(f"{base}/pricing")
    assert page.get_by_test_id("user").inner_text() == "alice"
    shot("signed-in")

    refused = page.goto(f"{base}/report")
    assert refused.status == 402
    assert page.get_by_test_id("refusal").get_attribute("data-code") == "access_denied"
    shot("report-refused")

    _buy(page, base, "PRO_MONTHLY", shot)
    page.locator("#decline").click()
    page.wait_for_url(f"{base}/billing/cancel")
    shot("declined")
    access = _access(page, base)
    assert (access["has_access"], access["entitlements"]) == (False, [])
    assert page.goto(f"{base}/report").status == 402

    # The success page grants nothing by itself: opened without a payment it keeps polling.
    with page.expect_response(f"{base}/billing/access"):
        page.goto(f"{base}/billing/success")
    with page.expect_response(f"{base}/billing/access"):  # the next poll answered too
        pass
    assert page.locator("#status").get_attribute("data-state") == "activating"
    shot("success-page-without-a-payment")
    assert _access(page, base)["has_access"] is False

    _buy(page, base, "PRO_MONTHLY", shot)
    _pay(page, base, "PRO_MONTHLY", shot)
    page.locator("#next a").click()
    page.wait_for_url(f"{base}/report")
    assert "The monthly report for alice" in page.get_by_test_id("report").inner_text()
    assert _units_left(page) == PRO_UNITS
    shot("report")

    for left in range(PRO_UNITS - GENERATE_UNITS, -1, -GENERATE_UNITS):
        status, _ = _generate(page, base)
        assert status == 200
        assert _units_left(page) == left
    shot("generated-all-units")
    status, _ = _generate(page, base)
    assert status == 409
    refusal = page.get_by_test_id("refusal")
    assert refusal.get_attribute("data-code") == "insufficient_usage"
    assert f"needs {GENERATE_UNITS} units and 0 are left" in refusal.inner_text()
    shot("out-of-units")
    assert page.goto(f"{base}/report").status == 200  # the subscription itself goes on

    _buy(page, base, "CREDITS_100", shot)
    _pay(page, base, "CREDITS_100", shot)
    page.goto(f"{base}/report")
    assert _units_left(page) == PACK_UNITS
    status, _ = _generate(page, base)
    assert status == 200
    assert _units_left(page) == PACK_UNITS - GENERATE_UNITS
    shot("generated-from-the-pack")

    codes = sorted(e["product_code"] for e in _access(page, base)["entitlements"])
    assert codes == ["CREDITS_100", "PRO_MONTHLY"]
