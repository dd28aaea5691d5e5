"""The memory of a stack's processes, sampled while a replay runs.

A long replay must show every process's memory flat once warmed up: a leak
grows with the dossiers handled. The sampler reads each process's resident
set size (VmRSS in /proc, so Linux only; elsewhere it samples nothing) every
few seconds in a thread, following a process across a restart by name.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from statistics import mean
from types import TracebackType
from typing import Any

# The first share of the run is warm-up (caches, connection pools, the JIT of
# the Java broker); growth is measured from there to the end.
WARM_UP_SHARE = 0.2


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


class MemorySampler:
    def __init__(self, processes: Callable[[], dict[str, int | None]], every: float = 5.0) -> None:
        self.processes = processes
        self.every = every
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory sampler", daemon=True)
        self._began = 0.0

    def _sample(self) -> None:
        sizes = {}
        for name, pid in self.processes().items():
            size = rss_mb(pid) if pid is not None else None
            if size is not None:
                sizes[name] = size
        self.samples.append((time.monotonic() - self._began, sizes))

    def _run(self) -> None:
        while True:
            self._sample()
            if self._stop.wait(self.every):
                return

    def __enter__(self) -> MemorySampler:
        self._began = time.monotonic()
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()

    def summary(self) -> dict[str, dict[str, Any]]:
        """Per process: MB after warm-up, at the end, the peak, and the growth
        between them (the mean of the last fifth minus that of the fifth after
        warm-up, so one noisy sample does not decide)."""
        names = sorted({name for _, sizes in self.samples for name in sizes})
        found: dict[str, dict[str, Any]] = {}
        for name in names:
            series = [sizes[name] for _, sizes in self.samples if name in sizes]
            if not series:
                continue
            start = int(len(series) * WARM_UP_SHARE)
            fifth = max(1, len(series) // 5)
            after_warm_up = series[start : start + fifth]
            last = series[-fifth:]
            found[name] = {
                "samples": len(series),
                "after_warm_up_mb": round(mean(after_warm_up), 1),
                "end_mb": round(mean(last), 1),
                "max_mb": round(max(series), 1),
                "growth_mb": round(mean(last) - mean(after_warm_up), 1),
            }
        return found


def own_pid() -> dict[str, int | None]:
    return {"replay (this process)": os.getpid()}
