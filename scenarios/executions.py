"""Which gateway process ran which saga step, and when: steps run more than
once, and steps run by two processes at the same time.

The source is the gateways' own logs: gateway/executor.py logs one JSON line
`"event": "step"` per step it ran (bound `dossier_id`, `step`, `duration_ms`
from the step's start to the line, and the line's `timestamp`, ISO UTC). So an
execution runs from timestamp - duration_ms to timestamp. The process is the
log file (one per gateway name, e.g. gateway-2.log) and which start of it the
line follows: the stack writes a `--- lienthong stack: starting NAME ...`
line into the log before each start, so `gateway-2#3` is gateway-2's third
process.

Definitions:
- a step *run more than once*: a (dossier, step) with two or more step lines
  (at-least-once delivery allows it; the agencies' request ids keep the
  effect single). `extra_runs` counts the lines beyond the first.
- a *concurrent execution*: a (dossier, step) run by two different processes
  whose [start, end] intervals overlap (start_a < end_b and start_b < end_a):
  a partition's work done by two owners at once. Counted once per
  (dossier, step), however many pairs overlap.

Limit: a process killed in the middle of a step never logs that step, so an
execution cut short by SIGKILL is not seen (the registry may have done the
work; the audit counts its effects).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "START_MARKER",
    "Execution",
    "ExecutionCounts",
    "count_executions",
    "read_executions",
]

# cli/stack.py writes this line into a component's log before each start.
START_MARKER = "--- lienthong stack: starting "
_EXAMPLES = 5


@dataclass(frozen=True)
class Execution:
    dossier_id: str
    step: str
    process: str  # "<log name>#<start number>"
    started_s: float  # Unix seconds
    finished_s: float


@dataclass
class ExecutionCounts:
    executions: int = 0  # step lines
    steps: int = 0  # distinct (dossier, step)
    steps_run_more_than_once: int = 0
    extra_runs: int = 0
    concurrent_step_executions: int = 0
    processes: int = 0
    examples: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "executions": self.executions,
            "steps": self.steps,
            "steps_run_more_than_once": self.steps_run_more_than_once,
            "extra_runs": self.extra_runs,
            "concurrent_step_executions": self.concurrent_step_executions,
            "processes": self.processes,
            "examples": self.examples,
        }


def _unix(timestamp: str) -> float:
    return dt.datetime.fromisoformat(timestamp).timestamp()


def parse_lines(lines: Iterable[str], name: str) -> Iterator[Execution]:
    """The step executions in one gateway log's lines; `name` names the log."""
    start = 0
    for line in lines:
        if line.startswith(START_MARKER):
            start += 1
            continue
        # A cheap test before parsing: most lines are other events.
        if not line.startswith("{") or '"step"' not in line:
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut off by SIGKILL
        if record.get("event") != "step" or "dossier_id" not in record:
            continue
        finished = _unix(record["timestamp"])
        started = finished - float(record.get("duration_ms", 0.0)) / 1000
        yield Execution(
            str(record["dossier_id"]),
            str(record["step"]),
            f"{name}#{max(start, 1)}",
            started,
            finished,
        )


def read_executions(log_files: Iterable[Path]) -> list[Execution]:
    found: list[Execution] = []
    for path in log_files:
        try:
            with path.open(encoding="utf-8", errors="replace") as lines:
                found.extend(parse_lines(lines, path.stem))
        except FileNotFoundError:
            continue
    return found


def _note(counts: ExecutionCounts, finding: str, example: str) -> None:
    seen = counts.examples.setdefault(finding, [])
    if len(seen) < _EXAMPLES:
        seen.append(example)


def count_executions(executions: Iterable[Execution]) -> ExecutionCounts:
    by_step: dict[tuple[str, str], list[Execution]] = {}
    processes: set[str] = set()
    counts = ExecutionCounts()
    for execution in executions:
        counts.executions += 1
        processes.add(execution.process)
        by_step.setdefault((execution.dossier_id, execution.step), []).append(execution)
    counts.steps = len(by_step)
    counts.processes = len(processes)
    for (dossier, step), runs in by_step.items():
        if len(runs) < 2:
            continue
        counts.steps_run_more_than_once += 1
        counts.extra_runs += len(runs) - 1
        _note(counts, "steps_run_more_than_once", f"{dossier}/{step}")
        if any(
            a.process != b.process and a.started_s < b.finished_s and b.started_s < a.finished_s
            for a, b in itertools.combinations(runs, 2)
        ):
            counts.concurrent_step_executions += 1
            _note(counts, "concurrent_step_executions", f"{dossier}/{step}")
    return counts
