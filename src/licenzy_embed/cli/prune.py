"""``prune``: delete the settled history nothing reads any more (see
``licenzy_embed.retention``), with the default windows: holds settled and usage records made
more than 24 hours ago, processed webhook event ids and delivered change events older than 35
days. Never an open hold, the ledger, watermarks, entitlements, checkout attempts or
customers. ``--dry-run`` counts and deletes nothing. Safe to run often, e.g. nightly.
"""

from __future__ import annotations

import click

from ..licenzy import Licenzy
from ..retention import KINDS
from ._app import pass_licenzy
from ._output import JSON_OPTION, emit_json


@click.command()
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@JSON_OPTION
@pass_licenzy
def prune(lz: Licenzy, dry_run: bool, as_json: bool) -> None:
    """Delete settled holds and usage records older than 24 hours, and processed webhook
    event ids and delivered change events older than 35 days (in batches). Exactly-once is
    kept: a retry or a replay can still reach everything younger."""
    report = lz.prune_history(dry_run=dry_run)
    if as_json:
        emit_json(report.to_dict())
        return
    verb = "would delete" if dry_run else "deleted"
    counts = ", ".join(f"{report.counts.get(k, 0)} {k.replace('_', ' ')}" for k in KINDS)
    click.echo(f"{verb} {report.total} rows in {lz.mode} mode: {counts}")


COMMANDS = (prune,)
