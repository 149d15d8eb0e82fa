"""The demo SaaS with Flask's test client: state survives a restart, and the demo clock's
buttons walk a subscription through renewal, a failed payment with its grace, and expiry."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BASE = "http://demo.test"


def load_demo() -> ModuleType:
    spec = importlib.util.spec_from_file_location("licenzy_demo_app",
                                                  ROOT / "example_apps" / "demo" / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def no_stripe_account(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("STRIPE_API_KEY", "STRIPE_WEBHOOK_SECRET"):
        monkeypatch.delenv(name, raising=False)


class Demo:
    """One run of the demo app on ``state``; webhooks go through its own test client."""

    def __init__(self, state: Path) -> None:
        self.app, self.lz, self.simulator = load_demo().create_app(state, BASE)
        self.client = self.app.test_client()
        self.simulator.deliver_with(lambda payload, header: self.client.post(
            "/billing/webhooks/stripe", data=payload,
            headers={"Stripe-Signature": header, "Content-Type": "application/json"}))

    def buy_and_pay(self, code: str) -> Any:
        answer = self.client.post("/billing/checkout", json={"product_code": code})
        assert answer.status_code == 200, answer.get_json()
        url = answer.get_json()["checkout_url"]
        assert url.startswith(f"{BASE}/stripe/checkout/cs_test_")
        path = url.removeprefix(BASE)
        assert code in self.client.get(path).get_data(as_text=True)
        return self.client.post(f"{path}/pay")

    def step(self, name: str) -> str:
        answer = self.client.post("/demo/lifecycle", data={"step": name},
                                  follow_redirects=True)
        assert answer.status_code == 200
        return answer.get_data(as_text=True)

    def access(self) -> int:
        return int(self.client.get("/app").status_code)

    def close(self) -> None:
        self.lz.store.close()


def test_state_survives_a_restart_and_the_clock_walks_the_lifecycle(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = Demo(state)
    assert first.client.post("/login", data={"name": "alice"}).status_code == 302
    assert first.access() == 402
    paid = first.buy_and_pay("PRO_MONTHLY")
    assert paid.status_code == 303 and paid.location.startswith(f"{BASE}/welcome?session_id=")
    assert first.access() == 200
    cookie = first.client.get_cookie("session")
    assert cookie is not None
    first.close()
    assert sorted(p.name for p in state.iterdir()) == ["licenzy.db", "secret_key",
                                                       "simulator.json"]

    again = Demo(state)  # a restart: same folder, new app, new simulator
    again.client.set_cookie("session", cookie.value)  # the signed-in cookie still works
    assert again.access() == 200
    assert "renewal invoice was paid" in again.step("renew")  # a subscription sold earlier
    assert (state / "clock.json").exists()
    assert "payment failed" in again.step("fail")
    assert "past_due" in again.client.get("/account").get_data(as_text=True)
    assert again.access() == 200  # within the grace period
    again.step("days4")
    assert again.access() == 402  # grace is over
    again.step("retry")
    assert again.access() == 200
    again.step("cancel")
    assert again.access() == 402
    assert "Nothing to do" in again.step("renew")  # no live subscription left
    again.close()

    third = Demo(state)
    third.client.set_cookie("session", cookie.value)
    assert "+64.0 days" in third.client.get("/account").get_data(as_text=True)
    assert third.access() == 402
    third.close()


def test_a_week_pass_expires_on_the_demo_clock(tmp_path: Path) -> None:
    demo = Demo(tmp_path / "state")
    demo.client.post("/login", data={"name": "bob"})
    demo.buy_and_pay("WEEK_PASS")
    assert demo.access() == 200
    demo.step("days4")
    assert demo.access() == 200
    demo.step("days4")
    assert demo.access() == 402
    assert "expired" in demo.client.get("/account").get_data(as_text=True)
    demo.close()


def test_bad_input_is_refused(tmp_path: Path) -> None:
    demo = Demo(tmp_path / "state")
    assert demo.client.post("/login", data={"name": "../etc"}).status_code == 400
    assert demo.client.get("/app").status_code == 302  # not signed in: to the sign-in page
    demo.client.post("/login", data={"name": "carol"})
    assert demo.client.post("/demo/lifecycle", data={"step": "rm"}).status_code == 400
    assert demo.client.post("/billing/checkout", json={"product_code": "NOPE"}).status_code \
        == 404
    assert demo.client.post("/stripe/checkout/cs_test_nope/pay").status_code == 404
    redirect = demo.client.post("/login?next=//evil.example", data={"name": "carol"})
    assert redirect.location == "/pricing"
    demo.close()


STRIPE_ENV = {"STRIPE_API_KEY": "sk_test_demo", "STRIPE_WEBHOOK_SECRET": "whsec_demo_stripe",
              "PRICE_PRO_MONTHLY": "price_1ProMonthly", "PRICE_CREDITS_100": "price_1Credits",
              "PRICE_WEEK_PASS": "price_1WeekPass"}


def test_with_stripe_settings_it_runs_against_stripe_without_the_simulator(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from licenzy_embed.testing import sign_payload

    for name, value in STRIPE_ENV.items():
        monkeypatch.setenv(name, value)
    app, lz, simulator = load_demo().create_app(tmp_path / "state", BASE)
    try:
        assert simulator is None and lz.mode == "test"
        assert lz.catalog.get("PRO_MONTHLY").price == "price_1ProMonthly"
        client = app.test_client()
        assert client.get("/stripe/checkout/cs_test_x").status_code == 404  # no local page
        client.post("/login", data={"name": "erin"})
        assert "Demo clock" not in client.get("/account").get_data(as_text=True)
        body = (b'{"id":"evt_1","object":"event","type":"customer.created","livemode":false,'
                b'"created":1,"data":{"object":{"id":"cus_1","object":"customer"}}}')
        for secret, status in (("whsec_demo_stripe", 200), ("whsec_other", 400)):
            answer = client.post("/billing/webhooks/stripe", data=body, headers={
                "Stripe-Signature": sign_payload(body, secret)})
            assert answer.status_code == status  # verified with STRIPE_WEBHOOK_SECRET
    finally:
        lz.store.close()


@pytest.mark.parametrize(("change", "message"), [
    ({"PRICE_WEEK_PASS": ""}, "PRICE_WEEK_PASS must name"),
    ({"STRIPE_WEBHOOK_SECRET": ""}, "STRIPE_WEBHOOK_SECRET must be"),
    ({"STRIPE_API_KEY": "sk_live_demo"}, "test mode only"),
])
def test_incomplete_stripe_settings_stop_it_with_a_message(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: dict[str, str],
        message: str) -> None:
    for name, value in {**STRIPE_ENV, **change}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit, match=message):
        load_demo().create_app(tmp_path / "state", BASE)
