"""Signature checks, with the SDK's ``stripe.WebhookSignature.verify_header``.

The configured secrets live in :class:`WebhookSecrets`, whose ``repr`` hides them: an error
tracker that records frame locals records ``WebhookSecrets(2 secrets)``. Whatever the header
holds (non-ASCII text in ``v1`` makes the SDK's ``hmac.compare_digest`` raise ``TypeError``),
the check ends in a verdict inside :meth:`WebhookSecrets.verify`, whose frame is gone before
``InvalidSignature`` is raised: no exception raised here carries a frame holding a secret.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import stripe

from ..errors import InvalidSignature

SECRET_PREFIX = "whsec_"


class WebhookSecrets:
    """The endpoint's signing secrets (several while rotating), read-only."""

    __slots__ = ("_values",)

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values = tuple(values)

    def __len__(self) -> int:
        return len(self._values)

    def __bool__(self) -> bool:
        return bool(self._values)

    def __getitem__(self, index: int) -> str:
        return self._values[index]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WebhookSecrets) and other._values == self._values

    def __hash__(self) -> int:
        return hash(self._values)

    def __repr__(self) -> str:
        return f"WebhookSecrets({len(self._values)} secret{'' if len(self) == 1 else 's'})"

    def verify(self, text: str, header: str, tolerance: int) -> str | None:
        """None when one of the secrets signed ``text``, else why not (Stripe's words)."""
        failures: list[str] = []
        for index in range(len(self._values)):
            try:
                stripe.WebhookSignature.verify_header(text, header, self._values[index],
                                                      tolerance)
                return None
            except stripe.SignatureVerificationError as exc:
                failures.append(str(exc.user_message or exc))
            except Exception:  # e.g. TypeError from compare_digest on non-ASCII signatures
                failures.append("the Stripe-Signature header is malformed")
        # A stale but genuine signature says so, whichever secret was tried first.
        stale = [f for f in failures if "tolerance" in f]
        return (stale or failures)[0]


def verify(secrets: WebhookSecrets, text: str, header: Any, tolerance: int) -> None:
    """Raise ``InvalidSignature`` unless ``header`` is a valid signature of ``text``."""
    if isinstance(header, (bytes, bytearray)):  # some servers hand headers over as bytes
        header = bytes(header).decode("latin-1")
    if not isinstance(header, str) or not header.strip():
        raise InvalidSignature("the Stripe-Signature header is missing")
    if not secrets:
        raise InvalidSignature("no stripe_webhook_secret is configured, so no event can be "
                               "trusted")
    failure = secrets.verify(text, header, tolerance)
    if failure is not None:
        raise InvalidSignature(f"Stripe signature check failed: {failure}")
