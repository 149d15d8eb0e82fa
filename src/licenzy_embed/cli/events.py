"""Change events from the outbox: ``events list|show|replay|deliver``.

Delivery runs the callbacks the app's module registers with ``lz.on`` when ``--app`` loads
it; a ``Licenzy`` with none registered delivers nothing (events wait, pending, for a process
that has them), so ``deliver`` and ``replay`` fail then rather than report success.
"""

from __future__ import annotations

import click

from ..licenzy import Licenzy
from ..outbox import Delivery, OutboxRecord
from ._app import pass_licenzy
from ._output import FAILED, JSON_OPTION, CommandFailed, emit_json, field, table

EVENT_ID = click.argument("event_id")
EVENT_COLUMNS = (
    ("ID", field("id")),
    ("TYPE", field("type")),
    ("STATUS", field("status")),
    ("CREATED", field("created_at")),
    ("ATTEMPTS", field("attempts")),
    ("NEXT ATTEMPT", field("next_attempt_at")),
    ("LAST ERROR", field("last_error")),
)


def _require_callbacks(lz: Licenzy, doing: str) -> None:
    if not lz.outbox.bus:
        raise CommandFailed(
            f"the app registers no change-event callbacks, so there is nothing to {doing} to",
            "register them with lz.on(…) where --app builds the Licenzy")


def _found(lz: Licenzy, event_id: str) -> OutboxRecord:
    record = lz.change_event(event_id)
    if record is None:
        raise CommandFailed(f"no change event {event_id!r} in {lz.mode} mode",
                            "find the id with `licenzy-embed events list`")
    return record


def _delivered(result: Delivery, as_json: bool, what: str) -> None:
    if as_json:
        emit_json(result.to_dict())
    else:
        click.echo(f"{what}: {result.delivered} delivered, {result.failed} failed "
                   "(retried later)")
    if result.failed:
        click.get_current_context().exit(FAILED)


@click.group()
def events() -> None:
    """Change events: list them, show one, replay one, deliver those pending."""


@events.command("list")
@click.option("--pending", is_flag=True, help="Only events not yet delivered.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True)
@JSON_OPTION
@pass_licenzy
def list_(lz: Licenzy, pending: bool, limit: int, as_json: bool) -> None:
    """The newest change events, newest first."""
    found = [r.to_dict() for r in lz.change_events(pending=pending, limit=limit)]
    if as_json:
        emit_json(found)
        return
    click.echo(table(found, EVENT_COLUMNS) if found else
               ("no pending change events" if pending else "no change events"))


@events.command()
@EVENT_ID
@JSON_OPTION
@pass_licenzy
def show(lz: Licenzy, event_id: str, as_json: bool) -> None:
    """One change event: its state, its last error and its data."""
    record = _found(lz, event_id).to_dict()
    if as_json:
        emit_json(record)
        return
    click.echo(table([record], EVENT_COLUMNS))
    click.echo(f"delivered to: {', '.join(record['delivered_to']) or '-'}")
    emit_json(record["data"])


@events.command()
@EVENT_ID
@JSON_OPTION
@pass_licenzy
def replay(lz: Licenzy, event_id: str, as_json: bool) -> None:
    """Deliver EVENT_ID again to every callback (a receiver lost it). Exits 1 when a
    callback raised."""
    _found(lz, event_id)
    _require_callbacks(lz, "replay it")
    _delivered(lz.replay_event(event_id), as_json, f"replayed {event_id}")


@events.command()
@JSON_OPTION
@pass_licenzy
def deliver(lz: Licenzy, as_json: bool) -> None:
    """Deliver the pending events that are due (for cron). Exits 1 when a callback raised:
    those events are retried later."""
    _require_callbacks(lz, "deliver them")
    _delivered(lz.deliver_pending_events(), as_json, "pending events")


COMMANDS = (events,)
