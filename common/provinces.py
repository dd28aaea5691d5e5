"""Province codes (the first three digits of a personal identification number).

The table is data: common/data/provinces.csv (a copy of the team's
shared/data/provinces.csv, checked equal by a test) lists the 63 provinces
before the 2025 merger, which did not change existing numbers. A deployment can point
LIENTHONG_PROVINCES_CSV at another table without a code change.
"""

from __future__ import annotations

import csv
import functools
import os
from pathlib import Path

BUNDLED = Path(__file__).parent / "data" / "provinces.csv"


@functools.cache
def provinces() -> dict[str, str]:
    """Code → name, read once per process."""
    path = Path(os.environ.get("LIENTHONG_PROVINCES_CSV", BUNDLED))
    with path.open(encoding="utf-8") as f:
        return {row["code"]: row["name"] for row in csv.DictReader(f)}


def is_province(code: str) -> bool:
    return code in provinces()
