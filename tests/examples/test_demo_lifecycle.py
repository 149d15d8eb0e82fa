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
