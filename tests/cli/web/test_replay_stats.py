"""A replay's progress as the console's ReplayStats, against hand-worked numbers."""

from __future__ import annotations

from cli.web.replay_stats import replay_stats


def test_recent_latency_and_throughput_windows() -> None:
    # Ended at t = 1..20 s with latencies 10, 20, ..., 200 ms; now t = 20.
    ends = [(float(t), 10.0 * t) for t in range(1, 21)]
    stats = replay_stats(
        "smoke",
        phase="replaying",
        planned=300,
        sent=120,
        accepted=118,
        settled=20,
        failed=2,
        elapsed_s=20.0,
        duration_s=30.0,
        recent_ends=ends,
    )
    # Last 10 s: t = 10..20, 11 values 100..200 ms. Nearest rank: p50 = 6th = 150,
    # p95 = ceil(10.45) = 11th = 200, p99 = 11th = 200.
    assert stats["latency_ms"] == {"p50": 150.0, "p95": 200.0, "p99": 200.0, "window_s": 10.0}
    # Last 5 s: t = 15..20, 6 dossiers over 5 s.
    assert stats["throughput_per_s"] == 1.2
    assert stats["in_flight"] == 98
    assert stats["final"] is None and stats["phase"] == "replaying"


def test_nothing_ended_yet() -> None:
    stats = replay_stats("smoke", phase="seeding", planned=300)
    assert stats["latency_ms"]["p50"] is None and stats["throughput_per_s"] == 0.0
