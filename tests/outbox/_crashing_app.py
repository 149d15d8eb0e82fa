"""Run as a script: commit one change on the store at ``argv[1]``, then die in the first
callback, after the commit and before anything was marked delivered (``os._exit``: no
cleanup, no ``finally``, as when a worker is killed)."""

from __future__ import annotations

import os
import sys

from licenzy_embed import Licenzy
from licenzy_embed.stores.sqlalchemy import SQLAlchemyStore
from licenzy_embed.testing import FrozenClock
from tests.conftest import START, catalog

CRASHED = 17


def main(url: str) -> None:
    lz = Licenzy(store=SQLAlchemyStore(url), products=catalog(), clock=FrozenClock(START))
    lz.on("*", lambda event: os._exit(CRASHED))
    lz.grant("crash_user", "CREDITS_100", reason="committed, then the process died")
    sys.exit(0)  # never reached: the callback ended the process


if __name__ == "__main__":
    main(sys.argv[1])
