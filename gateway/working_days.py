"""Working days, for legal time limits (Decree 63/2024 counts in working days).

Saturdays and Sundays are not working days; public holidays come from a data
file (gateway/data/holidays.csv, or LIENTHONG_HOLIDAYS_CSV), because the
Government sets the Tết and other holiday dates year by year.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import os
from pathlib import Path

BUNDLED = Path(__file__).parent / "data" / "holidays.csv"
SATURDAY = 5


@functools.cache
def holidays() -> frozenset[dt.date]:
    path = Path(os.environ.get("LIENTHONG_HOLIDAYS_CSV", BUNDLED))
    with path.open(encoding="utf-8") as f:
        return frozenset(dt.date.fromisoformat(row["date"]) for row in csv.DictReader(f))


def is_working_day(day: dt.date) -> bool:
    return day.weekday() < SATURDAY and day not in holidays()


def add_working_days(start: dt.datetime, days: int) -> dt.datetime:
    """The end of the `days`-th working day after `start` (the day of
    submission itself does not count)."""
    day = start.date()
    counted = 0
    while counted < days:
        day += dt.timedelta(days=1)
        if is_working_day(day):
            counted += 1
    return dt.datetime.combine(day, dt.time(23, 59, 59), tzinfo=start.tzinfo)
