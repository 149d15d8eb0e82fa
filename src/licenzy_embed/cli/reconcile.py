"""``reconcile``: heal entitlements after a webhook outage (see ``licenzy_embed.reconcile``).

A progress bar goes to stderr while events and objects are applied; stdout gets the report
(a summary and one row per subject whose access changed, or with ``--json`` the report's
``to_dict()``). ``--dry-run`` reports the same and writes nothing.
"""

from __future__ import annotations

import re
import sys
from datetime import datetime, timedelta
from typing import Any

import click

from ..licenzy import Licenzy
from ._app import pass_licenzy
from ._output import JSON_OPTION, emit_json, table
from ._params import instant

_DAYS = re.compile(r"^\s*(\d{1,3})\s*d\s*$", re.IGNORECASE)


def since(ctx: click.Context, param: click.Parameter,
          value: str | None) -> datetime | timedelta | None:
    """``7d`` (days back from now) or an ISO 8601 instant."""
    if value is None:
        return None
    days = _DAYS.match(value)
    if days is not None:
        if int(days.group(1)) == 0:
            raise click.BadParameter("give at least 1d")
        return timedelta(days=int(days.group(1)))
    return instant(ctx, param, value)


class _Bar:
    """``progress(done, total)`` onto a click progress bar on stderr."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.done = 0

    def __call__(self, done: int, total: int) -> None:
        if self.bar is None:
            bar: Any = click.progressbar(length=max(total, 1), label="reconciling",
                                         file=sys.stderr)
            bar.__enter__()
            self.bar = bar
        self.bar.update(done - self.done)
        self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)


def _compact(access: dict[str, Any]) -> str:
    return f"{'access' if access['has_access'] else 'no access'} ({access['status']})"


@click.command()
@click.option("--since", "since_", metavar="ISO|Nd", callback=since,
              help="How far back to list Stripe's events: 7d, or an ISO 8601 instant "
                   "(default and at most: 30 days, all Stripe keeps).")
@click.option("--dry-run", is_flag=True, help="Report what would change; write nothing.")
@JSON_OPTION
@pass_licenzy
def reconcile(lz: Licenzy, since_: datetime | timedelta | None, dry_run: bool,
              as_json: bool) -> None:
    """Fix what missed webhooks left wrong: apply the events Stripe still has, then re-read
    every known subscription and payment. Safe to run again: a second run changes nothing."""
    bar = _Bar()
    try:
        report = lz.reconcile(since_, dry_run=dry_run, progress=bar)
    finally:
        bar.close()
    if as_json:
        emit_json(report.to_dict())
        return
    verb = "would change" if dry_run else "changed"
    click.echo(f"{report.events_seen} events since {report.to_dict()['since']}: "
               f"{report.events_applied} applied, {report.duplicates} already applied; "
               f"{report.objects_reread} objects re-read, {report.claims_applied} corrected")
    if not report.changes:
        click.echo("nothing to change" if dry_run else "nothing changed")
        return
    click.echo(f"{len(report.changes)} subjects {verb}:")
    rows = [{"subject": c.subject_ref, "before": _compact(c.before),
             "after": _compact(c.after)} for c in report.changes]
    click.echo(table(rows, (("SUBJECT", lambda r: r["subject"]),
                            ("BEFORE", lambda r: r["before"]),
                            ("AFTER", lambda r: r["after"]))))


COMMANDS = (reconcile,)
