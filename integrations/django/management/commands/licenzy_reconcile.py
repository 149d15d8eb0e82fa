"""``manage.py licenzy_reconcile [--since 7d|ISO] [--dry-run] [--json]``: heal entitlements
after a webhook outage (``Licenzy.reconcile``), e.g. nightly from cron or a scheduler."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from licenzy_embed.errors import LicenzyError

from ...conf import get_licenzy


def _since(value: str | None) -> Any:
    if value is None:
        return None
    if value.endswith("d") and value[:-1].isdigit():
        return timedelta(days=int(value[:-1]))
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise CommandError(f"--since {value!r}: give 7d or an ISO 8601 instant") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


class Command(BaseCommand):  # type: ignore[misc, unused-ignore]
    help = "Apply the Stripe events and current state that missed webhooks left out."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--since", help="7d, or an ISO 8601 instant (default: 30 days).")
        parser.add_argument("--dry-run", action="store_true", help="Report; write nothing.")
        parser.add_argument("--json", action="store_true", help="Print one JSON document.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = get_licenzy().reconcile(_since(options["since"]),
                                             dry_run=options["dry_run"])
        except LicenzyError as exc:
            raise CommandError(f"{exc.message} ({exc.code})") from exc
        if options["json"]:
            self.stdout.write(json.dumps(report.to_dict()))
            return
        verb = "would change" if report.dry_run else "changed"
        self.stdout.write(f"{report.events_seen} events, {report.events_applied} applied, "
                          f"{report.claims_applied} corrected; {len(report.changes)} "
                          f"subjects {verb}")
        for change in report.changes:
            self.stdout.write(f"  {change.subject_ref}: {change.before['status']} -> "
                              f"{change.after['status']}")
