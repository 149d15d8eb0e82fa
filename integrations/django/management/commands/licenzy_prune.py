"""``manage.py licenzy_prune [--dry-run] [--json]``: delete the settled history nothing reads
any more (``Licenzy.prune_history``, default windows: 24 hours for settled holds and usage
records, 35 days for processed webhook events and delivered change events), e.g. nightly."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from licenzy_embed.errors import LicenzyError

from ...conf import get_licenzy


class Command(BaseCommand):  # type: ignore[misc, unused-ignore]
    help = "Delete settled holds, usage records, processed events past their retention."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Count; delete nothing.")
        parser.add_argument("--json", action="store_true", help="Print one JSON document.")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            report = get_licenzy().prune_history(dry_run=options["dry_run"])
        except LicenzyError as exc:
            raise CommandError(f"{exc.message} ({exc.code})") from exc
        if options["json"]:
            self.stdout.write(json.dumps(report.to_dict()))
            return
        verb = "would delete" if report.dry_run else "deleted"
        counts = ", ".join(f"{n} {kind}" for kind, n in report.to_dict()["counts"].items())
        self.stdout.write(f"{verb} {report.total} rows: {counts}")
