"""The ``licenzy-embed`` console script.

``licenzy-embed migrate --url URL`` brings the licenzy tables of a database up to date (the
step a deploy runs before starting app processes); ``--sql`` prints the SQL instead, for a DBA
to review and apply. The URL may also come from ``LICENZY_DATABASE_URL`` so that it need not
appear in a shell history.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from .errors import StoreUnavailable

URL_ENV = "LICENZY_DATABASE_URL"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="licenzy-embed",
        description="licenzy-embed: Stripe payment -> entitlement -> access, in your app.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    migrate = commands.add_parser(
        "migrate", help="create or upgrade the licenzy tables",
        description="Apply the bundled Alembic migrations to a database. Safe to run from "
                    "several hosts at once; running it again when up to date does nothing.")
    migrate.add_argument(
        "--url", default=os.environ.get(URL_ENV),
        help=f"SQLAlchemy database URL, e.g. sqlite:///licenzy.db, "
             f"postgresql+psycopg://user@host/db, mysql+pymysql://user@host/db "
             f"(default: ${URL_ENV})")
    migrate.add_argument("--revision", default="head",
                         help="target revision (default: head, the newest)")
    migrate.add_argument("--sql", action="store_true",
                         help="print the SQL to stdout instead of running it")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "migrate":
        return _migrate(parser, args.url, args.revision, args.sql)
    parser.error(f"unknown command {args.command!r}")  # pragma: no cover - argparse refuses
    return 2  # pragma: no cover


def _migrate(parser: argparse.ArgumentParser, url: str | None, revision: str,
             sql: bool) -> int:
    if not url:
        parser.error(f"a database URL is needed: --url URL or ${URL_ENV}")
    try:
        from .stores.sqlalchemy import migrate
    except ImportError as exc:
        print(f"licenzy-embed: {exc}", file=sys.stderr)
        return 2
    try:
        reached = migrate(url, revision, sql=sql, output=sys.stdout)
    except ImportError as exc:  # the URL's driver is not installed
        print(f"licenzy-embed: {exc}", file=sys.stderr)
        return 2
    except StoreUnavailable as exc:
        print(f"licenzy-embed: cannot reach the database: {exc.message}", file=sys.stderr)
        return 1
    except Exception as exc:
        # Bad URLs and unknown revisions come from SQLAlchemy and Alembic as several types;
        # one line on stderr is what a deploy log needs, not a traceback.
        if type(exc).__module__.split(".")[0] not in ("sqlalchemy", "alembic"):
            raise
        print(f"licenzy-embed: migration failed: {exc}", file=sys.stderr)
        return 1
    if not sql:
        print(f"licenzy-embed: {_safe(url)} is at revision {reached}", file=sys.stderr)
    return 0


def _safe(url: str) -> str:
    """The URL without its password, for log lines."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "the database"


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
