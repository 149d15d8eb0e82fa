"""Each adapter guards its framework import once, with one error naming the extra to install;
the core and the shared helpers never import a framework."""

from __future__ import annotations

import subprocess
import sys

import pytest


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=False)


@pytest.mark.parametrize(("adapter", "framework", "extra"), [
    ("flask", "flask", "flask"),
    ("django", "django", "django"),
    ("asgi", "starlette", "asgi"),
])
def test_a_missing_framework_names_the_extra_to_install(adapter: str, framework: str,
                                                        extra: str) -> None:
    result = run(f"import sys; sys.modules[{framework!r}] = None\n"
                 f"import licenzy_embed.integrations.{adapter}")
    assert result.returncode != 0
    assert "ImportError" in result.stderr
    assert f"pip install 'licenzy-embed[{extra}]'" in result.stderr


def test_fastapi_is_optional_for_the_asgi_adapter() -> None:
    result = run("import sys\n"
                 "sys.modules['fastapi'] = sys.modules['fastapi.routing'] = None\n"
                 "import licenzy_embed.integrations.asgi as a\n"
                 "assert not hasattr(a, 'LicenzyRoute') and callable(a.requires_access)")
    assert result.returncode == 0, result.stderr


def test_the_core_and_shared_helpers_import_no_framework() -> None:
    result = run("import sys, licenzy_embed, licenzy_embed.testing\n"
                 "import licenzy_embed.integrations._common\n"
                 "loaded = {'flask', 'django', 'starlette', 'fastapi'} & set(sys.modules)\n"
                 "assert not loaded, loaded")
    assert result.returncode == 0, result.stderr
