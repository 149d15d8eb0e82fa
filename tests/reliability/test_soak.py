"""The soak (scripts/soak.py), short: 3 processes for 20 s on SQLite and PostgreSQL, with
database cuts, must end with every invariant holding; and its invariant check must catch a
balance, a charge and an event that are wrong."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import sqlalchemy as sa

from licenzy_embed import Licenzy
from licenzy_embed.stores import _sql_schema as schema
from licenzy_embed.stores.sqlalchemy import SQLAlchemyStore
from licenzy_embed.testing import sign_payload

from ..sql.databases import SERVERS, SQLITE

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "soak.py"


def load_soak() -> ModuleType:
    spec = importlib.util.spec_from_file_location("licenzy_soak_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def soak_url(request: pytest.FixtureRequest) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{SQLITE.new_path()}"
        yield url
        SQLITE.remove(url)
    else:
        server = SERVERS["postgres"]
        url = server.new_namespace("soak")
        yield url
        server.drop_namespace(url)


@pytest.mark.slow
def test_a_short_soak_keeps_every_invariant(soak_url: str) -> None:
    run = subprocess.run(
        [sys.executable, str(SCRIPT), "--url", soak_url, "--processes", "3", "--seconds", "20",
         "--cut-every", "2", "--seed", "13"],
        capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode in (0, 1), run.stderr
    figures = json.loads(run.stdout)
    assert figures["failures"] == [], figures["failures"]
    assert run.returncode == 0
    # It did what it says: cuts, every event at least twice, spends and holds settled.
    assert figures["cuts"] >= 1
    assert figures["deliveries"] >= 2 * figures["events"] > 0
    assert figures["spends_ok"] > 0 and figures["holds"].get("committed", 0) > 0
    assert figures["spends_with_unknown_outcome"] == 0


def test_the_invariant_check_catches_what_is_wrong(tmp_path: Path) -> None:
    soak = load_soak()
    url = f"sqlite:///{tmp_path / 'checked.db'}"
    soak.migrate(url)
    subjects = ["soak_check_0"]
    events = soak.purchases(url, subjects, seed=1)
    lz = Licenzy(store=SQLAlchemyStore(url), products=soak.products(),
                 stripe_webhook_secret=soak.SECRET)
    try:
        for event in events:
            payload = json.dumps(event).encode()
            lz.handle_webhook(payload, sign_payload(payload, soak.SECRET))
        lz.consume_usage(subjects[0], 7, idempotency_key="spend-0-1")
    finally:
        lz.store.close()
    worker = {"spends": {"spend-0-1": (subjects[0], 7, "ok"),
                         "spend-0-2": (subjects[0], 3, "refused")},
              "holds": {}, "events": {}, "counts": {}}
    soak.HOLD_TTL_S = 0
    assert soak.check(url, subjects, events, [worker])["failures"] == []

    def failures_after(sql: str, outcomes: list[dict[str, Any]] | None = None) -> list[str]:
        engine = sa.create_engine(url)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(sql)
        finally:
            engine.dispose()
        return list(soak.check(url, subjects, events, outcomes or [worker])["failures"])

    # A balance the ledger does not explain.
    assert any("!= ledger" in f for f in failures_after(
        f"UPDATE {schema.entitlements.name} SET usage_remaining = usage_remaining + 1 "
        "WHERE product_code = 'CREDITS_1K' AND id = (SELECT min(id) FROM "
        f"{schema.entitlements.name} WHERE product_code = 'CREDITS_1K')"))
    # A spend the worker saw refused, charged after all.
    charged = {**worker, "spends": {**worker["spends"], "spend-0-1": (subjects[0], 7, "refused")}}
    assert any("refused but charged" in f for f in failures_after("SELECT 1", [charged]))
    # An event that was never recorded.
    assert any("recorded 0 times" in f for f in failures_after(
        f"DELETE FROM {schema.processed_events.name} WHERE event_id = '{events[0]['id']}'"))
