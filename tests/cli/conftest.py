"""The CLI through click's ``CliRunner``, on SQLite and PostgreSQL (the databases of
``tests/sql/databases.py``: a missing server skips, or fails under
``LICENZY_REQUIRE_SERVICES=1``)."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from click.testing import CliRunner

from licenzy_embed import Licenzy
from licenzy_embed.cli import cli

from ..sql import conftest as sql_fixtures
from . import apps

APP = "tests.cli.apps:make_lz"
BACKENDS = [
    pytest.param("sqlite", id="sqlite"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
]


@dataclass
class Outcome:
    """What one invocation printed, and its exit status."""

    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None

    def json(self) -> Any:
        """The one JSON document on stdout."""
        return json.loads(self.stdout)

    def error_line(self) -> str:
        """The single line an expected error prints on stderr (and nothing on stdout)."""
        assert self.stdout == "", self.stdout
        lines = self.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("licenzy-embed: "), self.stderr
        return lines[0]


def invoke(*args: str, env: dict[str, str | None] | None = None,
           app: str | None = APP) -> Outcome:
    options: dict[str, Any] = {}
    if "mix_stderr" in inspect.signature(CliRunner).parameters:  # click 8.1
        options["mix_stderr"] = False
    runner = CliRunner(**options)
    argv = (["--app", app] if app is not None else []) + list(args)
    # LICENZY_APP of the developer's shell must not leak into a test.
    result = runner.invoke(cli, argv, env={"LICENZY_APP": None, **(env or {})})
    unexpected = result.exception is not None and not isinstance(result.exception, SystemExit)
    if unexpected and "--traceback" not in argv:
        raise result.exception  # a traceback where one line was due: a bug
    return Outcome(result.exit_code, result.stdout, result.stderr,
                   None if isinstance(result.exception, SystemExit) else result.exception)


Run = Callable[..., Outcome]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The CLI's backends (no MariaDB): overrides ``tests/sql``'s, whose ``db_url`` and
    ``empty_url`` fixtures the CLI tests share."""
    return str(request.param)


db_url = sql_fixtures.db_url
empty_url = sql_fixtures.empty_url


@pytest.fixture
def run(db_url: str) -> Run:
    """``run("access", "user_1", "--json")``: the CLI with ``--app`` on ``db_url``."""

    def run_(*args: str, env: dict[str, str | None] | None = None,
             app: str | None = APP) -> Outcome:
        return invoke(*args, env={apps.DATABASE_ENV: db_url, **(env or {})}, app=app)

    return run_


@pytest.fixture
def lz(db_url: str) -> Iterator[Licenzy]:
    """The app as the CLI sees it, for arranging state and reading it back."""
    licenzy = apps.build(db_url)
    yield licenzy
    licenzy.store.close()  # type: ignore[attr-defined]
