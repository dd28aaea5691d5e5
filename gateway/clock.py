"""The gateway's clock: real time by default, accelerated for scenarios.

Due dates, supplement windows and breach checks all read this clock, so a
scenario that compresses a year into minutes sees deadlines pass as they would.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> dt.datetime: ...


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


class AcceleratedClock:
    """Simulated time = start + real elapsed × speedup."""

    def __init__(self, speedup: float, start: dt.datetime | None = None) -> None:
        self.speedup = speedup
        self.start = start or dt.datetime.now(dt.UTC)
        self._real_start = time.monotonic()

    def now(self) -> dt.datetime:
        elapsed = time.monotonic() - self._real_start
        return self.start + dt.timedelta(seconds=elapsed * self.speedup)


class FixedClock:
    """For tests: time moves only when told to."""

    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def now(self) -> dt.datetime:
        return self.at

    def advance(self, delta: dt.timedelta) -> None:
        self.at += delta


def make_clock(speedup: float, start: dt.datetime | None) -> Clock:
    if speedup == 1.0 and start is None:
        return SystemClock()
    return AcceleratedClock(speedup, start)
