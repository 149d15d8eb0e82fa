"""The ``LICENZY`` setting, read once and checked when the app is loaded.

A mistake (a typo in a key, a dotted path that does not import, an INSTANCE that is not a
``Licenzy``) raises ``ImproperlyConfigured`` from ``AppConfig.ready()`` — at startup, not on
the first paying request. The resolved settings are cached and dropped again when a test
changes ``LICENZY`` with ``override_settings``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string

from licenzy_embed.errors import LicenzyError
from licenzy_embed.licenzy import Licenzy

from .. import _common

SubjectResolver = Callable[[HttpRequest], object]
DenialHandler = Callable[[HttpRequest, LicenzyError], HttpResponse]

KEYS = frozenset({"INSTANCE", "SUBJECT_RESOLVER", "DENIAL_HANDLER", "WEBHOOK_MAX_BYTES",
                  "CHECKOUT_MAX_BYTES"})


def default_subject(request: HttpRequest) -> object:
    """``request.user.pk`` when someone is signed in (AuthenticationMiddleware), else None."""
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        return user.pk
    return None


@dataclass(frozen=True)
class LicenzySettings:
    licenzy: Licenzy
    subject_resolver: SubjectResolver
    denial_handler: DenialHandler | None
    webhook_max_bytes: int = _common.WEBHOOK_MAX_BYTES
    checkout_max_bytes: int = _common.CHECKOUT_MAX_BYTES


def _limit(config: dict[str, Any], key: str, default: int) -> int:
    try:
        return _common.check_limit(config.get(key, default), f"LICENZY[{key!r}]")
    except ValueError as exc:
        raise ImproperlyConfigured(str(exc)) from None


def _load(value: Any, key: str) -> Any:
    if isinstance(value, str):
        try:
            return import_string(value)
        except ImportError as exc:
            raise ImproperlyConfigured(f"LICENZY[{key!r}]: cannot import {value!r}: {exc}") from exc
    return value


def _callable(value: Any, key: str) -> Any:
    loaded = _load(value, key)
    if not callable(loaded):
        raise ImproperlyConfigured(f"LICENZY[{key!r}] must be a callable or its dotted path")
    return loaded


def read_settings() -> LicenzySettings:
    config = getattr(settings, "LICENZY", None)
    if not isinstance(config, dict):
        raise ImproperlyConfigured(
            'settings.LICENZY must be a dict, e.g. {"INSTANCE": "myproject.billing.lz"}')
    unknown = set(config) - KEYS
    if unknown:
        raise ImproperlyConfigured(f"unknown LICENZY keys {sorted(unknown)}; "
                                   f"expected some of {sorted(KEYS)}")
    if "INSTANCE" not in config:
        raise ImproperlyConfigured('LICENZY["INSTANCE"] is required: a Licenzy instance, a '
                                   "factory returning one, or the dotted path of either")
    instance = _load(config["INSTANCE"], "INSTANCE")
    if not isinstance(instance, Licenzy):
        if not callable(instance):
            raise ImproperlyConfigured('LICENZY["INSTANCE"] must be a Licenzy or a factory')
        instance = instance()
        if not isinstance(instance, Licenzy):
            raise ImproperlyConfigured('the LICENZY["INSTANCE"] factory must return a Licenzy, '
                                       f"not {type(instance).__name__}")
    resolver = config.get("SUBJECT_RESOLVER")
    handler = config.get("DENIAL_HANDLER")
    return LicenzySettings(
        licenzy=instance,
        subject_resolver=default_subject if resolver is None
        else _callable(resolver, "SUBJECT_RESOLVER"),
        denial_handler=None if handler is None else _callable(handler, "DENIAL_HANDLER"),
        webhook_max_bytes=_limit(config, "WEBHOOK_MAX_BYTES", _common.WEBHOOK_MAX_BYTES),
        checkout_max_bytes=_limit(config, "CHECKOUT_MAX_BYTES", _common.CHECKOUT_MAX_BYTES),
    )


_lock = threading.Lock()
_cached: LicenzySettings | None = None


def get_settings() -> LicenzySettings:
    global _cached
    current = _cached
    if current is None:
        with _lock:  # a factory must run once even when the first requests race
            if _cached is None:
                _cached = read_settings()
                from .signals import bridge

                bridge(_cached.licenzy)  # its change events reach the Django signal too
            current = _cached
    return current


def get_licenzy() -> Licenzy:
    """The configured ``Licenzy`` instance, for code that calls it directly (grants, usage)."""
    return get_settings().licenzy


def _reset(*, setting: str, **kwargs: Any) -> None:
    global _cached
    if setting == "LICENZY":
        with _lock:
            _cached = None


setting_changed.connect(_reset, dispatch_uid="licenzy_embed.integrations.django.conf")
