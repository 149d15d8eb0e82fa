"""``events list|show|replay|deliver`` through the CLI runner, on SQLite and PostgreSQL:
``--json`` parsed back, exit codes, unknown ids, and an app without callbacks."""

from __future__ import annotations

from pathlib import Path

from licenzy_embed import Licenzy
from licenzy_embed.outbox import DELIVERY_LEASE

from . import apps
from .conftest import Run


def callbacks(path: Path, *, fail: bool = False, later: bool = True) -> dict[str, str | None]:
    """The app with a callback; ``later``: its clock past the writer's delivery lease."""
    return {apps.CALLBACK_FILE_ENV: str(path), apps.CALLBACK_FAILS_ENV: "1" if fail else None,
            apps.LATER_ENV: str(int(DELIVERY_LEASE.total_seconds())) if later else None}


def received(path: Path) -> list[str]:
    return path.read_text().split() if path.exists() else []


def left_pending(lz: Licenzy) -> str:
    """A change committed by an instance with no callbacks: its event waits, pending."""
    lz.grant("user_1", "CREDITS_1K", reason="comp")
    (pending,) = lz.change_events(pending=True)
    return pending.id


def test_list_and_show(run: Run, lz: Licenzy) -> None:
    event_id = left_pending(lz)
    listed = run("events", "list", "--json")
    assert listed.exit_code == 0, listed.stderr
    (row,) = listed.json()
    assert (row["id"], row["type"], row["status"]) == (event_id, "entitlement.updated",
                                                       "pending")
    assert run("events", "list", "--pending", "--json").json() == [row]
    table = run("events", "list")
    assert table.exit_code == 0 and event_id in table.stdout and "ATTEMPTS" in table.stdout

    shown = run("events", "show", event_id, "--json")
    assert shown.exit_code == 0 and shown.json() == row
    assert row["data"]["entitlement"]["subject_ref"] == "user_1"
    assert event_id in run("events", "show", event_id).stdout

    missing = run("events", "show", "lzev_nope", "--json")
    assert missing.exit_code == 1
    assert "no change event 'lzev_nope'" in missing.error_line()


def test_deliver_runs_the_apps_callbacks_once(run: Run, lz: Licenzy, tmp_path: Path) -> None:
    event_id = left_pending(lz)
    inbox = tmp_path / "inbox"
    # At the writer's time the event is still leased to the process that wrote it.
    first = run("events", "deliver", "--json", env=callbacks(inbox, later=False))
    assert (first.exit_code, first.json()) == (0, {"delivered": 0, "failed": 0})
    assert received(inbox) == []

    done = run("events", "deliver", "--json", env=callbacks(inbox))
    assert (done.exit_code, done.json()) == (0, {"delivered": 1, "failed": 0}), done.stderr
    assert received(inbox) == [event_id]
    assert run("events", "list", "--pending", "--json").json() == []
    again = run("events", "deliver", env=callbacks(inbox))
    assert again.exit_code == 0 and "0 delivered" in again.stdout
    assert received(inbox) == [event_id]


def test_a_failing_callback_exits_1_and_the_event_stays_pending(
        run: Run, lz: Licenzy, tmp_path: Path) -> None:
    left_pending(lz)
    failed = run("events", "deliver", "--json", env=callbacks(tmp_path / "x", fail=True))
    assert (failed.exit_code, failed.json()) == (1, {"delivered": 0, "failed": 1})
    (row,) = run("events", "list", "--pending", "--json").json()
    assert row["attempts"] == 1 and "the receiver is down" in row["last_error"]


def test_replay_delivers_one_event_again(run: Run, lz: Licenzy, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    event_id = left_pending(lz)
    for _ in range(2):
        replayed = run("events", "replay", event_id, "--json", env=callbacks(inbox))
        assert (replayed.exit_code, replayed.json()) == (0, {"delivered": 1, "failed": 0})
    assert received(inbox) == [event_id, event_id]
    unknown = run("events", "replay", "lzev_nope", env=callbacks(inbox))
    assert unknown.exit_code == 1 and "no change event" in unknown.error_line()


def test_without_callbacks_deliver_and_replay_fail_and_deliver_nothing(
        run: Run, lz: Licenzy) -> None:
    event_id = left_pending(lz)
    for args in (("events", "deliver"), ("events", "replay", event_id)):
        shown = run(*args)
        assert shown.exit_code == 1
        assert "registers no change-event callbacks" in shown.error_line()
    (row,) = run("events", "list", "--pending", "--json").json()
    assert row["status"] == "pending" and row["attempts"] == 0


def test_bad_options_are_usage_errors(run: Run) -> None:
    assert run("events", "list", "--limit", "0").exit_code == 2
    assert run("events", "show").exit_code == 2
    assert run("events", "nope").exit_code == 2
