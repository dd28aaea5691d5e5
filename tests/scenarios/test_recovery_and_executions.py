"""Time to recover and concurrent step executions, over small inputs whose
answers are worked out by hand in the comments (not by the code under test)."""

from __future__ import annotations

import json
from pathlib import Path

from scenarios.executions import Execution, count_executions, parse_lines, read_executions
from scenarios.recovery import Backlog, episodes, time_to_recover


def steady(rate: int, begin: int, end: int) -> list[float]:
    """`rate` evenly spaced times in every second of [begin, end)."""
    return [s + (k + 0.5) / rate for s in range(begin, end) for k in range(rate)]


def test_a_healthy_stack_recovers_at_once() -> None:
    # 10/s sent from 0 to 40 s, each ending 0.2 s later: at a whole second t
    # the two sent at t - 0.15 and t - 0.05 are still running, so B = 2
    # everywhere, at and after the fault's end: recovered at once.
    sent = steady(10, 0, 40)
    ended = [t + 0.2 for t in sent]
    backlog = Backlog(sent, ended)
    assert backlog.at(12) == 2
    assert time_to_recover(backlog, 20, 22) == 0


def test_an_outage_recovers_once_its_queue_has_drained() -> None:
    # 10/s sent over [0, 60). Nothing ends during the outage [20, 30); before
    # it each ends 0.2 s after sending (backlog 2 at whole seconds: pre-fault
    # level 2, tolerance max(1, 0.1 × 10) = 1, threshold 3).
    # From 30 the queue (the 100 sent in [20, 30), the two running at 20,
    # and every newcomer behind them) ends at 20/s, one every 0.05 s, until
    # it is gone; then each ends 0.2 s after sending again.
    sent = steady(10, 0, 60)
    before = [t + 0.2 for t in sent if t < 19.8]  # ended before 20
    queue = [t for t in sent if t >= 19.8]  # waiting at 30, then new ones join
    ended = list(before)
    clock = 30.0
    for t in queue:
        clock = max(clock + 0.05, t + 0.2)
        ended.append(clock)
    backlog = Backlog(sent, ended)
    # By hand: at t = 30 + x the queue has lost 20x and gained 10x: backlog
    # 102 + 10x - 20x = 102 - 10x, ≤ 3 once x ≥ 9.9 → at whole seconds after
    # the end, first at 40 (x = 10: 2). From then on it stays at 2 (the
    # steady state): recovered 10 s after the outage's end.
    assert backlog.at(30) == 102
    assert backlog.at(39) == 12
    assert backlog.at(40) == 2
    assert time_to_recover(backlog, 20, 30) == 10


def test_a_dip_that_comes_back_within_the_hold_does_not_count() -> None:
    # Backlog 0 at whole seconds except a spike of 5 at t = 13 (five dossiers
    # sent at 12.5, ended at 13.5). Fault [5, 10): at t = 10, 11, 12 a hold of
    # 5 s would reach 13 → the first clean hold starts at 14 (14..19 all 0).
    sent = [12.5] * 5 + [25.0]
    ended = [13.5] * 5 + [25.0]
    backlog = Backlog(sent, ended)
    assert [backlog.at(t) for t in (12, 13, 14)] == [0, 5, 0]
    assert time_to_recover(backlog, 5, 10) == 4


def test_a_recurring_fault_in_the_window_before_sets_the_level() -> None:
    # Backlog 0 at whole seconds but a bump of 6 at t = 12, 22, 32, 42 (a
    # gateway killed every 10 s: six sent at 11.5 end at 12.5...). One
    # dossier a second is sent too, ending at once: tolerance 1. Fault
    # [20, 21]. Over the five seconds before (15..19) the level is 0,
    # threshold 1: the holds from 21 (21..26) and 22 (22..27) meet the bump
    # at 22; the first clean one is 23..28, recovered 2 s after. Over ten
    # seconds (10..19) the level is 6, threshold 7: recovered at once.
    bumps = [b + 0.5 for b in (11, 21, 31, 41) for _ in range(6)]
    sent = [*bumps, *(float(t) + 0.25 for t in range(50))]
    ended = [*(b + 1 for b in bumps), *(float(t) + 0.25 for t in range(50))]
    backlog = Backlog(sent, ended)
    assert [backlog.at(t) for t in (12, 13, 22)] == [6, 0, 6]
    assert time_to_recover(backlog, 20, 21) == 2
    assert time_to_recover(backlog, 20, 21, pre_fault_s=10) == 0


def test_overlapping_faults_are_one_episode() -> None:
    # A gateway kill [180, 182] inside an agency's outage [180, 211], and a
    # kill [210, 212] overlapping its end: one episode [180, 212]. A kill at
    # [170, 171.5] before it, and one [220, 221.5] after, stand alone.
    spans = [(170, 171.5), (180, 211), (180, 182), (210, 212), (220, 221.5)]
    assert episodes(spans) == [
        (170, 171.5),
        (180, 212),
        (180, 212),
        (180, 212),
        (220, 221.5),
    ]
    assert episodes([]) == []


def test_a_backlog_that_never_drains_never_recovers() -> None:
    # Sent at 1, 2, 3, 4; only one ends (4.5). Fault [2, 5): the pre-fault
    # level is B(1) = 1 (t = 0 gives 0), one sent in the 2 s before the fault
    # → tolerance max(1, 0.05) = 1, threshold 2. From 5 on B stays 3 > 2.
    sent = [1.0, 2.0, 3.0, 4.0]
    ended = [4.5]
    backlog = Backlog(sent, ended)
    assert backlog.at(1) == 1
    assert time_to_recover(backlog, 2, 5) is None


def execution(dossier: str, step: str, process: str, start: float, end: float) -> Execution:
    return Execution(dossier, step, process, start, end)


def test_repeats_and_concurrent_executions_are_told_apart() -> None:
    runs = [
        # d1/verify: once.
        execution("d1", "verify", "gateway#1", 0.0, 1.0),
        # d1/register: twice, one after the other (a redelivery after a kill):
        # run more than once, not concurrent.
        execution("d1", "register", "gateway#1", 1.0, 2.0),
        execution("d1", "register", "gateway-2#1", 3.0, 4.0),
        # d2/register: two processes, overlapping (2.5 < 3.0): concurrent.
        execution("d2", "register", "gateway#1", 2.0, 3.0),
        execution("d2", "register", "gateway-2#1", 2.5, 3.5),
        # d2/insure: three runs, two of them overlapping: one step, concurrent once.
        execution("d2", "insure", "gateway#1", 5.0, 6.0),
        execution("d2", "insure", "gateway-2#1", 5.5, 7.0),
        execution("d2", "insure", "gateway#2", 6.5, 8.0),
        # d3/register: the same process twice at overlapping times: a repeat,
        # but not two processes at once.
        execution("d3", "register", "gateway#1", 0.0, 2.0),
        execution("d3", "register", "gateway#1", 1.0, 3.0),
        # d4/register: touching ends (one ends at 9.0, the other starts at
        # 9.0) do not overlap.
        execution("d4", "register", "gateway#1", 8.0, 9.0),
        execution("d4", "register", "gateway-2#1", 9.0, 10.0),
    ]
    counts = count_executions(runs)
    assert counts.executions == 12
    assert counts.steps == 6
    assert counts.steps_run_more_than_once == 5  # d1/register, d2 ×2, d3, d4
    assert counts.extra_runs == 6  # 1 + 1 + 2 + 1 + 1
    assert counts.concurrent_step_executions == 2  # d2/register, d2/insure
    assert sorted(counts.examples["concurrent_step_executions"]) == ["d2/insure", "d2/register"]
    assert counts.processes == 3  # gateway#1, gateway#2, gateway-2#1


def step_line(dossier: str, step: str, timestamp: str, duration_ms: float) -> str:
    return json.dumps(
        {
            "service": "gateway",
            "dossier_id": dossier,
            "step": step,
            "duration_ms": duration_ms,
            "event": "step",
            "level": "info",
            "logger": "steps",
            "timestamp": timestamp,
        }
    )


def test_a_gateway_log_gives_each_start_its_own_process(tmp_path: Path) -> None:
    lines = [
        "--- lienthong stack: starting gateway-2 at Thu Jan  1 00:00:00 2026 ---",
        step_line("d1", "register_birth", "2026-01-01T00:00:01.500000Z", 500.0),
        json.dumps({"event": "saga event", "step": "x", "timestamp": "2026-01-01T00:00:01Z"}),
        '{"dossier_id": "d1", "step": "register_resid',  # cut off by SIGKILL
        "--- lienthong stack: starting gateway-2 at Thu Jan  1 00:00:05 2026 ---",
        step_line("d1", "register_residence", "2026-01-01T00:00:06Z", 1000.0),
    ]
    log = tmp_path / "gateway-2.log"
    log.write_text("\n".join(lines) + "\n")
    found = read_executions([log, tmp_path / "missing.log"])
    base = 1767225600.0  # 2026-01-01T00:00:00Z
    assert found == [
        Execution("d1", "register_birth", "gateway-2#1", base + 1.0, base + 1.5),
        Execution("d1", "register_residence", "gateway-2#2", base + 5.0, base + 6.0),
    ]
    assert list(parse_lines([], "gateway")) == []
