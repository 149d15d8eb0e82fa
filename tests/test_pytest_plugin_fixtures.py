"""The pytest plugin's fixtures explain themselves in ``pytest --fixtures``, and its default
catalog is the one the README lists."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from licenzy_embed.testing.pytest_plugin import demo_products

FIXTURES = ["licenzy_clock", "licenzy_store", "licenzy_products", "licenzy", "stripe_simulator"]
README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_fixture_has_a_docstring_in_pytest_fixtures(tmp_path: Path) -> None:
    (tmp_path / "test_app.py").write_text("def test_nothing():\n    pass\n")
    listing = subprocess.run(
        [sys.executable, "-m", "pytest", "--fixtures", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    for name in FIXTURES:
        found = re.search(rf"^{name} -- .*pytest_plugin\.py:\d+\n(.*)$", listing, re.MULTILINE)
        assert found is not None, f"{name} is not listed:\n{listing}"
        assert found.group(1).strip() and "no docstring" not in found.group(1), name


def test_the_readme_lists_the_default_catalog() -> None:
    readme = README.read_text()
    for product in demo_products():
        assert f"`{product.code}`" in readme and f"`{product.price}`" in readme, product.code
