"""Looking a customer up: ``access``, ``entitlements`` and ``ledger`` of one subject.

A subject the store has never seen (no entitlement, no ledger entry) is a failure rather than
an empty answer: support typing a wrong id, or a key of the other mode, must not read as "this
customer has nothing".
"""

from __future__ import annotations

import click

from ..licenzy import Licenzy
from ._app import pass_licenzy
from ._output import (
    JSON_OPTION,
    LEDGER_COLUMNS,
    CommandFailed,
    emit_json,
    entitlement_table,
    table,
)
from ._params import SUBJECT


def require_known(lz: Licenzy, subject: str) -> None:
    """Fail unless the store has some trace of ``subject`` in this mode."""
    if lz.entitlements(subject) or lz.ledger(subject):
        return
    raise CommandFailed(
        f"no subject {subject!r} in {lz.mode} mode: it has no entitlements and no ledger "
        "entries",
        "check the subject_ref (the id the app passes to licenzy-embed) and that --app "
        "uses the key of the right mode")


@click.command()
@SUBJECT
@JSON_OPTION
@pass_licenzy
def access(lz: Licenzy, subject: str, as_json: bool) -> None:
    """Whether SUBJECT has access now, and why: each entitlement with its status, units
    left and expiry. Exits 1 for a subject the store has never seen."""
    view = lz.customer_access(subject)
    if not view.entitlements:
        require_known(lz, subject)
    if as_json:
        emit_json(view.to_dict())
        return
    verdict = "has access" if view.has_access else "has NO access"
    click.echo(f"{subject} {verdict} (status {view.status}, {lz.mode} mode)")
    if view.entitlements:
        click.echo(entitlement_table(view.entitlements))


@click.command()
@SUBJECT
@JSON_OPTION
@pass_licenzy
def entitlements(lz: Licenzy, subject: str, as_json: bool) -> None:
    """Every entitlement of SUBJECT, oldest first (ids for revoke and adjust)."""
    found = lz.entitlements(subject)
    if not found:
        require_known(lz, subject)
    if as_json:
        emit_json([e.to_dict() for e in found])
    elif found:
        click.echo(entitlement_table(found))
    else:
        click.echo(f"{subject} has no entitlements ({lz.mode} mode)")


@click.command()
@SUBJECT
@JSON_OPTION
@pass_licenzy
def ledger(lz: Licenzy, subject: str, as_json: bool) -> None:
    """Every change to SUBJECT's entitlements and units, oldest first: what support reads
    when a customer asks where their credits went."""
    entries = lz.ledger(subject)
    if not entries:
        require_known(lz, subject)
    if as_json:
        emit_json([e.to_dict() for e in entries])
    elif entries:
        click.echo(table((e.to_dict() for e in entries), LEDGER_COLUMNS))
    else:
        click.echo(f"{subject} has no ledger entries ({lz.mode} mode)")


COMMANDS = (access, entitlements, ledger)
