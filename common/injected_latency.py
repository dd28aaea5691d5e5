"""Latency a load test adds to a running registry, and takes away again.

A replay scenario may slow an agency down for a window ("health answers
300 ms late from minute 2 to minute 4") without restarting it. The registry
reads the added latency, in milliseconds, from the file named by
LIENTHONG_INJECTED_LATENCY_FILE (a missing or empty file means none),
re-reading it at most every REFRESH_SECONDS, so the check costs a clock read
per call. Unset, nothing is ever read.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

ENV = "LIENTHONG_INJECTED_LATENCY_FILE"
REFRESH_SECONDS = 0.2


class InjectedLatency:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._seconds = 0.0
        self._read_at = float("-inf")

    @classmethod
    def from_env(cls) -> InjectedLatency:
        value = os.environ.get(ENV, "")
        return cls(Path(value) if value else None)

    def seconds(self) -> float:
        """The latency to add to this call."""
        if self.path is None:
            return 0.0
        now = time.monotonic()
        if now - self._read_at >= REFRESH_SECONDS:
            self._read_at = now
            self._seconds = _read_ms(self.path) / 1000
        return self._seconds


def _read_ms(path: Path) -> float:
    try:
        text = path.read_text().strip()
    except FileNotFoundError:
        return 0.0
    try:
        return max(0.0, float(text)) if text else 0.0
    except ValueError:
        return 0.0  # a half-written file: the next read gets it


def write_injected_latency(path: Path, milliseconds: float) -> None:
    """Set the latency a registry adds (0 to stop); atomic, so a registry
    never reads half a number."""
    temporary = path.with_suffix(".tmp")
    temporary.write_text(f"{milliseconds}\n")
    temporary.replace(path)
