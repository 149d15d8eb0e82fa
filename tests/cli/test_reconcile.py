"""``reconcile`` through the CLI runner, on SQLite and PostgreSQL, against the Stripe
stand-in serving what the simulator made: ``--dry-run`` changes nothing, the real run fixes
the three subjects, a second changes nothing; ``--since``; the progress bar on stderr."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from licenzy_embed import Licenzy
from licenzy_embed.testing import StripeSimulator

from .._stripe_standin import SimulatedStripe, serving
from ..reconcile.test_reconcile_simulator import BROKEN, HEALED, access, lose_three
from . import apps
from .conftest import Run


@pytest.fixture
def api(lz: Licenzy) -> Iterator[SimulatedStripe]:
    with serving(SimulatedStripe(StripeSimulator.for_licenzy(lz))) as standin:
        yield standin


def test_dry_run_then_reconcile_then_nothing_left(run: Run, lz: Licenzy,
                                                   api: SimulatedStripe) -> None:
    lose_three(lz)
    env: dict[str, str | None] = {apps.STRIPE_URL_ENV: api.url}

    dry = run("reconcile", "--dry-run", "--json", env=env)
    assert dry.exit_code == 0, dry.stderr
    body = dry.json()
    assert body["dry_run"] is True
    assert sorted(c["subject_ref"] for c in body["changes"]) == ["new_user", "pack_user",
                                                                 "sub_user"]
    assert access(lz) == BROKEN

    done = run("reconcile", "--json", env=env)
    assert done.exit_code == 0, done.stderr
    assert [c["subject_ref"] for c in done.json()["changes"]] == [
        c["subject_ref"] for c in body["changes"]]
    assert "reconciling" in done.stderr  # the progress bar, on stderr only
    assert access(lz) == HEALED

    again = run("reconcile", env=env)
    assert again.exit_code == 0 and "nothing changed" in again.stdout


def test_the_table_names_each_changed_subject(run: Run, lz: Licenzy,
                                              api: SimulatedStripe) -> None:
    lose_three(lz)
    shown = run("reconcile", "--dry-run", "--since", "7d", env={apps.STRIPE_URL_ENV: api.url})
    assert shown.exit_code == 0, shown.stderr
    assert "3 subjects would change" in shown.stdout
    rows = {line.split()[0]: " ".join(line.split()[1:]) for line in shown.stdout.splitlines()
            if line.split() and line.split()[0].endswith("_user")}
    assert rows == {"sub_user": "access (active) no access (canceled)",
                    "pack_user": "access (active) no access (refunded)",
                    "new_user": "no access (none) access (active)"}
    (listed, *_) = [r for r in api.requests if r.path == "/v1/events"]
    assert int(listed.form["created[gte]"]) == int(lz.now().timestamp()) - 7 * 24 * 3600


@pytest.mark.parametrize("since", ["0d", "soon", "2999-01-01"])
def test_a_bad_since_is_a_usage_error(run: Run, api: SimulatedStripe, since: str) -> None:
    shown = run("reconcile", "--since", since, env={apps.STRIPE_URL_ENV: api.url})
    assert shown.exit_code == 2, shown.stderr
    assert shown.stdout == ""


def test_an_unreachable_stripe_is_one_line(run: Run, lz: Licenzy,
                                           api: SimulatedStripe) -> None:
    lose_three(lz)
    api.fail_next = (500, {"error": {"type": "api_error", "message": "Stripe is down"}})
    shown = run("reconcile", "--json", env={apps.STRIPE_URL_ENV: api.url})
    assert shown.exit_code == 1
    assert "listing events" in shown.error_line()
    assert access(lz) == BROKEN
