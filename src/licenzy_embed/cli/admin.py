"""Fixing a customer by hand: ``grant``, ``revoke`` and ``adjust``.

Each is the ``Licenzy`` call of the same name (source ``admin``, the reason in the ledger) and
prints the entitlement it returns. Values are checked before the app is touched, so a typo is
a usage error (exit 2) that changed nothing.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import click

from .. import validation
from ..clock import iso
from ..entitlement import REVOKED, Entitlement
from ..errors import InvalidRequest, UnknownProduct
from ..licenzy import Licenzy
from ._app import pass_licenzy
from ._output import JSON_OPTION, UsageFailure, emit_json
from .customers import SUBJECT, entitlement_table


def _checked(rule: Any) -> Any:
    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None:
            return None
        try:
            return rule(value)
        except InvalidRequest as exc:
            raise click.BadParameter(exc.message) from None

    return callback


def _instant(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """ISO 8601; ``Z`` and a date alone are accepted; without an offset it is UTC."""
    if value is None:
        return None
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 instant (e.g. 2026-04-01 or "
            "2026-04-01T12:00:00+02:00)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


REASON = click.option("--reason", required=True, callback=_checked(validation.reason),
                      help="Why, in words: kept in the ledger with the change.")
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
@click.option("--expires-at", "expires_at", metavar="ISO", callback=_instant,
              help="When the grant ends, ISO 8601, UTC without an offset "
                   "(default: the product's duration, or never).")
@JSON_OPTION
@pass_licenzy
def grant(lz: Licenzy, subject: str, product: str, reason: str, units: int | None,
          expires_at: datetime | None, as_json: bool) -> None:
    """Give SUBJECT the catalog product PRODUCT without a payment (support, comps)."""
    if expires_at is not None and expires_at <= lz.now():
        raise UsageFailure(f"--expires-at {iso(expires_at)} is not in the future",
                           "give a later instant, or leave it out")
    try:
        granted = lz.grant(subject, product, reason=reason, units=units,
                           expires_at=expires_at)
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
@click.argument("delta", type=int, callback=_checked(validation.delta))
@REASON
@JSON_OPTION
@pass_licenzy
def adjust(lz: Licenzy, entitlement_id: str, delta: int, reason: str, as_json: bool) -> None:
    """Add DELTA units to ENTITLEMENT_ID, or remove them with a negative DELTA."""
    adjusted = lz.adjust_usage(entitlement_id, delta, reason=reason)
    verb = "added" if delta > 0 else "removed"
    _print(adjusted, f"{verb} {abs(delta)} units: {adjusted.id} has "
                     f"{adjusted.usage_remaining} left", as_json)


COMMANDS = (grant, revoke, adjust)
