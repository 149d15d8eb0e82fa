"""Test or live mode. As in Licenzy, the API key alone selects the mode: there is no separate
setting that could disagree with the key."""

from __future__ import annotations

from typing import Literal

Mode = Literal["test", "live"]
TEST: Mode = "test"
LIVE: Mode = "live"


def mode_from_key(api_key: str | None) -> Mode:
    if api_key is None:
        return TEST  # a key-less app: tests and demos, on the Stripe simulator
    if not isinstance(api_key, str):  # a config mistake must be a ValueError at start-up
        raise ValueError("stripe_api_key must be a string (sk_/rk_, test or live)")
    if api_key != api_key.strip():
        raise ValueError("stripe_api_key has surrounding whitespace (a trailing newline from a "
                         "file or an environment variable?)")
    for prefix, mode in (("sk_test_", TEST), ("rk_test_", TEST), ("sk_live_", LIVE),
                         ("rk_live_", LIVE)):
        if api_key.startswith(prefix) and len(api_key) > len(prefix):
            return mode
    raise ValueError("stripe_api_key must be a secret or restricted key (sk_/rk_, test or live)")
