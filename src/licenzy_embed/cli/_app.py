"""Finding the app's ``Licenzy``, the way ``flask --app`` finds a Flask app.

``--app myapp.billing:lz`` (or ``LICENZY_APP``) names a module importable from the current
folder and an attribute of it: a ``Licenzy``, or a function taking no arguments that builds
one. ``--app myapp.billing`` alone looks for ``lz``, then ``licenzy``. The app is loaded only by
the commands that need it, so ``migrate --url …`` works without one.
"""

from __future__ import annotations

import functools
import importlib
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar, cast

import click

from ..licenzy import Licenzy
from ._output import PROG, CommandFailed, UsageFailure

APP_ENV = "LICENZY_APP"
DEFAULT_ATTRIBUTES = ("lz", "licenzy")
F = TypeVar("F", bound=Callable[..., Any])


class AppLocation:
    """The ``--app`` of one invocation; ``load()`` imports and builds it once."""

    def __init__(self, spec: str | None, *, traceback: bool = False) -> None:
        self.spec = spec
        self.traceback = traceback
        self._licenzy: Licenzy | None = None
        self._built = False

    def load(self) -> Licenzy:
        if self._licenzy is None:
            self._licenzy, self._built = locate(self.spec, traceback=self.traceback)
        return self._licenzy

    def close(self) -> None:
        """Close the store of a Licenzy a factory built for this command (nothing else
        would); an instance the module holds is the module's to close."""
        if self._licenzy is not None and self._built:
            closer = getattr(self._licenzy.store, "close", None)
            if callable(closer):
                closer()


def locate(spec: str | None, *, traceback: bool = False) -> tuple[Licenzy, bool]:
    """The ``Licenzy`` that ``spec`` names, and whether it was built by a factory."""
    if not spec or not spec.strip():
        raise UsageFailure(f"no app given: pass --app module:attribute "
                           f"(e.g. {PROG} --app myapp.billing:lz …) or set {APP_ENV}")
    module_name, _, attribute = spec.strip().partition(":")
    if not module_name or (attribute == "" and spec.strip().endswith(":")):
        raise UsageFailure(f"--app {spec!r} is not module:attribute",
                           "write it as myapp.billing:lz")
    module = _import(module_name, spec, traceback)
    names = (attribute,) if attribute else DEFAULT_ATTRIBUTES
    for name in names:
        if name.isidentifier() and hasattr(module, name):
            found = getattr(module, name)
            break
    else:
        if attribute:
            raise UsageFailure(f"module {module_name} has no attribute {attribute!r} "
                               f"(from --app {spec})",
                               "name the attribute that holds the Licenzy or builds it")
        raise UsageFailure(f"module {module_name} has no attribute lz or licenzy "
                           f"(from --app {spec})", f"pass --app {module_name}:ATTRIBUTE")
    if isinstance(found, Licenzy):
        return found, False
    if not callable(found):
        raise UsageFailure(f"{spec} is a {type(found).__name__}, not a Licenzy",
                           "point --app at the Licenzy or at a function that builds one")
    try:
        built = found()
    except Exception as exc:
        if traceback:
            raise
        raise CommandFailed(f"building the app's Licenzy with {spec}() failed: "
                            f"{type(exc).__name__}: {exc}",
                            "fix the app's configuration, or add --traceback to see where"
                            ) from exc
    if not isinstance(built, Licenzy):
        raise UsageFailure(f"{spec}() returned a {type(built).__name__}, not a Licenzy",
                           "point --app at the Licenzy or at a function that builds one")
    return built, True


def _import(module_name: str, spec: str, traceback: bool) -> Any:
    # As flask does: the app's module is found from the folder the command runs in.
    here = os.getcwd()
    if here not in sys.path:
        sys.path.insert(0, here)
    try:
        return importlib.import_module(module_name)
    except Exception as exc:
        if traceback:
            raise
        missing = exc.name if isinstance(exc, ModuleNotFoundError) else None
        if missing and (module_name == missing or module_name.startswith(missing + ".")):
            raise UsageFailure(f"cannot import {module_name!r} (from --app {spec}): "
                               f"no module named {missing!r}",
                               "run the command from the app's folder or fix the module path"
                               ) from None
        # The module exists and failed: a missing dependency or a configuration error.
        raise CommandFailed(f"importing {module_name} failed: {type(exc).__name__}: {exc}",
                            "fix the app module, or add --traceback to see where") from exc


def pass_licenzy(command: F) -> F:
    """Give a command the app's ``Licenzy`` as its first argument (loaded on first use)."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        location = click.get_current_context().find_object(AppLocation)
        if location is None:  # pragma: no cover - the root group always sets one
            raise UsageFailure("no app given", f"pass --app or set {APP_ENV}")
        return command(location.load(), *args, **kwargs)

    return cast(F, wrapper)
