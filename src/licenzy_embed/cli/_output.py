"""What the commands print, and how they fail.

Scripts read stdout and the exit status, people read tables: a command prints exactly one
thing on stdout — a table, or with ``--json`` one JSON document — and everything else (log
lines, progress) goes to stderr. An expected failure is :class:`CommandFailed` (exit 1) or
:class:`UsageFailure` (exit 2): one line on stderr that names the problem and the fix, never a
traceback.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from typing import IO, Any

import click

from ..entitlement import Entitlement
from ..errors import LicenzyError

PROG = "licenzy-embed"
OK, FAILED, USAGE = 0, 1, 2

JSON_OPTION = click.option("--json", "as_json", is_flag=True,
                           help="Print one JSON document on stdout, for scripts.")


def one_line(text: str) -> str:
    """Driver messages span lines (psycopg adds hints); an error here is one line."""
    return " ".join(str(text).split())


class CommandFailed(click.ClickException):
    """The command ran and did not succeed: exit 1, one line on stderr."""

    exit_code = FAILED

    def __init__(self, problem: str, fix: str | None = None) -> None:
        super().__init__(one_line(problem) + (f"; {one_line(fix)}" if fix else ""))

    def show(self, file: IO[Any] | None = None) -> None:
        click.echo(f"{PROG}: {self.format_message()}", err=True)


class UsageFailure(CommandFailed):
    """The command line itself is wrong (no app, a bad URL, a bad value): exit 2. Unlike
    click's own usage errors it prints one line, not the usage text."""

    exit_code = USAGE


# What to do about each library error, by its stable code.
_FIXES = {
    "entitlements_unavailable": "check that the database is up and migrated "
                                f"(`{PROG} doctor` tells which)",
    "entitlement_not_found": f"find the id with `{PROG} entitlements SUBJECT`",
    "unknown_product": "use a product code of the app's catalog",
    "payment_provider_error": f"check the Stripe key and the network (`{PROG} doctor`)",
    "mode_mismatch": "use a key of the mode the object lives in",
}


def failure_for(exc: LicenzyError) -> CommandFailed:
    """The one-line failure for a library error; a bad value in the input is a usage error."""
    kind = UsageFailure if exc.code in ("invalid_request", "unknown_product") else CommandFailed
    # An operator reads this, not an HTTP client: the store's detail (the driver's words, "run
    # `licenzy-embed migrate`") is what says which fix applies.
    detail = getattr(exc, "detail", None)
    shown = f"{exc.message} ({exc.code})" if not detail else f"{exc.message}: {detail} " \
        f"({exc.code})"
    return kind(shown, _FIXES.get(exc.code))


def emit_json(document: Any) -> None:
    click.echo(json.dumps(document, indent=2, ensure_ascii=False))


def show(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return one_line(str(value))


Column = tuple[str, Callable[[dict[str, Any]], object]]


def table(rows: Iterable[dict[str, Any]], columns: Sequence[Column]) -> str:
    """Left-aligned columns under upper-case headers, the last column unpadded."""
    cells = [[header for header, _ in columns]]
    cells += [[show(get(row)) for _, get in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns) - 1)]
    lines = []
    for line in cells:
        padded = [cell.ljust(width) for cell, width in zip(line[:-1], widths, strict=True)]
        lines.append("  ".join([*padded, line[-1]]).rstrip())
    return "\n".join(lines)


def field(name: str) -> Callable[[dict[str, Any]], object]:
    return lambda row: row.get(name)


ENTITLEMENT_COLUMNS: tuple[Column, ...] = (
    ("ID", field("id")),
    ("PRODUCT", field("product_code")),
    ("KIND", field("kind")),
    ("STATUS", field("status")),
    ("AVAILABLE", field("available")),
    ("REASON", field("availability_reason")),
    ("UNITS", lambda row: units_left(row.get("meters") or {}, row.get("usage_remaining"))),
    ("EXPIRES", field("expires_at")),
    ("SOURCE", field("source")),
)

def units_left(meters: dict[str, int], total: object) -> object:
    """What is left, per meter (``api_calls=940,exports=50``): the sum alone would not tell
    support which balance ran out. Only the ``units`` meter: its count, as before meters."""
    if not meters or set(meters) == {"units"}:
        return total
    return ",".join(f"{name}={left}" for name, left in meters.items())


def entitlement_table(entitlements: list[Entitlement]) -> str:
    return table((e.to_dict() for e in entitlements), ENTITLEMENT_COLUMNS)


LEDGER_COLUMNS: tuple[Column, ...] = (
    ("AT", field("at")),
    ("ACTION", field("action")),
    ("SOURCE", field("source")),
    ("UNITS", lambda row: _signed(row.get("units_delta"))),
    ("METER", field("meter")),
    ("STATUS", field("status")),
    ("ENTITLEMENT", field("entitlement_id")),
    ("REFERENCE", field("reference")),
    ("REASON", field("reason")),
)


def _signed(value: object) -> object:
    return f"{value:+d}" if isinstance(value, int) and not isinstance(value, bool) else value
