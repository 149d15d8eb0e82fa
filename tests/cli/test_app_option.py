"""``--app`` / ``LICENZY_APP``: finding the app's ``Licenzy`` as ``flask --app`` finds an app,
and one line (no traceback) for each way of getting it wrong."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from licenzy_embed import Licenzy

from . import apps
from .conftest import APP, Run, invoke


def test_the_app_can_come_from_the_environment(db_url: str, lz: Licenzy) -> None:
    lz.grant("user_1", "WEEK_PASS", reason="trial")
    shown = invoke("access", "user_1", "--json", app=None,
                   env={"LICENZY_APP": APP, apps.DATABASE_ENV: db_url})
    assert shown.exit_code == 0
    assert shown.json()["has_access"] is True


def test_an_instance_or_a_bare_module_name() -> None:
    apps.lz.grant("user_9", "WEEK_PASS", reason="trial")
    for app in ("tests.cli.apps:lz", "tests.cli.apps"):  # the module's `lz`
        shown = invoke("access", "user_9", "--json", app=app)
        assert shown.exit_code == 0, shown.stderr
        assert shown.json() == apps.lz.customer_access("user_9").to_dict()


def test_a_module_in_the_current_folder(tmp_path: Path, db_url: str, lz: Licenzy,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "shop_cli_test"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "billing.py").write_text(
        "from tests.cli.apps import make_lz\n\ndef create_licenzy():\n    return make_lz()\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    lz.grant("user_1", "WEEK_PASS", reason="trial")
    try:
        shown = invoke("access", "user_1", "--json", app="shop_cli_test.billing:create_licenzy",
                       env={apps.DATABASE_ENV: db_url})
    finally:
        for name in ("shop_cli_test", "shop_cli_test.billing"):
            sys.modules.pop(name, None)
    assert shown.exit_code == 0, shown.stderr
    assert shown.json()["has_access"] is True


@pytest.mark.parametrize("app, says", [
    (None, "no app given: pass --app module:attribute"),
    ("", "no app given"),
    ("tests.cli.nowhere:make_lz", "cannot import 'tests.cli.nowhere'"),
    ("no_such_package_xyz.billing:lz", "no module named 'no_such_package_xyz'"),
    ("tests.cli.apps:nothing", "module tests.cli.apps has no attribute 'nothing'"),
    ("tests._stripe_standin", "has no attribute lz or licenzy"),
    ("tests.cli.apps:", "is not module:attribute"),
    (":lz", "is not module:attribute"),
    ("tests.cli.apps:answer", "tests.cli.apps:answer is a int, not a Licenzy"),
    ("tests.cli.apps:not_a_licenzy", "not_a_licenzy() returned a int, not a Licenzy"),
])
def test_a_bad_app_is_a_usage_error(app: str | None, says: str) -> None:
    shown = invoke("entitlements", "user_1", app=app)
    assert shown.exit_code == 2
    assert says in shown.error_line()


@pytest.mark.parametrize("app, says", [
    ("tests.cli.apps:unconfigured",
     "building the app's Licenzy with tests.cli.apps:unconfigured() failed: KeyError: "
     "'LICENZY_CLI_TEST_UNSET'; fix the app's configuration, or add --traceback"),
    ("tests.cli.broken_app:lz",
     "importing tests.cli.broken_app failed: RuntimeError: BILLING_DATABASE_URL is not set"),
])
def test_an_app_that_fails_to_load_is_one_line(app: str, says: str) -> None:
    shown = invoke("entitlements", "user_1", app=app)
    assert shown.exit_code == 1
    assert says in shown.error_line()
    sys.modules.pop("tests.cli.broken_app", None)


def test_traceback_shows_where(run: Run) -> None:
    shown = invoke("--traceback", "entitlements", "user_1", app="tests.cli.apps:unconfigured")
    assert isinstance(shown.exception, KeyError)
    assert shown.exit_code == 1
    unknown = run("--traceback", "revoke", "ent_missing", "--reason", "x")
    assert type(unknown.exception).__name__ == "EntitlementNotFound"


def test_migrate_needs_no_app(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    shown = invoke("migrate", "--url", url, app="tests.cli.nowhere:lz")
    assert shown.exit_code == 0, shown.stderr


def test_help_lists_every_command_and_the_exit_codes() -> None:
    shown = invoke("--help", app=None)
    assert shown.exit_code == 0
    for command in ("migrate", "doctor", "access", "entitlements", "ledger", "grant",
                    "revoke", "adjust"):
        assert f"\n  {command} " in shown.stdout
    assert "Exit status: 0 ok; 1 a check or the command failed; 2 a usage error" in (
        shown.stdout)


def test_a_missing_command_argument_is_a_usage_error() -> None:
    shown = invoke("access")
    assert shown.exit_code == 2
    assert "Missing argument 'SUBJECT'" in shown.stderr
