"""Looking a customer up: ``access``, ``entitlements`` and ``ledger`` print what the Python API
answers (``--json``: the same ``to_dict()``), and an unknown subject is a failure."""

from __future__ import annotations

import pytest

from licenzy_embed import Licenzy

from .conftest import Run, invoke


def test_access_prints_customer_access(run: Run, lz: Licenzy) -> None:
    pack = lz.grant("user_1", "CREDITS_100", reason="welcome pack")
    lz.consume_usage("user_1", 30, idempotency_key="req-1")

    shown = run("access", "user_1", "--json")
    assert (shown.exit_code, shown.stderr) == (0, "")
    assert shown.json() == lz.customer_access("user_1").to_dict()
    assert shown.json()["has_access"] is True
    assert shown.json()["entitlements"][0]["usage_remaining"] == 70

    table = run("access", "user_1")
    assert table.exit_code == 0
    first, header, row = table.stdout.splitlines()
    assert first == "user_1 has access (status active, test mode)"
    assert header.split() == ["ID", "PRODUCT", "KIND", "STATUS", "AVAILABLE", "REASON",
                              "UNITS", "EXPIRES", "SOURCE"]
    assert row.split() == [pack.id, "CREDITS_100", "usage_pack", "active", "yes",
                           "usage_available", "70", "-", "admin"]


def test_a_known_subject_without_access_is_an_answer_not_a_failure(run: Run,
                                                                   lz: Licenzy) -> None:
    granted = lz.grant("user_1", "WEEK_PASS", reason="trial")
    lz.revoke(granted.id, reason="abuse")

    shown = run("access", "user_1", "--json")
    assert shown.exit_code == 0
    assert shown.json() == {**lz.customer_access("user_1").to_dict(), "has_access": False}
    assert shown.json()["status"] == "revoked"
    assert run("access", "user_1").stdout.startswith(
        "user_1 has NO access (status revoked, test mode)\n")


def test_entitlements_and_ledger_are_json_lists(run: Run, lz: Licenzy) -> None:
    lz.grant("user_1", "PRO_MONTHLY", reason="comp for the outage")
    pack = lz.grant("user_1", "CREDITS_1K", reason="goodwill 🎁")
    lz.adjust_usage(pack.id, -100, reason="double grant")

    entitlements = run("entitlements", "user_1", "--json")
    assert entitlements.exit_code == 0
    assert entitlements.json() == [e.to_dict() for e in lz.entitlements("user_1")]
    assert sorted(e["product_code"] for e in entitlements.json()) == ["CREDITS_1K",
                                                                      "PRO_MONTHLY"]

    ledger = run("ledger", "user_1", "--json")
    assert ledger.exit_code == 0
    assert ledger.json() == [e.to_dict() for e in lz.ledger("user_1")]
    assert [(e["action"], e["units_delta"], e["reason"]) for e in ledger.json()] == [
        ("granted", 1000, "comp for the outage"), ("granted", 1000, "goodwill 🎁"),
        ("adjusted", -100, "double grant")]

    table = run("ledger", "user_1").stdout.splitlines()
    assert table[0].split() == ["AT", "ACTION", "SOURCE", "UNITS", "METER", "STATUS",
                                "ENTITLEMENT", "REFERENCE", "REASON"]
    assert table[3].split()[1:7] == ["adjusted", "admin", "-100", "units", "active", pack.id]
    assert table[3].endswith("double grant")
    assert len(run("entitlements", "user_1").stdout.splitlines()) == 3


@pytest.mark.parametrize("command", ["access", "entitlements", "ledger"])
@pytest.mark.parametrize("as_json", [False, True])
def test_a_subject_the_store_never_saw_fails(run: Run, lz: Licenzy, command: str,
                                             as_json: bool) -> None:
    lz.grant("user_1", "WEEK_PASS", reason="trial")
    shown = run(command, "user_2", *(["--json"] if as_json else []))
    assert shown.exit_code == 1
    line = shown.error_line()
    assert "no subject 'user_2' in test mode" in line
    assert "check the subject_ref" in line


@pytest.mark.parametrize("subject", ["", "user\x01", "x" * 256])
def test_a_malformed_subject_is_a_usage_error(run: Run, subject: str) -> None:
    shown = run("access", subject)
    assert shown.exit_code == 2
    assert "Invalid value for 'SUBJECT'" in shown.stderr


def test_an_unreachable_store_is_one_line(lz: Licenzy) -> None:
    from .apps import DATABASE_ENV

    shown = invoke("access", "user_1", env={
        DATABASE_ENV: "postgresql+psycopg://postgres@127.0.0.1:1/licenzy_test"})
    assert shown.exit_code == 1
    line = shown.error_line()
    assert "(entitlements_unavailable)" in line and "doctor" in line


def test_tables_never_migrated_say_to_migrate(empty_url: str) -> None:
    from .apps import DATABASE_ENV

    shown = invoke("entitlements", "user_1", env={DATABASE_ENV: empty_url})
    assert shown.exit_code == 1
    assert "licenzy-embed migrate" in shown.error_line()
