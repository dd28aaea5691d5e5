"""The committed genproto/ is exactly what proto/generate.py makes from proto/."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    out = tmp_path / "genproto"
    subprocess.run(
        [sys.executable, str(ROOT / "proto" / "generate.py"), str(out)],
        check=True,
        capture_output=True,
    )
    fresh, committed = _tree(out), _tree(ROOT / "genproto")
    assert fresh.keys() == committed.keys(), "run `make generate` and commit genproto/"
    stale = [name for name in fresh if fresh[name] != committed[name]]
    assert not stale, f"stale generated files (run `make generate`): {stale}"
