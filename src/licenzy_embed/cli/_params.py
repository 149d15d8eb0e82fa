"""Arguments and options several commands share, checked by the library's own input rules
while click parses them, so a bad value is a usage error before the app is touched."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import click

from .. import validation
from ..errors import InvalidRequest

Callback = Callable[[click.Context, click.Parameter, Any], Any]


def checked(rule: Callable[[Any], Any]) -> Callback:
    """A click callback applying ``rule`` (a :mod:`licenzy_embed.validation` function)."""

    def callback(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
        if value is None:
            return None
        try:
            return rule(value)
        except InvalidRequest as exc:
            raise click.BadParameter(exc.message) from None

    return callback


def instant(ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    """ISO 8601 to an aware UTC datetime; ``Z`` and a date alone are accepted, and an instant
    without an offset is UTC (as every instant the library stores)."""
    if value is None:
        return None
    text = value.strip()
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"  # fromisoformat refuses "z" and a date alone with "Z"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not an ISO 8601 instant (e.g. 2026-04-01 or "
            "2026-04-01T12:00:00+02:00)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.astimezone(timezone.utc)


SUBJECT = click.argument("subject", callback=checked(validation.subject_ref))
REASON = click.option("--reason", required=True, callback=checked(validation.reason),
                      help="Why, in words: kept in the ledger with the change.")


def meter_grants(ctx: click.Context, param: click.Parameter,
                 values: tuple[str, ...]) -> dict[str, int]:
    """``--meter NAME=N`` options to a dict (whether the catalog has NAME, ``grant`` says)."""
    found: dict[str, int] = {}
    for value in values:
        name, sep, count = value.partition("=")
        name = name.strip()
        if not sep or not name or name in found:
            raise click.BadParameter(f"{value!r}: give each meter once, as NAME=N "
                                     "(e.g. api_calls=500)")
        try:
            found[name] = validation.units(int(count), name=name)
        except ValueError:
            raise click.BadParameter(f"{value!r}: N must be a whole number") from None
        except InvalidRequest as exc:
            raise click.BadParameter(exc.message) from None
    return found
