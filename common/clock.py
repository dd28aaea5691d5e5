"""The simulator's clock: real time by default, accelerated for scenarios.

Due dates, supplement windows, "today" in the registries and breach checks
all read this clock, so a scenario that compresses a year into minutes sees
deadlines pass as they would. Every process builds the same clock from the
environment: simulated time = LIENTHONG_CLOCK_START + (real now −
LIENTHONG_CLOCK_EPOCH) × LIENTHONG_CLOCK_SPEEDUP, so separate processes agree
on what time it is.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from collections.abc import Callable
from typing import Protocol
from zoneinfo import ZoneInfo

# Civil dates (birth, death, registration) are Vietnamese calendar days.
VIETNAM = ZoneInfo("Asia/Ho_Chi_Minh")


class Clock(Protocol):
    def now(self) -> dt.datetime: ...


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)


class AcceleratedClock:
    """Simulated time = start + (real now − epoch) × speedup."""

    def __init__(self, speedup: float, start: dt.datetime, epoch: float | None = None) -> None:
        self.speedup = speedup
        self.start = start
        self.epoch = time.time() if epoch is None else epoch

    def now(self) -> dt.datetime:
        return self.start + dt.timedelta(seconds=(time.time() - self.epoch) * self.speedup)


class FixedClock:
    """For tests: time moves only when told to."""

    def __init__(self, at: dt.datetime) -> None:
        self.at = at

    def now(self) -> dt.datetime:
        return self.at

    def advance(self, delta: dt.timedelta) -> None:
        self.at += delta


def clock_from_env() -> Clock:
    speedup = float(os.environ.get("LIENTHONG_CLOCK_SPEEDUP", "1") or "1")
    start = os.environ.get("LIENTHONG_CLOCK_START")
    if speedup == 1.0 and not start:
        return SystemClock()
    epoch = os.environ.get("LIENTHONG_CLOCK_EPOCH")
    return AcceleratedClock(
        speedup,
        dt.datetime.fromisoformat(start) if start else dt.datetime.now(dt.UTC),
        float(epoch) if epoch else None,
    )


def vietnam_today(clock: Clock) -> dt.date:
    return clock.now().astimezone(VIETNAM).date()


def civil_today() -> Callable[[], dt.date]:
    """'Today' for a registry: the Vietnamese calendar day on the shared clock."""
    clock = clock_from_env()
    return lambda: vietnam_today(clock)


def latest_past_day(now: dt.datetime, tolerance: dt.timedelta) -> dt.date:
    """The latest Vietnamese calendar day a date recording the past may name:
    today, or tomorrow once tomorrow is less than `tolerance` away (a client
    whose clock runs slightly ahead of ours, just before midnight)."""
    return (now + tolerance).astimezone(VIETNAM).date()


def civil_latest_past_day(tolerance: dt.timedelta) -> Callable[[], dt.date]:
    """latest_past_day for a registry, on the shared clock."""
    clock = clock_from_env()
    return lambda: latest_past_day(clock.now(), tolerance)
