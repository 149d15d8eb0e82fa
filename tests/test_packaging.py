"""Packaging (SPEC §2): a wheel built from the repo installs into a fresh virtual environment
and imports ``licenzy_embed`` and ``licenzy_embed.integrations``; the editable install used for
development maps ``licenzy_embed.integrations`` onto the top-level ``integrations/`` folder."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
_SKIP = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".mypy_cache")


def run(*args: str | Path, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, f"{args} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def shipped_files() -> set[str]:
    """Every file of the package as it must appear in a wheel."""
    files = set()
    for root, prefix in ((REPO / "src" / "licenzy_embed", "licenzy_embed"),
                         (REPO / "integrations", "licenzy_embed/integrations")):
        for path in root.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                files.add(f"{prefix}/{path.relative_to(root).as_posix()}")
    return files


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Build from a copy, so the shared working tree gets no build/ or egg-info litter.
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, src / name)
    for name in ("src", "integrations"):
        shutil.copytree(REPO / name, src / name, ignore=_SKIP)
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--wheel", "--outdir", out, src, cwd=src)
    (built,) = out.glob("licenzy_embed-*.whl")
    return built


@pytest.mark.slow
def test_wheel_ships_the_whole_package(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        metadata = next(zf.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    assert "licenzy_embed/py.typed" in names
    assert "licenzy_embed/integrations/__init__.py" in names
    missing = sorted(shipped_files() - names)
    assert not missing, (
        f"the wheel lacks {missing}: list new packages under [tool.setuptools] packages "
        "(and data files under package-data) in pyproject.toml")
    assert not any(n.startswith(("integrations/", "tests/", "src/")) for n in names)
    assert "Name: licenzy-embed" in metadata
    assert "Requires-Dist: stripe" in metadata
    for extra in ("flask", "django", "asgi", "postgres", "mysql", "dev", "all"):
        assert f"Provides-Extra: {extra}" in metadata


@pytest.mark.slow
def test_wheel_installs_and_imports_in_a_fresh_venv(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    run(python, "-m", "pip", "install", "--quiet", wheel, cwd=tmp_path)
    out = run(python, "-c",
              "import licenzy_embed, licenzy_embed.integrations, licenzy_embed.testing;"
              "print(licenzy_embed.__file__); print(licenzy_embed.integrations.__file__);"
              "print(licenzy_embed.__version__)", cwd=tmp_path)
    core, integrations, version = out.split()
    site = str(env_dir)
    assert core.startswith(site) and integrations.startswith(site)
    assert integrations.endswith("licenzy_embed/integrations/__init__.py")
    assert version == "0.1.0"


def test_editable_install_maps_integrations_to_the_repo(tmp_path: Path) -> None:
    # Run from elsewhere, so the repo root on sys.path cannot make this pass by accident.
    out = run(sys.executable, "-c",
              "import licenzy_embed, licenzy_embed.integrations;"
              "print(licenzy_embed.__file__); print(licenzy_embed.integrations.__file__)",
              cwd=tmp_path)
    core, integrations = out.split()
    assert Path(core) == REPO / "src" / "licenzy_embed" / "__init__.py"
    assert Path(integrations) == REPO / "integrations" / "__init__.py"
    assert (REPO / "src" / "licenzy_embed" / "py.typed").is_file()
