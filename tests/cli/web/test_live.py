"""The console's live state from hand-built events, against numbers worked out by hand."""

from __future__ import annotations

import datetime as dt

from cli.web.live import LiveState

T0 = 1_800_000_000.0  # a whole second


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def at(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(T0 + seconds, dt.UTC)


def state(clock: Clock | None = None, **kwargs: int) -> LiveState:
    return LiveState(("health", "population", "insurance"), clock=clock or Clock(), **kwargs)


def test_a_dossier_moves_through_the_counters_and_its_row_follows() -> None:
    live = state()
    live.submitted("d1", "birth", at(0))
    assert live.snapshot()["counters"] == {"RECEIVED": 1}
    changes = live.step_started("d1", "issue_birth_certificate", "health", at(0.1))
    assert [c[0] for c in changes] == ["dossier", "step"]
    assert changes[0][1]["state"] == "IN_PROGRESS"
    assert changes[0][1]["current_agency"] == "health"
    assert changes[1][1] == {
        "dossier_id": "d1",
        "step": "issue_birth_certificate",
        "agency": "health",
        "phase": "started",
        "outcome": None,
        "at": "2027-01-15T08:00:00.100Z",
    }
    assert live.snapshot()["counters"] == {"IN_PROGRESS": 1}
    assert live.snapshot()["active_steps"] == {"health": 1, "population": 0, "insurance": 0}
    live.step_ended("d1", "issue_birth_certificate", "health", "done", at(0.13))
    assert live.snapshot()["active_steps"]["health"] == 0
    live.settled("d1", "COMPLETED", at(0.5), procedure="birth")
    snapshot = live.snapshot()
    assert snapshot["counters"] == {"COMPLETED": 1}
    assert snapshot["recent"][0] | {} == {
        "dossier_id": "d1",
        "procedure": "birth",
        "state": "COMPLETED",
        "submitted_at": "2027-01-15T08:00:00.000Z",
        "updated_at": "2027-01-15T08:00:00.500Z",
        "current_agency": None,
        "ended": True,
    }
    # A late event of an ended dossier does not bring it back.
    assert live.submitted("d1", "birth", at(0)) == []
    assert live.snapshot()["counters"] == {"COMPLETED": 1}


def test_an_end_read_before_the_submission_counts_once() -> None:
    live = state()
    live.settled("d2", "REJECTED", at(1), procedure="death", submitted_at=at(0))
    live.submitted("d2", "death", at(0))
    live.step_started("d2", "s", "population", at(0.2))
    assert live.snapshot()["counters"] == {"REJECTED": 1}
    assert live.snapshot()["active_steps"]["population"] == 0


def test_throughput_counts_the_events_of_the_last_ten_seconds_only() -> None:
    clock = Clock(T0 + 20)
    live = state(clock)
    # 30 submitted at t=5 (too old at t=20: window is (10, 20]), 20 at t=15, 5 at t=20.
    for n in range(30):
        live.submitted(f"old{n}", "birth", at(5))
    for n in range(20):
        live.submitted(f"mid{n}", "birth", at(15))
    for n in range(5):
        live.submitted(f"new{n}", "birth", at(20))
    for n in range(8):
        live.settled(f"mid{n}", "COMPLETED", at(19))
    throughput = live.snapshot()["throughput"]
    assert throughput == {"submitted_per_s": 2.5, "settled_per_s": 0.8, "window_s": 10}
    clock.now = T0 + 26  # t=15 and t=19 now fall out of (16, 26]... 19 stays
    assert live.snapshot()["throughput"] == {
        "submitted_per_s": 0.5,
        "settled_per_s": 0.8,
        "window_s": 10,
    }


def test_step_latency_percentiles_per_agency_over_the_last_minute() -> None:
    clock = Clock(T0 + 100)
    live = state(clock)
    # population: 1..20 ms, ended at t=90 (inside the minute); 1000 ms at t=30 (outside).
    live.submitted("x", "birth", at(0))
    live.step_started("x", "old", "population", at(29))
    live.step_ended("x", "old", "population", "done", at(30))
    for ms in range(1, 21):
        live.step_started("x", f"s{ms}", "population", at(90 - ms / 1000))
        live.step_ended("x", f"s{ms}", "population", "done", at(90))
    latency = live.snapshot()["agency_latency_ms"]
    # Nearest rank: p50 of 20 values is the 10th (10 ms), p95 the 19th (19 ms).
    assert latency["population"] == {"p50": 10.0, "p95": 19.0, "count": 20, "window_s": 60}
    assert latency["health"] == {"p50": None, "p95": None, "count": 0, "window_s": 60}


def test_memory_stays_bounded_over_many_dossiers() -> None:
    clock = Clock(T0)
    live = state(clock, recent_size=50, remembered_ended=1000, latency_samples=500)
    for n in range(20_000):
        clock.now = T0 + n / 100
        when = at(n / 100)
        live.submitted(f"d{n}", "birth", when)
        live.step_started(f"d{n}", "register_birth", "population", when)
        live.step_ended(f"d{n}", "register_birth", "population", "done", when)
        live.settled(f"d{n}", "COMPLETED", when)
    held = live.held()
    assert held["in_flight"] == 0
    assert held["recent"] == 50
    assert held["ended_ids"] == 1000
    assert held["latency_samples"] <= 500
    assert held["buckets"] <= 40
    assert live.snapshot()["counters"] == {"COMPLETED": 20_000}
    assert live.snapshot()["recent"][0]["dossier_id"] == "d19999"
