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


APP = ("from licenzy_embed import InMemoryStore, Licenzy, Product\n\n"
       "lz = Licenzy(store=InMemoryStore(), products=[Product('PRO', kind='subscription', "
       "price='price_pro')])\n")


def test_doctor_on_an_in_memory_store_with_the_simulator(tmp_path: Path) -> None:
    (tmp_path / "memory_app.py").write_text(
        APP + "from licenzy_embed.testing import StripeSimulator\n"
        "StripeSimulator.for_licenzy(lz)\n")
    done = run("--app", "memory_app", "doctor", cwd=tmp_path)  # found in the current folder
    assert done.returncode == 0, done.stderr
    assert "PASS  mode: test mode: no Stripe key, the Stripe simulator stands in" in done.stdout
    assert "SKIP  webhook secret: none set: the simulator signs" in done.stdout
    assert "PASS  store: in-memory store: nothing to migrate" in done.stdout


def test_doctor_without_a_key_or_the_simulator_fails(tmp_path: Path) -> None:
    """Outside pytest nothing attaches the simulator (the plugin does, in tests): a key-less
    app then has no way to reach Stripe and no secret, and doctor says both."""
    (tmp_path / "memory_app.py").write_text(APP)
    done = run("--app", "memory_app", "doctor", cwd=tmp_path)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAIL  mode: no Stripe key and no gateway: checkout answers payment_provider_error" \
        in done.stdout
    assert "FAIL  webhook secret: none set: every delivery will be refused" in done.stdout
    assert "SKIP  stripe: no Stripe key: prices and webhook endpoints are not checked" \
        in done.stdout
    assert "PASS  store: in-memory store: nothing to migrate" in done.stdout
