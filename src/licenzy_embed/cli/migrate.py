"""``licenzy-embed migrate``: bring the licenzy tables of a database up to date.

The step a deploy runs before starting app processes; ``--sql`` prints the SQL instead, for a
DBA to review and apply. The URL may come from ``LICENZY_DATABASE_URL`` so that it need not
appear in a shell history. URLs are taken as people write them: ``postgres://`` and
``postgresql://`` mean psycopg 3 (the ``[postgres]`` extra), ``mysql://`` and ``mariadb://``
PyMySQL (the ``[mysql]`` extra) — SQLAlchemy's own defaults there are drivers the extras do
not install.
"""

from __future__ import annotations

import sys

import click

from ._output import JSON_OPTION, PROG, CommandFailed, UsageFailure, emit_json, one_line

URL_ENV = "LICENZY_DATABASE_URL"
# What a bare scheme means here: the driver of the matching extra.
_DRIVERS = {
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "mysql": "mysql+pymysql",
    "mariadb": "mariadb+pymysql",
}
_EXAMPLES = "sqlite:///licenzy.db, postgresql://user@host/db or mysql://user@host/db"


def database_url(raw: str) -> tuple[str, str]:
    """The SQLAlchemy URL for ``raw``, and the same without its password, for messages."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from ..stores.sqlalchemy import SUPPORTED

    try:
        parsed = make_url(raw.strip())
    except ArgumentError:
        raise UsageFailure(f"{raw!r} is not a database URL", f"write it as {_EXAMPLES}"
                           ) from None
    parsed = parsed.set(drivername=_DRIVERS.get(parsed.drivername, parsed.drivername))
    safe = parsed.render_as_string(hide_password=True)
    if parsed.get_backend_name() not in SUPPORTED:
        raise UsageFailure(f"unsupported database {parsed.get_backend_name()!r} in {safe}",
                           f"licenzy-embed stores in SQLite, PostgreSQL or MariaDB/MySQL: "
                           f"use {_EXAMPLES}")
    return parsed.render_as_string(hide_password=False), safe


@click.command(epilog=f"Example: {PROG} migrate --url postgresql://app@db/app")
@click.option("--url", envvar=URL_ENV, metavar="URL",
              help=f"Database URL: {_EXAMPLES} (default: ${URL_ENV}).")
@click.option("--revision", default="head", show_default=True,
              help="Target revision (head: the newest).")
@click.option("--sql", is_flag=True, help="Print the SQL on stdout instead of running it.")
@JSON_OPTION
def migrate(url: str | None, revision: str, sql: bool, as_json: bool) -> None:
    """Create or upgrade the licenzy tables.

    Safe to run from several hosts at once; when the database is up to date it changes
    nothing and says so."""
    if not url or not url.strip():
        raise UsageFailure("a database URL is needed", f"pass --url URL or set ${URL_ENV}")
    if sql and as_json:
        raise UsageFailure("--sql prints SQL, not JSON", "use one of --sql and --json")
    try:
        import alembic  # noqa: F401
        import sqlalchemy  # noqa: F401
    except ImportError as exc:
        raise UsageFailure(f"migrate needs SQLAlchemy and Alembic ({one_line(str(exc))})",
                           "pip install 'licenzy-embed[sqlalchemy]' (or [postgres], [mysql])"
                           ) from None
    target, safe = database_url(url)
    if sql:
        _print_sql(target, safe, revision)
        return
    before, after = _upgrade(target, safe, revision)
    if as_json:
        emit_json({"url": safe, "previous_revision": before, "revision": after,
                   "changed": before != after})
    elif before == after:
        click.echo(f"{safe} is already at revision {after}: nothing to do")
    elif before is None:
        click.echo(f"created the licenzy tables in {safe}: now at revision {after}")
    else:
        click.echo(f"upgraded {safe} from revision {before} to {after}")


def _print_sql(target: str, safe: str, revision: str) -> None:
    from alembic.util import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    from ..stores.sqlalchemy import migrate as run_migrations

    try:
        run_migrations(target, revision, sql=True, output=sys.stdout)
    except (SQLAlchemyError, CommandError) as exc:
        raise CommandFailed(f"cannot write the SQL for {safe}: {exc}") from exc


def _upgrade(target: str, safe: str, revision: str) -> tuple[str | None, str | None]:
    """The revision before and after the upgrade. Read apart from the upgrade (which runs
    under a lock): when another host migrates in between, the line tells what the database
    went through, not who did it."""
    from alembic.util import CommandError
    from sqlalchemy.exc import SQLAlchemyError

    from ..errors import StoreUnavailable
    from ..stores.sqlalchemy import create_engine, current_revision
    from ..stores.sqlalchemy import migrate as run_migrations

    try:
        engine = create_engine(target)
    except (ImportError, ValueError) as exc:  # the URL's driver is not installed
        raise UsageFailure(one_line(str(exc))) from None
    unreachable = "check the URL's host, port, user and password, and that the server runs"
    try:
        try:
            with engine.connect() as conn:
                before = current_revision(conn)
        except SQLAlchemyError as exc:
            reason = getattr(exc, "orig", None) or exc
            raise CommandFailed(f"cannot reach the database {safe}: {reason}",
                                unreachable) from exc
        if before is not None and before not in known_revisions():
            raise CommandFailed(f"{safe} is at revision {before}, newer than this "
                                "licenzy-embed knows", "upgrade the licenzy-embed package")
        try:
            after = run_migrations(engine, revision)
        except StoreUnavailable as exc:
            raise CommandFailed(f"cannot reach the database {safe}: {exc.message}",
                                unreachable) from exc
        except (SQLAlchemyError, CommandError) as exc:
            raise CommandFailed(f"migrating {safe} failed: {exc}") from exc
    finally:
        engine.dispose()
    return before, after


def known_revisions() -> set[str]:
    """Every revision the bundled migrations define."""
    from alembic.script import ScriptDirectory

    from ..stores.sqlalchemy import alembic_config

    script = ScriptDirectory.from_config(alembic_config())
    return {r.revision for r in script.walk_revisions()}


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    from ..stores.sqlalchemy import alembic_config

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


COMMANDS = (migrate,)
