"""example_apps/starlette_app.py in a browser: sign in, buy, pay, use, run out, top up."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ._browser import buy_and_use, start_example


@pytest.mark.browser
def test_starlette_example_in_a_browser(start_app: Callable[..., str], page: Any,
                                        screenshot: Callable[[str], Path],
                                        tmp_path: Path) -> None:
    base = start_example("starlette", start_app, tmp_path)
    buy_and_use(page, base, screenshot)
