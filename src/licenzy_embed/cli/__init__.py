"""The ``licenzy-embed`` command line: migrations, a production check-up, and what support
needs to look a customer up and fix one without writing Python.

``licenzy-embed [--app module:attr] COMMAND …``. The app is found as ``flask --app`` finds
one (see :mod:`._app`); ``migrate`` needs none. Each command group lives in its own module
and lists its click commands (or a click group of subcommands) in ``COMMANDS``; a new group is
one more module in ``COMMAND_MODULES`` whose commands take the app's ``Licenzy`` with
``@pass_licenzy``, share arguments from :mod:`._params`, print through :mod:`._output` (with
``--json``: one document on stdout) and raise ``CommandFailed``/``UsageFailure`` — or let a
``LicenzyError`` through: the root group turns it into one line.

Exit status: 0 ok; 1 a check or the command failed (nothing on stdout, one line on stderr —
also when stdout is a pipe closed early, as by ``| head``); 2 the command line is wrong (a
missing or bad argument, no app, an unusable URL, a value the library refuses as invalid),
and nothing was changed.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click

from ..errors import LicenzyError
from . import admin, customers, doctor, events, migrate, prune, reconcile
from ._app import APP_ENV, AppLocation, pass_licenzy
from ._output import FAILED, OK, PROG, CommandFailed, UsageFailure, failure_for
from .migrate import URL_ENV

__all__ = ["APP_ENV", "URL_ENV", "CommandFailed", "UsageFailure", "cli", "main",
           "pass_licenzy"]

COMMAND_MODULES = (migrate, doctor, customers, admin, reconcile, events, prune)

EPILOG = f"""\b
Exit status: 0 ok; 1 a check or the command failed; 2 a usage error (nothing changed).
With --json a command prints one JSON document on stdout; logs go to stderr.
Examples:
  {PROG} --app myapp.billing:lz access user_42
  {PROG} migrate --url postgresql://app@db/app
  {PROG} --app myapp.billing:lz reconcile --since 7d --dry-run
  {PROG} --app myapp.billing:lz events deliver
  {PROG} --app myapp.billing:lz prune --dry-run
"""


class _RootGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LicenzyError as exc:
            location = ctx.find_object(AppLocation)
            if location is not None and location.traceback:
                raise
            raise failure_for(exc) from exc
        finally:
            # A pipe closed early (`| head`) fails here, inside click's quiet EPIPE handling,
            # and not in the interpreter's final flush, which would print a traceback.
            sys.stdout.flush()


@click.group(cls=_RootGroup, epilog=EPILOG,
             context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--app", "app", metavar="MODULE:ATTR", envvar=APP_ENV,
              help="The app's Licenzy, or a function building one: myapp.billing:lz "
                   f"(default: ${APP_ENV}).")
@click.option("--traceback", is_flag=True,
              help="Show the full traceback of an error instead of one line.")
@click.version_option(package_name="licenzy-embed", prog_name=PROG)
@click.pass_context
def cli(ctx: click.Context, app: str | None, traceback: bool) -> None:
    """licenzy-embed: Stripe payment -> entitlement -> access, in your app."""
    location = AppLocation(app, traceback=traceback)
    ctx.obj = location
    ctx.call_on_close(location.close)


for _module in COMMAND_MODULES:
    for _command in _module.COMMANDS:
        cli.add_command(_command)


def main(argv: Sequence[str] | None = None) -> int:
    """The console script: run one command and return its exit status."""
    try:
        cli.main(args=None if argv is None else list(argv), prog_name=PROG)
    except SystemExit as exc:
        if exc.code is None:
            return OK
        return exc.code if isinstance(exc.code, int) else FAILED
    return OK  # pragma: no cover - click's standalone mode always exits


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
