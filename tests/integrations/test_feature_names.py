"""A feature or meter name that cannot be one is a ValueError when the view is decorated (or
the FastAPI dependency built), in every adapter; whether some product grants it is known
only from the catalog, and the first request says so (400, in ``_features.py``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from licenzy_embed.integrations import asgi, flask
from licenzy_embed.integrations.django import decorators as django

from ._support import make_lz

ADAPTERS = {"flask": flask, "django": django, "asgi": asgi}


def view(request: Any) -> None:
    raise AssertionError("never called")


@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
@pytest.mark.parametrize("decorate", [
    lambda a: a.requires_access("Reports"),
    lambda a: a.requires_access(feature="no spaces"),
    lambda a: a.requires_access(feature=""),
    lambda a: a.consumes_usage(1, meter="API_CALLS"),
    lambda a: a.consumes_usage(1, meter=7),
])
def test_a_malformed_name_is_refused_at_decoration(adapter: str,
                                                   decorate: Callable[[Any], Any]) -> None:
    with pytest.raises(ValueError, match=r"must match \[a-z0-9\]"):
        decorate(ADAPTERS[adapter])(view)


@pytest.mark.parametrize("adapter", sorted(ADAPTERS))
def test_well_formed_names_decorate(adapter: str) -> None:
    module = ADAPTERS[adapter]
    for decorator in (module.requires_access("reports"), module.requires_access(),
                      module.requires_access(feature="ai:gpt-4.1"),
                      module.consumes_usage(3, meter="api_calls")):
        assert callable(decorator(view))


def test_fastapi_dependencies_check_their_names_when_built() -> None:
    lz = make_lz()
    with pytest.raises(ValueError, match="must match"):
        asgi.require_access(lz, "Reports")
    with pytest.raises(ValueError, match="must match"):
        asgi.consume_usage(lz, 1, meter="api calls")
    assert callable(asgi.require_access(lz, "reports"))
    assert callable(asgi.consume_usage(lz, 1, meter="api_calls"))
