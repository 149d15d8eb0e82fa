"""``requires_access`` and ``consumes_usage`` for Django views, sync and async.

The wrapper is chosen once, when decorating (``iscoroutinefunction``). In async views the
subject resolver runs through ``sync_to_async`` on Django's sync thread (it may load
``request.user`` from the database), and the store calls run in a worker thread so they never
block the event loop. For class-based views use ``method_decorator(requires_access,
name="dispatch")``.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any, TypeVar, cast, overload

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponse

from licenzy_embed.errors import LicenzyError
from licenzy_embed.usage import Reservation

from .. import _common
from .._common import Units
from .conf import get_settings
from .views import current_subject, deny

F = TypeVar("F", bound=Callable[..., Any])


def _preflight() -> HttpResponse:
    # Django hands OPTIONS to every function view: answering it here keeps the protected view
    # from running unguarded (CORS middleware such as django-cors-headers adds its headers).
    return HttpResponse()


def _check(subject: object, feature: str | None = None) -> None:
    _common.check_access(get_settings().licenzy, subject, feature)


@overload
def requires_access(view: F) -> F: ...
@overload
def requires_access(view: str | None = None, *,
                    feature: str | None = None) -> Callable[[F], F]: ...


def requires_access(view: F | str | None = None, *,
                    feature: str | None = None) -> F | Callable[[F], F]:
    """Let the view run only for a subject with access; ``@requires_access``,
    ``@requires_access()`` or, for one feature, ``@requires_access("reports")``. Denials: 401
    without a subject, 402 without access (``upgrade`` names what to buy), 503 when the
    store is down — never an unguarded view."""
    if isinstance(view, str):
        view, feature = None, view
    feature = _common.check_name(feature, "feature", "requires_access")

    def decorate(func: F) -> F:
        if iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                if request.method in _common.PREFLIGHT_METHODS:
                    return _preflight()
                try:
                    subject = await sync_to_async(current_subject)(request)
                    await sync_to_async(_check, thread_sensitive=False)(subject, feature)
                except LicenzyError as error:
                    return await sync_to_async(deny)(request, error)
                return await func(request, *args, **kwargs)

            return cast(F, async_wrapper)

        @functools.wraps(func)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            if request.method in _common.PREFLIGHT_METHODS:
                return _preflight()
            try:
                _check(current_subject(request), feature)
            except LicenzyError as error:
                return deny(request, error)
            return func(request, *args, **kwargs)

        return cast(F, wrapper)

    return decorate(view) if view is not None else decorate


def _reserve(subject: object, amount: int, key: str, client_key: str | None,
             meter: str = "units") -> Reservation:
    return _common.reserve(get_settings().licenzy, subject, amount, key, client_key, meter)


def _request_terms(request: HttpRequest, units: Units[HttpRequest],
                   view: str) -> tuple[object, int, str, str | None]:
    """The subject, the units, the hold key and the client's key of this request (may touch
    the database)."""
    client_key = request.headers.get(_common.IDEMPOTENCY_HEADER)
    key = _common.hold_key(view, client_key)
    return current_subject(request), _common.resolve_units(units, request), key, client_key


async def _in_pool(func: Callable[[], Any]) -> Any:
    # Django's own pool for thread-insensitive work: the store call never blocks the loop.
    return await sync_to_async(func, thread_sensitive=False)()


async def _shielded(func: Callable[[], Any]) -> Any:
    # A cancelled request (the client went away) still gives its units back.
    return await asyncio.shield(_in_pool(func))


def _close(response: HttpResponse) -> None:
    response.close()


def consumes_usage(units: Units[HttpRequest], *, meter: str = "units") -> Callable[[F], F]:
    """Charge ``units`` of ``meter`` (an int, or a function of the request) for each
    successful call.

    Held before the view runs (409 when the subject has too few, 402 when it has nothing to
    spend from), committed when the view answers 2xx/3xx, given back when it raises or
    answers 4xx/5xx. The hold is
    ``request.licenzy_reservation``; the view may ``commit(units=n)`` it for fewer units. A
    retry with the same ``Idempotency-Key`` header is not charged again."""
    _common.check_units(units)
    meter = _common.check_name(meter, "meter", "consumes_usage") or "units"

    def decorate(func: F) -> F:
        view = _common.view_id(func)
        if iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                if request.method in _common.PREFLIGHT_METHODS:
                    return _preflight()
                try:
                    subject, amount, key, client_key = await sync_to_async(_request_terms)(
                        request, units, view)
                except LicenzyError as error:
                    return await sync_to_async(deny)(request, error)

                def reserve() -> Reservation:
                    reservation = _reserve(subject, amount, key, client_key, meter)
                    request.licenzy_reservation = reservation  # type: ignore[attr-defined, unused-ignore]
                    return reservation

                async def run(reservation: Reservation) -> HttpResponse:
                    response: HttpResponse = await func(request, *args, **kwargs)
                    return response

                outcome = await _common.metered_async(
                    reserve, run, lambda response: response.status_code,
                    offload=_in_pool, shielded=_shielded, discard=_close)
                if isinstance(outcome, _common.Denied):
                    return await sync_to_async(deny)(request, outcome.error)
                return outcome

            return cast(F, async_wrapper)

        @functools.wraps(func)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            if request.method in _common.PREFLIGHT_METHODS:
                return _preflight()

            def reserve() -> Reservation:
                reservation = _reserve(*_request_terms(request, units, view), meter)
                request.licenzy_reservation = reservation  # type: ignore[attr-defined, unused-ignore]
                return reservation

            outcome = _common.metered(
                reserve, lambda reservation: func(request, *args, **kwargs),
                lambda response: response.status_code, discard=_close)
            if isinstance(outcome, _common.Denied):
                return deny(request, outcome.error)
            return outcome

        return cast(F, wrapper)

    return decorate
