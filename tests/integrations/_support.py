"""What the adapter tests of every framework share: a catalog, a Licenzy on an in-memory
store, and a store that can be made to fail in the middle of a webhook."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

from licenzy_embed import InMemoryStore, Licenzy, Product
from licenzy_embed.errors import StoreUnavailable
from licenzy_embed.testing import FrozenClock

START = datetime(2026, 3, 1, 12, 0, tzinfo=timezone.utc)
WEBHOOK_SECRET = "whsec_integration_tests"


def products() -> list[Product]:
    return [
        Product("PRO_MONTHLY", kind="subscription", price="price_pro_monthly", units=1000,
                features=("reports",)),
        Product("CREDITS_100", kind="usage_pack", price="price_credits_100", units=100),
        Product("WEEK_PASS", kind="time_pass", price="price_week_pass",
                duration=timedelta(days=7), features=("reports",)),
        # Features and meters (_features.py): a pack of two meters, a plan granting sso.
        Product("API_PACK", kind="usage_pack", price="price_api_pack",
                meters={"api_calls": 100, "exports": 5}),
        Product("TEAM_MONTHLY", kind="subscription", price="price_team_monthly",
                features=("reports", "sso"), meters={"api_calls": 1000}),
    ]


class FlakyStore(InMemoryStore):
    """An in-memory store whose transactions can be made to fail half-way with an error that
    is not a ``StoreUnavailable`` (a bug, a driver error): the webhook route must answer 5xx
    so that Stripe retries, and nothing may be recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.broken = False
        #: When set, every transaction raises ``StoreUnavailable`` with this text, as a
        #: driver's error reads (host, port) or a missing table's (an operator instruction).
        self.outage: str | None = None

    @contextmanager
    def transaction(self, mode: str) -> Iterator[Any]:
        if self.outage is not None:
            raise StoreUnavailable(self.outage)
        with super().transaction(mode) as tx:
            if self.broken:
                yield _BrokenTransaction(tx)
            else:
                yield tx


    def has_access(self, mode: str, subject_ref: str, now: datetime) -> bool:
        if self.outage is not None:
            raise StoreUnavailable(self.outage)
        return super().has_access(mode, subject_ref, now)

    def list_entitlements(self, mode: str, subject_ref: str) -> Any:
        if self.outage is not None:
            raise StoreUnavailable(self.outage)
        return super().list_entitlements(mode, subject_ref)


class _BrokenTransaction:
    def __init__(self, tx: Any) -> None:
        self._tx = tx

    def __getattr__(self, name: str) -> Any:
        return getattr(self._tx, name)

    def insert_processed_event(self, event: Any) -> None:
        raise RuntimeError("simulated failure while recording the event")


def make_lz(store: InMemoryStore | None = None, **kwargs: Any) -> Licenzy:
    kwargs.setdefault("clock", FrozenClock(START))
    return Licenzy(store=store if store is not None else FlakyStore(), products=products(),
                   stripe_webhook_secret=WEBHOOK_SECRET,
                   success_url="https://app.example/billing/success",
                   cancel_url="https://app.example/billing/cancel", **kwargs)


def credits(lz: Licenzy, subject: str, units: int = 100) -> str:
    """Give ``subject`` a pack of ``units``; returns the entitlement id."""
    return lz.grant(subject, "CREDITS_100", reason="test", units=units).id


def remaining(lz: Licenzy, subject: str) -> int:
    return sum(e.usage_remaining or 0 for e in lz.entitlements(subject) if e.available)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def asgi_burst(app: Any, path: str, headers: dict[str, str], count: int = 20) -> list[int]:
    """POST ``path`` ``count`` times at once (asyncio.gather over httpx's ASGI transport) and
    return the statuses: concurrency through the framework itself, on one event loop."""
    import asyncio

    import httpx

    async def burst() -> list[int]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            responses = await asyncio.gather(*(client.post(path, headers=headers)
                                               for _ in range(count)))
        return [r.status_code for r in responses]

    return asyncio.run(burst())
