"""The base salary (lương cơ sở) table, kept as data.

The base salary is set by government decree and changes on a known day; the
funeral allowance is a multiple of the one in force on the date of death. The
next rise (2,530,000 VND from 2026-07-01) was proposed but not confirmed, so
the table is a CSV file (data/base_salary.csv) a deployment can replace with
LIENTHONG_BASE_SALARY_CSV rather than a constant in the code.
"""

from __future__ import annotations

import bisect
import csv
import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

BUNDLED = Path(__file__).parent / "data" / "base_salary.csv"
ENV_VAR = "LIENTHONG_BASE_SALARY_CSV"


@dataclass(frozen=True)
class BaseSalaryTable:
    """Amounts in VND by the day each came into force, oldest first."""

    effective_from: tuple[dt.date, ...]
    amount_vnd: tuple[int, ...]

    def __post_init__(self) -> None:
        if not self.effective_from:
            raise ValueError("the base salary table is empty")
        if len(self.effective_from) != len(self.amount_vnd):
            raise ValueError("every base salary needs the day it came into force")
        if any(a >= b for a, b in zip(self.effective_from, self.effective_from[1:], strict=False)):
            raise ValueError("base salary dates must be strictly ascending")
        if any(amount <= 0 for amount in self.amount_vnd):
            raise ValueError("base salary amounts must be positive")

    def in_force_on(self, day: dt.date) -> int | None:
        """The amount in force on `day`; None before the table's first date."""
        position = bisect.bisect_right(self.effective_from, day)
        return self.amount_vnd[position - 1] if position else None


def read_table(path: Path) -> BaseSalaryTable:
    """Read effective_from,amount_vnd rows; lines starting with # are comments."""
    with path.open(encoding="utf-8") as f:
        lines = [line for line in f if not line.lstrip().startswith("#")]
    rows = list(csv.DictReader(lines))
    try:
        return BaseSalaryTable(
            tuple(dt.date.fromisoformat(row["effective_from"].strip()) for row in rows),
            tuple(int(row["amount_vnd"].strip()) for row in rows),
        )
    except (KeyError, ValueError, AttributeError) as error:
        raise ValueError(f"{path}: not a base salary table ({error})") from None


def table_path() -> Path:
    return Path(os.environ.get(ENV_VAR) or BUNDLED)


def load_table() -> BaseSalaryTable:
    """The table this deployment uses: LIENTHONG_BASE_SALARY_CSV or the bundled one."""
    return read_table(table_path())
