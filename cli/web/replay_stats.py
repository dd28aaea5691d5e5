"""A replay's progress as the console shows it (ReplayStats): counts, the
end-to-end latency percentiles of the dossiers ended in the last 10 s, the
dossiers ended per second over the last 5 s, and at the end what the audit
found. Pure: the replay (scenarios/replay.py) hands its Progress to the
callback cli/replay.py passes in; nothing here imports the other way.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from scenarios.report import nearest_rank

LATENCY_WINDOW_S = 10.0
THROUGHPUT_WINDOW_S = 5.0


def replay_stats(
    scenario: str,
    *,
    phase: str,
    planned: int,
    sent: int = 0,
    accepted: int = 0,
    settled: int = 0,
    failed: int = 0,
    elapsed_s: float = 0.0,
    duration_s: float = 0.0,
    recent_ends: Iterable[tuple[float, float]] = (),
) -> dict[str, Any]:
    """`recent_ends`: (seconds from the start when it ended, end-to-end ms)."""
    latencies: list[float] = []
    lately = 0
    for ended_at, took_ms in recent_ends:
        if ended_at >= elapsed_s - LATENCY_WINDOW_S:
            latencies.append(took_ms)
        if ended_at >= elapsed_s - THROUGHPUT_WINDOW_S:
            lately += 1
    latencies.sort()

    def rank(p: float) -> float | None:
        return round(nearest_rank(latencies, p / 100), 1) if latencies else None

    return {
        "scenario": scenario,
        "phase": phase,
        "planned": planned,
        "sent": sent,
        "accepted": accepted,
        "settled": settled,
        "failed": failed,
        "in_flight": max(0, accepted - settled),
        "elapsed_s": round(elapsed_s, 1),
        "duration_s": duration_s,
        "throughput_per_s": round(lately / THROUGHPUT_WINDOW_S, 2),
        "latency_ms": {
            "p50": rank(50),
            "p95": rank(95),
            "p99": rank(99),
            "window_s": LATENCY_WINDOW_S,
        },
        "final": None,
    }


def final_of(
    *, lost: int, duplicated: int, completed: int, unexpected: int, report_dir: str
) -> dict[str, Any]:
    return {
        "lost": lost,
        "duplicated": duplicated,
        "completed": completed,
        "unexpected": unexpected,
        "report_dir": report_dir,
    }
