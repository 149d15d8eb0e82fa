"""``licenzy-embed migrate``: it says whether it created the tables or found them up to date,
takes URLs as people write them (``postgres://``, ``mysql://``), and every expected failure —
a bad or unsupported URL, a missing driver, an unreachable server, a pipe closed early — is one
line without a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from licenzy_embed.cli.migrate import head_revision
from licenzy_embed.stores import _sql_schema as schema

from ..sql.databases import LICENZY_TABLES, tables
from .conftest import invoke

SCRIPT = Path(sys.executable).parent / "licenzy-embed"


HEAD = head_revision()


def test_migrate_says_what_it_did(empty_url: str) -> None:
    safe = make_url(empty_url).render_as_string(hide_password=True)
    first = invoke("migrate", "--url", empty_url, app=None)
    assert (first.exit_code, first.stderr) == (0, "")
    assert first.stdout == f"created the licenzy tables in {safe}: now at revision {HEAD}\n"
    assert tables(empty_url) == LICENZY_TABLES | {schema.VERSION_TABLE}

    again = invoke("migrate", "--url", empty_url, app=None)
    assert again.exit_code == 0
    assert again.stdout == f"{safe} is already at revision {HEAD}: nothing to do\n"


def test_migrate_json(empty_url: str) -> None:
    first = invoke("migrate", "--url", empty_url, "--json", app=None)
    assert first.json() == {"url": make_url(empty_url).render_as_string(hide_password=True),
                            "previous_revision": None, "revision": HEAD, "changed": True}
    again = invoke("migrate", "--url", empty_url, "--json", app=None)
    assert (again.json()["previous_revision"], again.json()["changed"]) == (HEAD, False)


@pytest.mark.parametrize("backend", ["sqlite"])
def test_the_url_can_come_from_the_environment(empty_url: str) -> None:
    shown = invoke("migrate", app=None, env={"LICENZY_DATABASE_URL": empty_url})
    assert shown.exit_code == 0
    assert tables(empty_url) >= LICENZY_TABLES


def test_no_url_is_a_usage_error() -> None:
    shown = invoke("migrate", app=None, env={"LICENZY_DATABASE_URL": None})
    assert shown.exit_code == 2
    assert "a database URL is needed; pass --url URL or set $LICENZY_DATABASE_URL" in (
        shown.error_line())


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"])
@pytest.mark.parametrize("scheme", ["postgres", "postgresql"])
def test_postgres_urls_as_heroku_and_libpq_write_them(empty_url: str, scheme: str) -> None:
    url = make_url(empty_url)
    assert url.drivername == "postgresql+psycopg"
    plain = url.set(drivername=scheme).render_as_string(hide_password=False)
    shown = invoke("migrate", "--url", plain, app=None)
    assert shown.exit_code == 0, shown.stderr
    assert "created the licenzy tables in postgresql+psycopg://" in shown.stdout
    assert tables(empty_url) >= LICENZY_TABLES


@pytest.mark.parametrize("url", [
    "postgres://postgres@127.0.0.1:1/licenzy_test",
    "postgresql://postgres@127.0.0.1:1/licenzy_test",
    "postgresql+psycopg://postgres:s3cret@127.0.0.1:1/licenzy_test",
    "mysql://root@127.0.0.1:1/licenzy_test",  # PyMySQL is installed: no "install [mysql]"
    "mariadb://root@127.0.0.1:1/licenzy_test",
])
def test_an_unreachable_server_is_one_line(url: str) -> None:
    shown = invoke("migrate", "--url", url, app=None)
    assert shown.exit_code == 1
    line = shown.error_line()
    assert "cannot reach the database" in line and "that the server runs" in line
    assert "pip install" not in line and "unsupported" not in line
    assert "s3cret" not in line


def test_an_unopenable_sqlite_file_is_one_line(tmp_path: Path) -> None:
    shown = invoke("migrate", "--url", f"sqlite:///{tmp_path}/no/such/folder/x.db", app=None)
    assert shown.exit_code == 1
    assert "cannot reach the database" in shown.error_line()


@pytest.mark.parametrize("url, says", [
    ("oracle://scott:tiger@db/orcl", "unsupported database 'oracle' in oracle://scott:***@"),
    ("mssql+pyodbc://u@dsn", "unsupported database 'mssql'"),
    ("redis://localhost:6379/0", "unsupported database 'redis'"),
    ("not a url", "'not a url' is not a database URL; write it as sqlite:///licenzy.db"),
    ("/var/lib/licenzy.db", "is not a database URL"),
])
def test_an_unsupported_or_malformed_url_is_a_usage_error(url: str, says: str) -> None:
    shown = invoke("migrate", "--url", url, app=None)
    assert shown.exit_code == 2
    line = shown.error_line()
    assert says in line
    assert "tiger" not in line


def test_a_missing_driver_says_what_to_install() -> None:
    pytest.importorskip("sqlalchemy.dialects.postgresql.pg8000")
    try:
        import pg8000  # noqa: F401
    except ImportError:
        pass
    else:  # pragma: no cover - only where pg8000 happens to be installed
        pytest.skip("pg8000 is installed here")
    shown = invoke("migrate", "--url", "postgresql+pg8000://u@127.0.0.1:1/db", app=None)
    assert shown.exit_code == 2
    line = shown.error_line()
    assert "the database driver for 'postgresql+pg8000' is not installed" in line


def test_a_database_newer_than_the_package_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'future.db'}"
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                f"CREATE TABLE {schema.VERSION_TABLE} (version_num VARCHAR(32) NOT NULL)")
            conn.exec_driver_sql(f"INSERT INTO {schema.VERSION_TABLE} VALUES ('9999')")
    finally:
        engine.dispose()
    shown = invoke("migrate", "--url", url, app=None)
    assert shown.exit_code == 1
    assert "is at revision 9999, newer than this licenzy-embed knows; upgrade the " \
           "licenzy-embed package" in shown.error_line()


def test_sql_prints_and_runs_nothing(empty_url: str) -> None:
    shown = invoke("migrate", "--url", empty_url, "--sql", app=None)
    assert shown.exit_code == 0
    assert "CREATE TABLE licenzy_entitlements" in shown.stdout
    assert "CREATE INDEX ix_licenzy_entitlements_subject" in shown.stdout
    assert tables(empty_url) == set()
    both = invoke("migrate", "--url", empty_url, "--sql", "--json", app=None)
    assert both.exit_code == 2
    assert "use one of --sql and --json" in both.error_line()


def test_sql_into_a_pipe_closed_early_ends_quietly(tmp_path: Path) -> None:
    # As `licenzy-embed migrate --sql | head -1`, without the race: the reading end is
    # closed before the command writes anything, so every write meets a broken pipe.
    process = subprocess.Popen(
        [str(SCRIPT), "migrate", "--url", f"sqlite:///{tmp_path / 'x.db'}", "--sql"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert process.stdout is not None and process.stderr is not None
    process.stdout.close()
    stderr = process.stderr.read().decode()
    process.stderr.close()
    assert process.wait(timeout=120) == 1
    assert stderr == ""


def test_the_console_script_is_installed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'console.db'}"
    done = subprocess.run([str(SCRIPT), "migrate", "--url", url], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("created the licenzy tables in sqlite:///")
    assert tables(url) >= LICENZY_TABLES
    shown = subprocess.run([str(SCRIPT), "migrate", "--help"], capture_output=True, text=True,
                           check=True)
    assert "--sql" in shown.stdout
    usage = subprocess.run([str(SCRIPT), "migrate", "--url", "oracle://x"], capture_output=True,
                           text=True, check=False)
    assert usage.returncode == 2 and "Traceback" not in usage.stderr


def test_main_returns_the_exit_status(tmp_path: Path) -> None:
    from licenzy_embed.cli import main

    assert main(["migrate", "--url", f"sqlite:///{tmp_path / 'm.db'}"]) == 0
    assert main(["migrate", "--url", "oracle://x"]) == 2
    assert main(["--help"]) == 0
