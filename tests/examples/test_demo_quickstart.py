"""example_apps/quickstart.py, the terminal walkthrough: runs, prints each step's events under
its own heading, and leaves no temporary folder behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quickstart_runs_and_cleans_up(tmp_path: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    done = subprocess.run([sys.executable, str(ROOT / "example_apps" / "quickstart.py")],
                          env=env, capture_output=True, text=True, check=True)
    assert done.stdout.rstrip().endswith("demo finished")
    assert list(tmp_path.iterdir()) == []  # the SQLite folder went away with the run
    sections = {block.split("  [")[0]: block for block in done.stdout.split("\n== ")[1:]}
    duplicate = next(b for t, b in sections.items() if t.startswith("duplicate delivery"))
    assert "outcome: ['duplicate']" in duplicate and "event:" not in duplicate
    renewal = next(b for t, b in sections.items() if "renewal paid" in t)
    assert "event: invoice.payment_succeeded" in renewal
    assert "usage_remaining=1000" in renewal
