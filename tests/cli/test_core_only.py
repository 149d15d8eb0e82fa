"""The command line is part of the core package: without the ``[sqlalchemy]`` extra it still
runs (``doctor`` on an in-memory store), and ``migrate`` says what to install."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

# Run in a fresh interpreter in which SQLAlchemy and Alembic cannot be imported.
PRELUDE = ("import sys; sys.modules.update(dict.fromkeys(['sqlalchemy', 'alembic'])); "
           "from licenzy_embed.cli import main; sys.exit(main(sys.argv[1:]))")


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", PRELUDE, *args], capture_output=True,
                          text=True, check=False, cwd=cwd)


def test_migrate_names_the_extra_to_install(tmp_path: Path) -> None:
    done = run("migrate", "--url", f"sqlite:///{tmp_path / 'x.db'}", cwd=tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.startswith("licenzy-embed: migrate needs SQLAlchemy and Alembic (")
    assert done.stderr.endswith("; pip install 'licenzy-embed[sqlalchemy]' (or [postgres], "
                                "[mysql])\n")
    assert len(done.stderr.splitlines()) == 1


def test_doctor_on_an_in_memory_store(tmp_path: Path) -> None:
    (tmp_path / "memory_app.py").write_text(
        "from licenzy_embed import InMemoryStore, Licenzy, Product\n\n"
        "lz = Licenzy(store=InMemoryStore(), products=[Product('PRO', kind='subscription', "
        "price='price_pro')])\n")
    done = run("--app", "memory_app", "doctor", cwd=tmp_path)  # found in the current folder
    assert done.returncode == 0, done.stderr
    assert "PASS  store: in-memory store: nothing to migrate" in done.stdout
