"""Flask adapter: the ``LicenzyFlask`` extension, its Blueprint, and the two view decorators.

::

    from licenzy_embed.integrations.flask import LicenzyFlask, consumes_usage, requires_access

    billing = LicenzyFlask(lz, url_prefix="/billing")
    billing.init_app(app)            # POST /billing/webhooks/stripe, POST /billing/checkout,
                                     # GET /billing/access

    @billing.subject_loader
    def current_subject():
        return session.get("user_id")

    @app.get("/report")
    @requires_access
    def report(): ...

The decorators find the extension through ``current_app.extensions["licenzy"]`` at request
time, like Flask-Login's ``login_required`` finds its ``LoginManager``, so they can decorate
views before any app exists (blueprints, app factories).
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable
from inspect import iscoroutinefunction
from typing import Any, TypeVar, cast, overload

try:
    from blinker import Namespace
    from flask import Blueprint, Flask, Response, current_app, g, jsonify, request
    from flask.typing import ResponseReturnValue
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "licenzy_embed.integrations.flask needs Flask: pip install 'licenzy-embed[flask]'"
    ) from exc

from licenzy_embed.errors import AccessDenied, LicenzyError, Unauthenticated
from licenzy_embed.events import LISTENING, ChangeEvent
from licenzy_embed.licenzy import Licenzy
from licenzy_embed.usage import Reservation

from . import _common
from ._common import Units

__all__ = [
    "AccessDenied",
    "LicenzyFlask",
    "Unauthenticated",
    "consumes_usage",
    "default_subject",
    "requires_access",
]

F = TypeVar("F", bound=Callable[..., Any])
SubjectLoader = Callable[[], object]
DenialHandler = Callable[[LicenzyError], "ResponseReturnValue"]

EXTENSION_KEY = "licenzy"
#: ``app.config`` keys of the routes' body size limits, in bytes, and their defaults.
LIMITS = {
    "LICENZY_WEBHOOK_MAX_BYTES": _common.WEBHOOK_MAX_BYTES,
    "LICENZY_CHECKOUT_MAX_BYTES": _common.CHECKOUT_MAX_BYTES,
}


def _body(limit_key: str) -> bytes:
    """The request body, refused (``PayloadTooLarge``) by its Content-Length before any of it
    is read, or while reading a chunked one; never more than the limit is held in memory."""
    limit: int = current_app.config[limit_key]
    _common.check_declared_length(request.headers.get("Content-Length"), limit)
    return _common.read_capped(request.stream.read, limit)


def default_subject() -> object:
    """The subject when no ``subject_loader`` is set.

    ``g.licenzy_subject`` when something earlier in the request set it (an API-token
    ``before_request`` hook, say); otherwise Flask-Login's ``current_user.get_id()`` when the
    app uses Flask-Login and someone is signed in; otherwise nobody (401)."""
    subject = g.get("licenzy_subject")
    if subject is not None:
        return subject
    if hasattr(current_app, "login_manager"):
        try:
            from flask_login import current_user
        except ImportError:  # pragma: no cover - a login_manager without Flask-Login
            return None
        if current_user.is_authenticated:
            return current_user.get_id()
    return None


def default_denial(error: LicenzyError) -> ResponseReturnValue:
    status, body = _common.denial(error)
    return jsonify(body), status


signals = Namespace()
#: Every change event of a ``Licenzy`` given to ``init_app``, as a blinker signal:
#: ``@change_event.connect`` receivers get ``(lz, event=ChangeEvent)``. The same events as
#: ``lz.on("*", …)``, at least once: a receiver that raises makes the outbox retry the event
#: later (``event.id`` is stable, to dedupe on).
change_event = signals.signal("licenzy-embed.change-event")
_bridged: weakref.WeakSet[Licenzy] = weakref.WeakSet()


def _bridge(lz: Licenzy) -> None:
    """Send ``lz``'s change events to :data:`change_event`, once per instance (an app
    factory may call ``init_app`` for several apps)."""
    if lz in _bridged:
        return
    _bridged.add(lz)

    def send_change_event(event: ChangeEvent) -> None:
        change_event.send(lz, event=event)

    # No receiver connected (they may live in another process): not a listener, so the
    # outbox keeps the events pending instead of marking them delivered to nobody.
    setattr(send_change_event, LISTENING, lambda: change_event.has_receivers_for(lz))
    lz.on("*", send_change_event)


class LicenzyFlask:
    """The Flask extension: mounts the billing Blueprint and holds what the decorators need.

    ``lz`` may be given here or to :meth:`init_app` (app factories). ``url_prefix`` is the
    default for the ``LICENZY_URL_PREFIX`` config key."""

    def __init__(self, lz: Licenzy | None = None, app: Flask | None = None, *,
                 url_prefix: str = "/billing", subject_loader: SubjectLoader | None = None,
                 denial_handler: DenialHandler | None = None) -> None:
        if lz is not None and not isinstance(lz, Licenzy):
            raise ValueError("lz must be a licenzy_embed.Licenzy")
        if subject_loader is not None and not callable(subject_loader):
            raise ValueError("subject_loader must be callable")
        if denial_handler is not None and not callable(denial_handler):
            raise ValueError("denial_handler must be callable")
        self._lz = lz
        self.url_prefix = url_prefix
        self._subject_loader = subject_loader
        self._denial_handler = denial_handler
        self.blueprint = self._make_blueprint()
        if app is not None:
            self.init_app(app)

    @property
    def lz(self) -> Licenzy:
        if self._lz is None:
            raise RuntimeError("LicenzyFlask has no Licenzy instance: pass lz to LicenzyFlask() "
                               "or init_app()")
        return self._lz

    def init_app(self, app: Flask, lz: Licenzy | None = None) -> None:
        if lz is not None:
            if not isinstance(lz, Licenzy):
                raise ValueError("lz must be a licenzy_embed.Licenzy")
            self._lz = lz
        if self._lz is None:
            raise ValueError("LicenzyFlask needs a Licenzy instance: LicenzyFlask(lz) or "
                             "init_app(app, lz)")
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError("a LicenzyFlask extension is already registered on this app")
        prefix = app.config.setdefault("LICENZY_URL_PREFIX", self.url_prefix)
        if not isinstance(prefix, str) or not prefix.startswith("/"):
            raise ValueError(f"LICENZY_URL_PREFIX must be a path starting with '/': {prefix!r}")
        for key, default in LIMITS.items():
            _common.check_limit(app.config.setdefault(key, default), key)
        app.extensions[EXTENSION_KEY] = self
        app.register_blueprint(self.blueprint, url_prefix=prefix.rstrip("/") or None)
        _bridge(self._lz)

    # -- configuration hooks, used as decorators like Flask-Login's user_loader
    def subject_loader(self, func: SubjectLoader) -> SubjectLoader:
        """Register the function that returns the current request's subject (or None)."""
        self._subject_loader = func
        return func

    def denial_handler(self, func: DenialHandler) -> DenialHandler:
        """Register ``func(error) -> response`` to answer denials instead of the JSON default."""
        self._denial_handler = func
        return func

    # -- used by the views and the decorators
    def current_subject(self) -> object:
        return (self._subject_loader or default_subject)()

    def deny(self, error: LicenzyError) -> Response:
        handler = self._denial_handler or default_denial
        return current_app.make_response(handler(_common.public(error)))

    def _make_blueprint(self) -> Blueprint:
        bp = Blueprint("licenzy", __name__)

        @bp.post("/webhooks/stripe")
        def webhook() -> ResponseReturnValue:
            # The exact bytes Stripe signed: the raw stream, never the parsed form or JSON.
            try:
                payload = _body("LICENZY_WEBHOOK_MAX_BYTES")
            except LicenzyError as error:
                status, body = _common.denial(error)
            else:
                status, body = _common.webhook(self.lz, payload,
                                               request.headers.get(_common.SIGNATURE_HEADER))
            return jsonify(body), status

        #: For Flask-WTF's CSRFProtect, which must not guard Stripe's route:
        #: ``csrf.exempt(billing.webhook_view)``.
        self.webhook_view = webhook

        @bp.post("/checkout")
        def checkout() -> ResponseReturnValue:
            try:
                subject = self.current_subject()
                return jsonify(_common.checkout(
                    self.lz, subject, _body("LICENZY_CHECKOUT_MAX_BYTES"),
                    request.headers.get(_common.IDEMPOTENCY_HEADER)))
            except LicenzyError as error:
                return self.deny(error)

        @bp.get("/access")
        def access() -> ResponseReturnValue:
            try:
                return jsonify(_common.customer_access(self.lz, self.current_subject()))
            except LicenzyError as error:
                return self.deny(error)

        return bp


def _extension() -> LicenzyFlask:
    ext = current_app.extensions.get(EXTENSION_KEY)
    if not isinstance(ext, LicenzyFlask):
        # Fail closed: a protected view never runs unguarded because setup was forgotten.
        raise RuntimeError("licenzy-embed decorators need LicenzyFlask(lz).init_app(app)")
    return ext


def _preflight() -> Response:
    # Answered here, never by the protected view: it must not run unguarded (see _common).
    return current_app.make_default_options_response()


def _access_denial(feature: str | None = None) -> Response | None:
    if request.method in _common.PREFLIGHT_METHODS:
        return _preflight()
    ext = _extension()
    try:
        _common.check_access(ext.lz, ext.current_subject(), feature)
    except LicenzyError as error:
        return ext.deny(error)
    return None


@overload
def requires_access(view: F) -> F: ...
@overload
def requires_access(view: str | None = None, *,
                    feature: str | None = None) -> Callable[[F], F]: ...


def requires_access(view: F | str | None = None, *,
                    feature: str | None = None) -> F | Callable[[F], F]:
    """Let the view run only for a subject with access; usable as ``@requires_access``,
    ``@requires_access()`` or, for one feature, ``@requires_access("reports")``. Denials: 401
    without a subject, 402 without access (its body's ``upgrade`` names what to buy), 503
    when the store is down."""
    if isinstance(view, str):
        view, feature = None, view
    feature = _common.check_name(feature, "feature", "requires_access")

    def decorate(func: F) -> F:
        if iscoroutinefunction(func):
            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                # Flask runs an async view in its own event loop per request (ensure_sync),
                # so the store call may block here without stalling other requests.
                denied = _access_denial(feature)
                return denied if denied is not None else await func(*args, **kwargs)

            return cast(F, async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            denied = _access_denial(feature)
            return denied if denied is not None else func(*args, **kwargs)

        return cast(F, wrapper)

    return decorate(view) if view is not None else decorate


def _reserve(units: Units[Any], view: str, meter: str) -> Reservation:
    ext = _extension()
    client_key = request.headers.get(_common.IDEMPOTENCY_HEADER)
    reservation = _common.reserve(ext.lz, ext.current_subject(),
                                  _common.resolve_units(units, request),
                                  _common.hold_key(view, client_key), client_key, meter)
    g.licenzy_reservation = reservation
    return reservation


def _metered(func: Callable[..., Any], units: Units[Any], view: str, args: tuple[Any, ...],
             kwargs: dict[str, Any], meter: str = "units") -> Response:
    if request.method in _common.PREFLIGHT_METHODS:
        return _preflight()
    ext = _extension()  # before anything is held: fails closed without init_app

    def run(reservation: Reservation) -> Response:
        # ensure_sync runs an async view in asgiref's loop thread while this worker thread
        # waits; a view that is not a valid response (None, a bad tuple…) raises here, and
        # Flask answers 500 with nothing charged.
        return current_app.make_response(current_app.ensure_sync(func)(*args, **kwargs))

    outcome = _common.metered(lambda: _reserve(units, view, meter), run,
                              lambda response: response.status_code,
                              discard=lambda response: response.close())
    return ext.deny(outcome.error) if isinstance(outcome, _common.Denied) else outcome


def consumes_usage(units: Units[Any], *, meter: str = "units") -> Callable[[F], F]:
    """Charge ``units`` of ``meter`` (an int, or a function of the request) for each
    successful call.

    The units are held before the view runs (409 when the subject has too few, 402 when it
    has nothing to spend from), then committed if the view answers 2xx/3xx and given back if
    it raises or answers 4xx/5xx. The
    hold is ``g.licenzy_reservation``: a view may ``commit(units=n)`` it for fewer units
    itself. A retry carrying the same ``Idempotency-Key`` header is not charged again.

    The wrapper is a plain function for async views too, as Flask-Login's ``login_required``
    is: it runs the view through ``current_app.ensure_sync``, so the hold is taken and settled
    by the request's worker thread. Were the hold settled inside the coroutine, asgiref's loop
    thread would go on to commit after the worker had given up on the request (a timeout) and
    answered an error: the client would pay for an answer it never got."""
    _common.check_units(units)
    meter = _common.check_name(meter, "meter", "consumes_usage") or "units"

    def decorate(func: F) -> F:
        view = _common.view_id(func)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Response:
            return _metered(func, units, view, args, kwargs, meter)

        return cast(F, wrapper)

    return decorate
