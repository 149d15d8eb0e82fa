"""``python example_apps/manage.py runexample``: the Django example in one command.

It applies the migrations (Django's tables and the demo users; licenzy-embed migrates its own
tables when billing.py builds its store), starts the local checkout page when there is no
``STRIPE_API_KEY``, then serves the project with ``runserver`` on 127.0.0.1:$PORT (8000 by
default) — without the autoreloader, so that one process holds the simulator and its page."""

from __future__ import annotations

from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand

from billing import port, start_local_checkout
from licenzy_embed.integrations.django import get_licenzy


class Command(BaseCommand):
    help = "Migrate, then serve the example with the local checkout page in test mode."

    def handle(self, *args: Any, **options: Any) -> None:
        call_command("migrate", interactive=False, verbosity=0)
        checkout = start_local_checkout(get_licenzy())
        try:
            call_command("runserver", f"127.0.0.1:{port()}", use_reloader=False)
        finally:
            if checkout is not None:
                checkout.stop()
