"""The commit a report names: this checkout's, from git itself; none elsewhere."""

from __future__ import annotations

import subprocess
from pathlib import Path

from cli.checkout import checkout_commit

ROOT = Path(__file__).resolve().parents[2]


def test_a_checkout_names_its_commit() -> None:
    head = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    found = checkout_commit(ROOT)
    assert found is not None
    assert head.startswith(found.removesuffix("-dirty")) and len(found) >= 12


def test_outside_a_checkout_there_is_none(tmp_path: Path) -> None:
    assert checkout_commit(tmp_path) is None
