"""The legal time limits, read from a data file (gateway/data/time_limits.csv,
or LIENTHONG_TIME_LIMITS_CSV): Decree 63/2024/ND-CP's limits for each group
and, as the press reported its rules, for each step. They are data because
the per-step figures are not confirmed and a province may publish its own."""

from __future__ import annotations

import csv
import functools
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from gateway.procedures import PROCEDURES

BUNDLED = Path(__file__).parent / "data" / "time_limits.csv"
ENV_VAR = "LIENTHONG_TIME_LIMITS_CSV"


@dataclass(frozen=True)
class TimeLimits:
    """Working days by limit name: group.<kind>, step.<step>, supplement_window."""

    working_days: dict[str, int]

    def group(self, name: str) -> int:
        """The limit of the procedure group of that name (ProcedureGroup.name)."""
        days = self.working_days.get(f"group.{name}")
        if days is None:
            raise LookupError(f"the time-limit table has no row group.{name}")
        return days

    def step(self, step: str) -> int | None:
        """None when the step has no limit of its own."""
        return self.working_days.get(f"step.{step}")

    @property
    def supplement_window(self) -> int:
        return self.working_days["supplement_window"]


def read_limits(path: Path, groups: Iterable[str] | None = None) -> TimeLimits:
    """Read limit,working_days rows; lines starting with # are comments. A row
    `group.<name>` is required for each group named (by default every group
    of the procedure table), so a missing one fails at start, not mid-saga."""
    if groups is None:
        groups = [group.name for group in PROCEDURES]
    with path.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(line for line in f if not line.lstrip().startswith("#")))
    try:
        limits = {row["limit"].strip(): int(row["working_days"]) for row in rows}
    except (KeyError, ValueError, AttributeError) as error:
        raise ValueError(f"{path}: not a table of time limits ({error})") from None
    negative = sorted(name for name, days in limits.items() if days < 0)
    missing = sorted({*(f"group.{name}" for name in groups), "supplement_window"} - set(limits))
    if negative or missing:
        raise ValueError(
            f"{path}: "
            + "; ".join(
                [f"negative: {', '.join(negative)}"] * bool(negative)
                + [f"missing: {', '.join(missing)}"] * bool(missing)
            )
        )
    return TimeLimits(limits)


@functools.cache
def time_limits() -> TimeLimits:
    """This deployment's limits: LIENTHONG_TIME_LIMITS_CSV or the bundled table."""
    return read_limits(Path(os.environ.get(ENV_VAR) or BUNDLED))
