"""``manage.py licenzy_deliver_events``: deliver pending change events (for cron or a
scheduler), to the callbacks and ``change_event`` receivers the project registers."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ...conf import get_licenzy


class Command(BaseCommand):  # type: ignore[misc, unused-ignore]
    help = "Deliver the change events that are due (pending after a crash or a failure)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--json", action="store_true", help="Print one JSON document.")

    def handle(self, *args: Any, **options: Any) -> None:
        result = get_licenzy().deliver_pending_events()
        if options["json"]:
            self.stdout.write(json.dumps(result.to_dict()))
        else:
            self.stdout.write(f"{result.delivered} delivered, {result.failed} failed")
        if result.failed:
            raise CommandError(f"{result.failed} change events failed; they are retried later")
