"""Fixing a customer by hand: ``grant``, ``revoke`` and ``adjust``.

Each is the ``Licenzy`` call of the same name (source ``admin``, the reason in the ledger) and
prints the entitlement it returns. Values are checked before the app is touched, so a typo is
a usage error (exit 2) that changed nothing.
"""

from __future__ import annotations

from datetime import datetime

import click

from .. import validation
from ..clock import iso
from ..entitlement import REVOKED, Entitlement
from ..errors import UnknownProduct
from ..licenzy import Licenzy
from ._app import pass_licenzy
from ._output import JSON_OPTION, UsageFailure, emit_json, entitlement_table
from ._params import REASON, SUBJECT, checked, instant, meter_grants

ENTITLEMENT_ID = click.argument("entitlement_id")


def _print(entitlement: Entitlement, summary: str, as_json: bool) -> None:
    if as_json:
        emit_json(entitlement.to_dict())
        return
    click.echo(summary)
    click.echo(entitlement_table([entitlement]))


@click.command()
@SUBJECT
@click.argument("product")
@REASON
@click.option("--units", type=click.IntRange(1, validation.MAX_UNITS),
              help="Units to grant (default: the product's units).")
@click.option("--meter", "meters", metavar="NAME=N", multiple=True, callback=meter_grants,
              help="Units of one meter to grant, e.g. --meter api_calls=500 (repeatable; "
                   "default: the product's count of each).")
@click.option("--expires-at", "expires_at", metavar="ISO", callback=instant,
              help="When the grant ends, ISO 8601, UTC without an offset "
                   "(default: the product's duration, or never).")
@JSON_OPTION
@pass_licenzy
def grant(lz: Licenzy, subject: str, product: str, reason: str, units: int | None,
          meters: dict[str, int], expires_at: datetime | None, as_json: bool) -> None:
    """Give SUBJECT the catalog product PRODUCT without a payment (support, comps)."""
    if expires_at is not None and expires_at <= lz.now():
        raise UsageFailure(f"--expires-at {iso(expires_at)} is not in the future",
                           "give a later instant, or leave it out")
    try:
        granted = lz.grant(subject, product, reason=reason, units=units,
                           expires_at=expires_at, meters=meters or None)
    except UnknownProduct:
        codes = ", ".join(p.code for p in lz.catalog)
        raise UsageFailure(f"no product {product!r} in the app's catalog",
                           f"use one of {codes}") from None
    _print(granted, f"granted {granted.product_code} to {granted.subject_ref}: {granted.id}",
           as_json)


@click.command()
@ENTITLEMENT_ID
@REASON
@JSON_OPTION
@pass_licenzy
def revoke(lz: Licenzy, entitlement_id: str, reason: str, as_json: bool) -> None:
    """End the entitlement ENTITLEMENT_ID now (a refund made outside Stripe, abuse)."""
    before = lz.store.get_entitlement(lz.mode, entitlement_id)
    revoked = lz.revoke(entitlement_id, reason=reason)
    if before is not None and before.status == REVOKED:
        summary = f"{revoked.id} was already revoked: nothing changed"
    else:
        summary = f"revoked {revoked.id} ({revoked.product_code} of {revoked.subject_ref})"
    _print(revoked, summary, as_json)


@click.command(context_settings={"ignore_unknown_options": True})  # DELTA may be -50
@ENTITLEMENT_ID
@click.argument("delta", type=int, callback=checked(validation.delta))
@REASON
@click.option("--meter", default="units", show_default=True, metavar="NAME",
              help="The meter whose units change.")
@JSON_OPTION
@pass_licenzy
def adjust(lz: Licenzy, entitlement_id: str, delta: int, reason: str, meter: str,
           as_json: bool) -> None:
    """Add DELTA units of a meter to ENTITLEMENT_ID, or remove them with a negative DELTA."""
    adjusted = lz.adjust_usage(entitlement_id, delta, reason=reason, meter=meter)
    verb = "added" if delta > 0 else "removed"
    what = "units" if meter == "units" else f"units of {meter}"
    _print(adjusted, f"{verb} {abs(delta)} {what}: {adjusted.id} has "
                     f"{adjusted.meters.get(meter)} left", as_json)


COMMANDS = (grant, revoke, adjust)
