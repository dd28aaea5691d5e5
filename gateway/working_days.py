"""Working days, for legal time limits (Decree 63/2024 counts in working days).

Saturdays and Sundays are not working days; public holidays come from a data
file (gateway/data/holidays.csv, or LIENTHONG_HOLIDAYS_CSV), because the
Government sets the Tết and other holiday dates year by year. Days are
Vietnam's calendar days, whatever the clock's zone: a dossier received at
20:00 UTC arrived at 03:00 the next day in Hà Nội.

A dossier received after the daily cut-off (15:00, as the press reported the
rules of Decree 63/2024; LIENTHONG_DAILY_CUTOFF, e.g. "15:00") or on a day
off counts as received on the next working day.
"""

from __future__ import annotations

import csv
import datetime as dt
import functools
import os
from pathlib import Path

from common.clock import VIETNAM

BUNDLED = Path(__file__).parent / "data" / "holidays.csv"
SATURDAY = 5
CUTOFF_ENV = "LIENTHONG_DAILY_CUTOFF"
DEFAULT_CUTOFF = dt.time(15, 0)


@functools.cache
def holidays() -> frozenset[dt.date]:
    path = Path(os.environ.get("LIENTHONG_HOLIDAYS_CSV", BUNDLED))
    with path.open(encoding="utf-8") as f:
        return frozenset(dt.date.fromisoformat(row["date"]) for row in csv.DictReader(f))


@functools.cache
def daily_cutoff() -> dt.time:
    """The hour after which a dossier counts from the next working day."""
    written = os.environ.get(CUTOFF_ENV, "").strip()
    if not written:
        return DEFAULT_CUTOFF
    try:
        return dt.time.fromisoformat(written)
    except ValueError:
        raise SystemExit(
            f"{CUTOFF_ENV} must be a time of day written HH:MM, not {written[:20]!r}"
        ) from None


def is_working_day(day: dt.date) -> bool:
    return day.weekday() < SATURDAY and day not in holidays()


def next_working_day(day: dt.date) -> dt.date:
    day += dt.timedelta(days=1)
    while not is_working_day(day):
        day += dt.timedelta(days=1)
    return day


def day_received(received: dt.datetime) -> dt.date:
    """The working day a dossier counts as received on (Vietnam time): the
    same day before the cut-off, else the next working day."""
    local = received.astimezone(VIETNAM)
    day = local.date()
    if not is_working_day(day) or local.time() >= daily_cutoff():
        return next_working_day(day)
    return day


def due_by(received: dt.datetime, days: int) -> dt.datetime:
    """The end (Vietnam time) of the `days`-th working day after the day the
    dossier counts as received; 0 is that same working day."""
    day = day_received(received)
    for _ in range(days):
        day = next_working_day(day)
    return dt.datetime.combine(day, dt.time(23, 59, 59), tzinfo=VIETNAM)


def add_working_days(start: dt.datetime, days: int) -> dt.datetime:
    """The end (Vietnam time) of the `days`-th working day after `start`'s
    day; the day itself does not count and no cut-off applies (the
    declarant's supplement window runs from the day it was asked for)."""
    day = start.astimezone(VIETNAM).date()
    for _ in range(days):
        day = next_working_day(day)
    return dt.datetime.combine(day, dt.time(23, 59, 59), tzinfo=VIETNAM)
