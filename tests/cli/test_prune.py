"""``prune`` through the CLI runner, on SQLite and PostgreSQL: ``--dry-run`` counts and
deletes nothing, the real run deletes what is past its window and keeps the rest, ``--json``
prints the report's ``to_dict()``."""

from __future__ import annotations

from licenzy_embed import Licenzy

from . import apps
from .conftest import Run

TWO_DAYS = str(2 * 24 * 3600)


def test_dry_run_then_prune_then_nothing_left(run: Run, lz: Licenzy) -> None:
    lz.grant("user_1", "CREDITS_100", reason="support")
    lz.consume_usage("user_1", 5, idempotency_key="old")
    lz.reserve_usage("user_1", 3, idempotency_key="hold").commit()
    later = {apps.LATER_ENV: TWO_DAYS}
    ledger = lz.ledger("user_1")

    dry = run("prune", "--dry-run", "--json", env=later)
    assert dry.exit_code == 0, dry.stderr
    body = dry.json()
    assert body["dry_run"] is True
    assert body["counts"] == {"holds": 1, "usage_records": 1, "processed_events": 0,
                              "outbox": 0}
    with lz.store.transaction(lz.mode) as tx:
        assert tx.get_usage_record("user_1", "old") is not None

    done = run("prune", env=later)
    assert done.exit_code == 0, done.stderr
    assert done.stdout.startswith("deleted 2 rows in test mode: 1 holds, 1 usage records")
    with lz.store.transaction(lz.mode) as tx:
        assert tx.get_usage_record("user_1", "old") is None
    assert lz.ledger("user_1") == ledger  # the audit trail stays
    assert lz.entitlements("user_1")[0].usage_remaining == 92

    again = run("prune", "--json", env=later)
    assert again.exit_code == 0 and again.json()["total"] == 0


def test_nothing_young_is_pruned(run: Run, lz: Licenzy) -> None:
    lz.grant("user_1", "CREDITS_100", reason="support")
    lz.consume_usage("user_1", 5, idempotency_key="young")
    shown = run("prune", "--dry-run")
    assert shown.exit_code == 0, shown.stderr
    assert shown.stdout.startswith("would delete 0 rows")
