"""Report dicts written out by hand (report.json's shape), for the renderers'
tests: every figure here is typed in, not computed by the report code."""

from __future__ import annotations

from typing import Any


def _latency(count: int, p50: float, p95: float, p99: float, top: float) -> dict[str, Any]:
    return {"count": count, "p50": p50, "p95": p95, "p99": p99, "max": top}


def hand_report(**changes: Any) -> dict[str, Any]:
    """A clean smoke-like run with one chaos block: two faults, two gateways."""
    report: dict[str, Any] = {
        "scenario": "smoke",
        "started_at": "2026-11-30T07:10:00+00:00",
        "wall_seconds": 24.5,
        "submitted": 78,
        "completed": 60,
        "completed_with_refusals": 3,
        "rejected": 9,
        "needs_supplement": 6,
        "lost": 0,
        "duplicated_effects": 0,
        "unfinished": 0,
        "throughput_per_s": 3.1836,
        "faults": {
            "already_dead": {"expected": 2, "observed": 2},
            "missing_fields": {"expected": 6, "observed": 6},
        },
        "procedures": {
            "birth_registration": {"done": 40, "refused": 0},
            "health_insurance_card": {"done": 37, "refused": 3},
        },
        "refusals": {"health_insurance_card by insurance: CHILD_TOO_OLD": 3},
        "latency_ms": {
            "end_to_end": _latency(78, 83.2, 110.4, 131.9, 140.0),
            "steps": {
                "issue_health_insurance_card": _latency(40, 4.75, 9.1, 12.3, 12.5),
                "register_birth": _latency(43, 6.5, 11.0, 15.25, 16.0),
            },
        },
        "over_time": {"window_s": 1.0, "t_s": [0.0, 1.0], "submitted_per_s": [2, 3]},
        "scenario_detail": {
            "name": "smoke",
            "description": "A quick look at every fault kind.",
            "seed": 7,
            "population": 2000,
            "births_share": 0.683,
            "funeral_claim_share": 0.5,
            "faults": {"already_dead": 0.08},
            "arrival": [{"duration_s": 20, "rate": 4}],
            "outages": [{"agency": "insurance", "at_s": 5, "duration_s": 3}],
            "added_latency": [{"agency": "health", "at_s": 8, "duration_s": 4, "latency_ms": 150}],
            "drain_timeout_s": 60,
            "duration_s": 20.0,
            "expected_declarations": 78.4,
        },
        "plots": ["throughput.png", "latency_over_time.png", "latency_per_step.png"],
        "chaos": {
            "gateways": 2,
            "faults": [
                {
                    "kind": "agency_kill",
                    "target": "insurance",
                    "at_s": 5.02,
                    "restarted_s": 8.1,
                    "up_s": 8.65,
                    "episode_s": [5.02, 8.65],
                    "recovery_s": 2.0,
                    "error": None,
                },
                {
                    "kind": "gateway_kill",
                    "target": "gateway-2",
                    "at_s": 10.0,
                    "restarted_s": 11.5,
                    "up_s": 12.0,
                    "episode_s": [10.0, 12.0],
                    "recovery_s": None,
                    "error": None,
                },
            ],
            "recovery_definition": "the backlog back to its level before the fault",
            "latency_ms_by_window": {
                "inside_outages": _latency(12, 2950.0, 3100.0, 3150.0, 3160.0),
                "outside_outages": _latency(66, 80.5, 105.0, 120.0, 130.0),
                "windows_s": [[5.02, 8.65]],
            },
            "unfinished_states": {},
            "left_received": 0,
            "left_in_progress": 0,
            "stored_unacknowledged": 0,
            "executions": {
                "steps": 300,
                "executions": 304,
                "steps_run_more_than_once": 4,
                "concurrent_step_executions": 0,
            },
            "concurrency_definition": "two processes running one step at once",
        },
        "unexpected_outcomes": {},
        "audit_not_checked": [],
        "memory_mb": {
            "gateway": {
                "samples": 24,
                "after_warm_up_mb": 81.5,
                "end_mb": 84.0,
                "max_mb": 86.25,
                "growth_mb": 2.5,
            },
            "population": {
                "samples": 24,
                "after_warm_up_mb": 60.0,
                "end_mb": 59.0,
                "max_mb": 61.0,
                "growth_mb": -1.0,
            },
        },
        "commit": "985062f",
    }
    report.update(changes)
    return report
