"""Which commit the running code is, for a report to say what it measured."""

from __future__ import annotations

import subprocess
from pathlib import Path

# The repository root when running from a checkout (an editable install);
# an installed wheel has no .git beside its packages.
_ROOT = Path(__file__).resolve().parents[1]


def checkout_commit(root: Path = _ROOT) -> str | None:
    """The commit abbreviated, "-dirty" if files differ from it; None outside
    a git checkout or without git."""
    if not (root / ".git").exists():  # a directory, or a file in a worktree
        return None
    try:
        done = subprocess.run(
            ["git", "-C", str(root), "describe", "--always", "--dirty", "--abbrev=12"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() or None if done.returncode == 0 else None
