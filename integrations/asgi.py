"""ASGI adapter: Starlette routes to ``Mount``, endpoint decorators, and FastAPI dependencies.

Starlette::

    from licenzy_embed.integrations.asgi import LicenzyASGI, consumes_usage, requires_access

    billing = LicenzyASGI(lz, subject_resolver=current_subject)
    app = Starlette(routes=[Mount("/billing", routes=billing.routes), Route("/report", report)])
    app.state.licenzy = billing           # how the decorators find it, per request

    @requires_access
    async def report(request): ...

FastAPI::

    router = APIRouter(route_class=LicenzyRoute)

    @router.post("/generate")
    async def generate(hold: Reservation = Depends(consume_usage(billing, 10))): ...

Blocking store work runs in a worker thread (``anyio.to_thread``) from async endpoints; sync
endpoints already run in Starlette's thread pool and call the store directly. A store that
never waits (``InMemoryStore``, whose ``blocking`` is False) is called on the event loop: a
thread hop would cost more than the call.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar, cast, overload

try:
    import anyio
    import anyio.from_thread
    import anyio.lowlevel
    import anyio.to_thread
    from starlette.exceptions import HTTPException
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import BaseRoute, Route
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "licenzy_embed.integrations.asgi needs Starlette: pip install 'licenzy-embed[asgi]'"
    ) from exc

try:
    from fastapi.routing import APIRoute

    _HAS_FASTAPI = True
except ImportError:  # pragma: no cover - FastAPI is optional on top of Starlette
    _HAS_FASTAPI = False

from licenzy_embed.errors import AccessDenied, LicenzyError, Unauthenticated
from licenzy_embed.licenzy import Licenzy
from licenzy_embed.usage import Reservation

from . import _common
from ._common import Units

__all__ = [
    "AccessDenied",
    "LicenzyASGI",
    "LicenzyDenied",
    "Unauthenticated",
    "consume_usage",
    "consumes_usage",
    "default_subject",
    "denial_exception_handler",
    "licenzy_routes",
    "require_access",
    "requires_access",
]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")
SubjectResolver = Callable[[Request], "object | Awaitable[object]"]
DenialHandler = Callable[[Request, LicenzyError], Response]

# Where LicenzyRoute collects the holds its request's dependencies took.
_HOLDS_KEY = "licenzy.holds"


def default_subject(request: Request) -> object:
    """The subject when no resolver is given: ``request.state.licenzy_subject`` when a
    middleware or dependency set it, else the authenticated user's ``identity``
    (AuthenticationMiddleware), else nobody (401)."""
    subject = getattr(request.state, "licenzy_subject", None)
    if subject is not None:
        return subject
    user = request.scope.get("user")
    if user is not None and getattr(user, "is_authenticated", False):
        return user.identity
    return None


def default_denial(request: Request, error: LicenzyError) -> Response:
    status, body = _common.denial(error)
    return JSONResponse(body, status_code=status)


async def _in_thread(func: Callable[..., T], *args: Any) -> T:
    return await anyio.to_thread.run_sync(func, *args)


async def _shielded(func: Callable[[], T]) -> T:
    # Shielded: a cancelled request (the client went away) still gives its units back.
    with anyio.CancelScope(shield=True):
        result = await anyio.to_thread.run_sync(func)
    return result


async def _on_loop(func: Callable[..., T], *args: Any) -> T:
    # A store that never waits (``blocking = False``): a worker thread would cost more than
    # the call.
    return func(*args)


async def _on_loop_checked(func: Callable[..., T], *args: Any) -> T:
    # A hold's reserve and settle: the checkpoint first is where a request given up meanwhile
    # is cancelled — as it would be awaiting the thread — so its hold is given back, never
    # committed. (A plain check needs none: it charges nothing.)
    await anyio.lowlevel.checkpoint()
    return func(*args)


async def _on_loop_shielded(func: Callable[[], T]) -> T:
    # No checkpoint: a release must run even for a cancelled request (the call has no await,
    # so nothing can interrupt it).
    return func()


def _cancelled() -> bool:
    """In a worker thread of ``anyio.to_thread``: was the request awaiting it cancelled?

    AnyIO lets such a thread run to its end after its task was cancelled (a timeout, a server
    giving up on the request); the hold must then be released, not committed."""
    try:
        anyio.from_thread.check_cancelled()
    except RuntimeError:  # not an AnyIO worker thread
        return False
    except BaseException:  # the backend's cancellation exception
        return True
    return False


async def _body(request: Request, limit: int) -> bytes:
    """The body, refused (413) by its Content-Length before any of it is read, or as soon as
    a chunked stream passes the limit; never more than the limit is held in memory."""
    _common.check_declared_length(request.headers.get("content-length"), limit)
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _common.too_large(limit)
        parts.append(chunk)
    return b"".join(parts)


def _status_of(result: object) -> int:
    # A FastAPI endpoint may return plain data, which FastAPI then answers with 200.
    return result.status_code if isinstance(result, Response) else 200


class LicenzyDenied(HTTPException):
    """A denial raised by a FastAPI dependency, carrying the response to answer.

    It is an ``HTTPException`` so that even without :class:`LicenzyRoute` or
    :func:`denial_exception_handler` the client gets the right status (with FastAPI's
    ``{"detail": ...}`` body); with either, it gets the standard denial JSON."""

    def __init__(self, error: LicenzyError, response: Response) -> None:
        super().__init__(status_code=error.status, detail=error.message)
        self.error = error
        self.response = response


async def denial_exception_handler(request: Request, exc: Exception) -> Response:
    """``app.add_exception_handler(LicenzyDenied, denial_exception_handler)``."""
    if not isinstance(exc, LicenzyDenied):  # pragma: no cover - registered for LicenzyDenied
        raise exc
    return exc.response


class LicenzyASGI:
    """The configuration the routes, decorators and dependencies share: the ``Licenzy``
    instance, how to find the request's subject, and how to answer a denial.

    ``subject_resolver(request)`` may be sync or async; it returns a str, an int or None.
    ``denial_handler(request, error)`` returns the Response to send instead of the JSON.
    ``webhook_max_bytes`` and ``checkout_max_bytes`` cap the routes' bodies (413 above)."""

    def __init__(self, lz: Licenzy, *, subject_resolver: SubjectResolver | None = None,
                 denial_handler: DenialHandler | None = None,
                 webhook_max_bytes: int = _common.WEBHOOK_MAX_BYTES,
                 checkout_max_bytes: int = _common.CHECKOUT_MAX_BYTES) -> None:
        if not isinstance(lz, Licenzy):
            raise ValueError("lz must be a licenzy_embed.Licenzy")
        if subject_resolver is not None and not callable(subject_resolver):
            raise ValueError("subject_resolver must be callable")
        if denial_handler is not None and not callable(denial_handler):
            raise ValueError("denial_handler must be callable")
        self.lz = lz
        self.webhook_max_bytes = _common.check_limit(webhook_max_bytes, "webhook_max_bytes")
        self.checkout_max_bytes = _common.check_limit(checkout_max_bytes, "checkout_max_bytes")
        self.subject_resolver: SubjectResolver = subject_resolver or default_subject
        self.denial_handler: DenialHandler = denial_handler or default_denial
        self._async_resolver = inspect.iscoroutinefunction(self.subject_resolver) or (
            inspect.iscoroutinefunction(type(self.subject_resolver).__call__))
        # Where store calls run from async endpoints: a worker thread, unless the store says
        # it never waits (InMemoryStore), whose calls then run on the event loop.
        self._on_loop = getattr(lz.store, "blocking", True) is False

    async def offload(self, func: Callable[..., T], *args: Any) -> T:
        """Run a blocking store call from an async endpoint (see the module docstring)."""
        if self._on_loop:
            return await _on_loop(func, *args)
        return await _in_thread(func, *args)

    async def offload_hold(self, func: Callable[..., T], *args: Any) -> T:
        """``offload`` for a hold's reserve and settle (see ``_on_loop_checked``)."""
        if self._on_loop:
            return await _on_loop_checked(func, *args)
        return await _in_thread(func, *args)

    async def shielded(self, func: Callable[[], T]) -> T:
        """``offload``, but a cancellation cannot stop it: a hold's release."""
        if self._on_loop:
            return await _on_loop_shielded(func)
        return await _shielded(func)

    # -- subjects and denials
    async def subject(self, request: Request) -> object:
        value = self.subject_resolver(request)
        if inspect.isawaitable(value):
            value = await value
        return value

    def subject_sync(self, request: Request) -> object:
        """For sync endpoints, which run in a worker thread of the event loop."""
        if self._async_resolver:
            return anyio.from_thread.run(self.subject, request)
        return self.subject_resolver(request)

    def deny(self, request: Request, error: LicenzyError) -> Response:
        return self.denial_handler(request, _common.public(error))

    # -- checks used by the decorators and dependencies
    async def check(self, request: Request, feature: str | None = None) -> str:
        """The subject_ref when the request's subject has access (to ``feature``, when one
        is named); raises the denial otherwise."""
        subject = await self.subject(request)
        return await self.offload(_common.check_access, self.lz, subject, feature)

    def reservation(self, request: Request, subject: object, units: Units[Request],
                    view: str, meter: str = "units") -> Callable[[], Reservation]:
        """The blocking reserve of this request's hold, for the lifecycle in ``_common``."""
        amount = _common.resolve_units(units, request)
        client_key = request.headers.get(_common.IDEMPOTENCY_HEADER)
        key = _common.hold_key(view, client_key)

        def reserve() -> Reservation:
            reservation = _common.reserve(self.lz, subject, amount, key, client_key, meter)
            request.state.licenzy_reservation = reservation
            return reservation

        return reserve

    # -- the mountable routes
    @property
    def routes(self) -> list[BaseRoute]:
        """``Mount("/billing", routes=billing.routes)``: POST webhooks/stripe, POST checkout,
        GET access (route names ``licenzy_webhook``, ``licenzy_checkout``,
        ``licenzy_access``)."""
        return [
            Route("/webhooks/stripe", self._webhook, methods=["POST"], name="licenzy_webhook"),
            Route("/checkout", self._checkout, methods=["POST"], name="licenzy_checkout"),
            Route("/access", self._access, methods=["GET"], name="licenzy_access"),
        ]

    async def _webhook(self, request: Request) -> Response:
        try:
            payload = await _body(request, self.webhook_max_bytes)  # the bytes Stripe signed
        except LicenzyError as error:
            status, body = _common.denial(error)
        else:
            status, body = await self.offload(_common.webhook, self.lz, payload,
                                            request.headers.get(_common.SIGNATURE_HEADER))
        return JSONResponse(body, status_code=status)

    async def _checkout(self, request: Request) -> Response:
        try:
            subject = await self.subject(request)
            raw = await _body(request, self.checkout_max_bytes)
            body = await self.offload(_common.checkout, self.lz, subject, raw,
                                    request.headers.get(_common.IDEMPOTENCY_HEADER))
        except LicenzyError as error:
            return self.deny(request, error)
        return JSONResponse(body)

    async def _access(self, request: Request) -> Response:
        try:
            body = await self.offload(_common.customer_access, self.lz,
                                    await self.subject(request))
        except LicenzyError as error:
            return self.deny(request, error)
        return JSONResponse(body)


def licenzy_routes(lz: Licenzy, *, subject_resolver: SubjectResolver | None = None,
                   denial_handler: DenialHandler | None = None,
                   webhook_max_bytes: int = _common.WEBHOOK_MAX_BYTES,
                   checkout_max_bytes: int = _common.CHECKOUT_MAX_BYTES) -> list[BaseRoute]:
    """The billing routes alone, for ``Mount("/billing", routes=licenzy_routes(lz))``."""
    return LicenzyASGI(lz, subject_resolver=subject_resolver, denial_handler=denial_handler,
                       webhook_max_bytes=webhook_max_bytes,
                       checkout_max_bytes=checkout_max_bytes).routes


def _config(request: Request) -> LicenzyASGI:
    app = request.scope.get("app")
    found = getattr(getattr(app, "state", None), "licenzy", None)
    if isinstance(found, Licenzy):
        return LicenzyASGI(found)
    if not isinstance(found, LicenzyASGI):
        # Fail closed: a protected endpoint never runs unguarded because setup was forgotten.
        raise RuntimeError("licenzy-embed decorators need app.state.licenzy = LicenzyASGI(lz) "
                           "(or the Licenzy instance itself)")
    return found


def _as_config(licenzy: Licenzy | LicenzyASGI) -> LicenzyASGI:
    return licenzy if isinstance(licenzy, LicenzyASGI) else LicenzyASGI(licenzy)


# --------------------------------------------------------------------------- decorators
def _request_index(func: Callable[..., Any], decorator: str) -> int:
    """Where the ``request`` argument is, found when decorating (as starlette's ``requires``
    does), so that a view without one fails at import time rather than on a request."""
    for index, name in enumerate(inspect.signature(func).parameters):
        if name == "request":
            return index
    raise TypeError(f'@{decorator} needs a "request" parameter on {func.__qualname__}')


def _preflight() -> Response:
    # Answered here, never by the protected endpoint: it must not run unguarded (see _common).
    return Response(status_code=200)


def _request_of(index: int, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Request:
    request = kwargs.get("request", args[index] if index < len(args) else None)
    if not isinstance(request, Request):
        raise TypeError(f'the "request" argument must be a Request, not {type(request).__name__}')
    return request


@overload
def requires_access(func: F) -> F: ...
@overload
def requires_access(func: str | None = None, *,
                    feature: str | None = None) -> Callable[[F], F]: ...


def requires_access(func: F | str | None = None, *,
                    feature: str | None = None) -> F | Callable[[F], F]:
    """Let the endpoint run only for a subject with access; ``@requires_access``,
    ``@requires_access()`` or, for one feature, ``@requires_access("reports")``, on async and
    sync endpoints. Denials: 401 without a subject, 402 without access (``upgrade`` names
    what to buy), 503 when the store is down."""
    if isinstance(func, str):
        func, feature = None, func
    feature = _common.check_name(feature, "feature", "requires_access")

    def decorate(endpoint: F) -> F:
        index = _request_index(endpoint, "requires_access")
        if inspect.iscoroutinefunction(endpoint):
            @functools.wraps(endpoint)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                request = _request_of(index, args, kwargs)
                if request.method in _common.PREFLIGHT_METHODS:
                    return _preflight()
                config = _config(request)
                try:
                    await config.check(request, feature)
                except LicenzyError as error:
                    return config.deny(request, error)
                return await endpoint(*args, **kwargs)

            return cast(F, async_wrapper)

        @functools.wraps(endpoint)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            request = _request_of(index, args, kwargs)
            if request.method in _common.PREFLIGHT_METHODS:
                return _preflight()
            config = _config(request)
            try:
                _common.check_access(config.lz, config.subject_sync(request), feature)
            except LicenzyError as error:
                return config.deny(request, error)
            return endpoint(*args, **kwargs)

        return cast(F, sync_wrapper)

    return decorate(func) if func is not None else decorate


def consumes_usage(units: Units[Request], *, meter: str = "units") -> Callable[[F], F]:
    """Charge ``units`` of ``meter`` (an int, or a function of the request) for each
    successful call.

    Held before the endpoint runs (409 when the subject has too few, 402 when it has nothing
    to spend from), committed when it answers 2xx/3xx, given back when it raises or answers
    4xx/5xx. The hold is
    ``request.state.licenzy_reservation``. A retry with the same ``Idempotency-Key`` header is
    not charged again."""
    _common.check_units(units)
    meter = _common.check_name(meter, "meter", "consumes_usage") or "units"

    def decorate(endpoint: F) -> F:
        index = _request_index(endpoint, "consumes_usage")
        view = _common.view_id(endpoint)
        if inspect.iscoroutinefunction(endpoint):
            @functools.wraps(endpoint)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                request = _request_of(index, args, kwargs)
                if request.method in _common.PREFLIGHT_METHODS:
                    return _preflight()
                config = _config(request)
                try:
                    reserve = config.reservation(request, await config.subject(request),
                                                 units, view, meter)
                except LicenzyError as error:
                    return config.deny(request, error)
                outcome = await _common.metered_async(
                    reserve, lambda reservation: endpoint(*args, **kwargs), _status_of,
                    offload=config.offload_hold, shielded=config.shielded,
                    abandoned=_cancelled)
                if isinstance(outcome, _common.Denied):
                    return config.deny(request, outcome.error)
                return outcome

            return cast(F, async_wrapper)

        @functools.wraps(endpoint)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            # In Starlette's thread pool: _cancelled() sees the request's task given up.
            request = _request_of(index, args, kwargs)
            if request.method in _common.PREFLIGHT_METHODS:
                return _preflight()
            config = _config(request)
            try:
                reserve = config.reservation(request, config.subject_sync(request), units,
                                             view, meter)
            except LicenzyError as error:
                return config.deny(request, error)
            outcome = _common.metered(
                reserve, lambda reservation: endpoint(*args, **kwargs), _status_of,
                abandoned=_cancelled)
            if isinstance(outcome, _common.Denied):
                return config.deny(request, outcome.error)
            return outcome

        return cast(F, sync_wrapper)

    return decorate


# --------------------------------------------------------------------------- FastAPI
def _with_subject(dependency: Callable[..., Awaitable[T]],
                  subject: Callable[..., Any] | None) -> Callable[..., Awaitable[T]]:
    """The signature FastAPI reads: ``request`` only, or ``request`` and a ``subject`` filled
    from the ``subject`` dependency (which may itself use OAuth2 schemes, sessions…)."""
    params = [inspect.Parameter("request", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                annotation=Request)]
    if subject is not None:
        from fastapi import Depends

        params.append(inspect.Parameter("subject", inspect.Parameter.KEYWORD_ONLY,
                                        default=Depends(subject), annotation=Any))
    dependency.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    return dependency


_NO_SUBJECT: Any = object()


def require_access(licenzy: Licenzy | LicenzyASGI, feature: str | None = None, *,
                   subject: Callable[..., Any] | None = None) -> Callable[..., Awaitable[str]]:
    """FastAPI dependency: ``Depends(require_access(lz))`` lets the path operation run only
    for a subject with access (``require_access(lz, "reports")``: to that feature), and gives
    it the subject_ref.

    ``subject`` is an optional FastAPI dependency returning the subject; without it the
    configuration's ``subject_resolver`` is used. A denial raises :class:`LicenzyDenied`."""
    config = _as_config(licenzy)
    feature = _common.check_name(feature, "feature", "require_access")

    async def dependency(request: Request, subject: object = _NO_SUBJECT) -> str:
        try:
            value = await config.subject(request) if subject is _NO_SUBJECT else subject
            return await config.offload(_common.check_access, config.lz, value, feature)
        except LicenzyError as error:
            raise LicenzyDenied(error, config.deny(request, error)) from None

    return _with_subject(dependency, subject)


def consume_usage(licenzy: Licenzy | LicenzyASGI, units: Units[Request], *,
                  meter: str = "units", subject: Callable[..., Any] | None = None
                  ) -> Callable[..., Awaitable[Reservation]]:
    """FastAPI dependency: ``Depends(consume_usage(lz, 10))`` holds the units before the path
    operation runs and gives it the :class:`~licenzy_embed.Reservation`.

    Needs ``route_class=LicenzyRoute`` on the router: only a route wrapper sees the final
    response before it is sent, which is when the hold must be committed (2xx/3xx) or given
    back (an exception, or a 4xx/5xx response, also one the operation returned itself). A
    ``yield`` dependency's teardown cannot do it: it runs after the response went out and
    never sees the status. Without the route class the request fails (500) before anything is
    held."""
    _common.check_units(units)
    meter = _common.check_name(meter, "meter", "consume_usage") or "units"
    config = _as_config(licenzy)

    async def dependency(request: Request, subject: object = _NO_SUBJECT) -> Reservation:
        holds = request.scope.get(_HOLDS_KEY)
        if not isinstance(holds, list):
            raise RuntimeError("consume_usage() needs its route to use LicenzyRoute: "
                               "APIRouter(route_class=LicenzyRoute) or "
                               "app.router.route_class = LicenzyRoute")
        endpoint = request.scope.get("endpoint")
        view = _common.view_id(endpoint) if endpoint is not None else request.url.path
        hold = _common.AsyncHold(offload=config.offload_hold, shielded=config.shielded,
                                 abandoned=_cancelled)
        try:
            value = await config.subject(request) if subject is _NO_SUBJECT else subject
            reservation = await hold.take(config.reservation(request, value, units, view,
                                                             meter))
        except LicenzyError as error:
            raise LicenzyDenied(error, config.deny(request, error)) from None
        holds.append((config, hold))
        return reservation

    return _with_subject(dependency, subject)


if _HAS_FASTAPI:
    __all__ += ["LicenzyRoute"]

    class LicenzyRoute(APIRoute):
        """A FastAPI route that settles the holds of ``consume_usage`` dependencies on the
        response, before it is sent, and answers :class:`LicenzyDenied` with its response.

        ``APIRouter(route_class=LicenzyRoute)``, or ``app.router.route_class = LicenzyRoute``
        before declaring routes on the app itself."""

        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def route_handler(request: Request) -> Response:
                holds: list[tuple[LicenzyASGI, _common.AsyncHold]] = []
                request.scope[_HOLDS_KEY] = holds
                try:
                    response = await handler(request)
                except LicenzyDenied as denied:
                    for _, hold in holds:  # a second dependency denied after a first held
                        await hold.give_back()
                    return denied.response
                except BaseException:
                    for _, hold in holds:
                        await hold.give_back()
                    raise
                for config, hold in holds:
                    try:
                        await hold.settle(response.status_code)
                    except LicenzyError as error:
                        for _, other in holds:
                            await other.give_back()
                        return config.deny(request, error)
                return response

            return route_handler
