"""Time to recover from a fault, from when dossiers were sent and when they ended.

The definition (also in scenarios/README.md, "Chaos"):

- The *backlog* B(t) is the number of dossiers sent (at their scheduled
  time: the open model's offered load) by time t less those that ended by t.
- The *pre-fault level* P is the highest backlog at the whole seconds
  before the fault began (t = start - 1 ... start - W, those at or after 0),
  W being five seconds or the period of a fault that recurs throughout the
  run (a gateway killed every 10 s: W = 10), whichever is longer: the
  backlog the stack carries at that load, its noise and its recurring
  faults included.
- The *tolerance* is a tenth of the offered rate then (dossiers sent in the
  5 s before the fault, / 5, × 0.1), at least one dossier.
- The fault has *recovered* at the first t = end, end + 1 s, end + 2 s...
  at which the backlog is at most P + tolerance and stays so at t + 1 ...
  t + 5 s: dossiers settle at the offered rate again and what queued up
  meanwhile is gone. The time to recover is t - end, in whole seconds after
  the fault ended (its process serves again).
- Faults that overlap (a gateway killed while an agency is down) are one
  *episode*: the stack cannot recover from one before the other is over.
  Each fault of an episode is measured from the episode's start (for P) and
  its end (for t), and the report says so.
- Never recovered (None): the backlog never came back before the run ended
  (after the last dossier the backlog no longer changes, so it is checked
  up to there).

A bare rate test ("ended per second >= 90 % of sent per second") would call a
stack recovered while it still drains a backlog faster than the offered rate,
hours of latency still queued; the backlog test waits until the queue is gone.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence

__all__ = ["HOLD_S", "PRE_FAULT_S", "Backlog", "episodes", "time_to_recover"]

PRE_FAULT_S = 5
HOLD_S = 5
TOLERANCE_SHARE = 0.1


class Backlog:
    """B(t) over sorted send and end times."""

    def __init__(self, sent_s: Sequence[float], ended_s: Sequence[float]) -> None:
        self.sent = sorted(sent_s)
        self.ended = sorted(ended_s)
        self.last_change = max([*self.sent[-1:], *self.ended[-1:]], default=0.0)

    def at(self, t: float) -> int:
        """Sent at or before t, less ended at or before t."""
        return bisect.bisect_right(self.sent, t) - bisect.bisect_right(self.ended, t)

    def sent_between(self, begin: float, end: float) -> int:
        """Sent in [begin, end)."""
        return bisect.bisect_left(self.sent, end) - bisect.bisect_left(self.sent, begin)


def episodes(spans: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """For each fault's [start, end], the [start, end] of its episode: the
    faults that overlap it, and those that overlap them, and so on."""
    order = sorted(range(len(spans)), key=lambda i: spans[i])
    result: list[tuple[float, float]] = [(0.0, 0.0)] * len(spans)
    group: list[int] = []
    group_start = group_end = 0.0
    for i in [*order, None]:
        if i is not None and group and spans[i][0] <= group_end:
            group.append(i)
            group_end = max(group_end, spans[i][1])
            continue
        for j in group:
            result[j] = (group_start, group_end)
        if i is not None:
            group, (group_start, group_end) = [i], spans[i]
    return result


def time_to_recover(
    backlog: Backlog, start_s: float, end_s: float, *, pre_fault_s: int = PRE_FAULT_S
) -> float | None:
    """Seconds after `end_s` until the backlog is back to its level in the
    `pre_fault_s` before `start_s` (the module's docstring has the
    definition); None if never."""
    before = [start_s - k for k in range(1, pre_fault_s + 1) if start_s - k >= 0]
    level = max((backlog.at(t) for t in before), default=0)
    span = min(float(PRE_FAULT_S), start_s)
    rate = backlog.sent_between(start_s - span, start_s) / span if span > 0 else 0.0
    threshold = level + max(1.0, TOLERANCE_SHARE * rate)
    # Past the last send or end the backlog is constant: checking one hold
    # beyond it settles the question.
    steps = max(0, math.ceil(backlog.last_change - end_s)) + 1
    for step in range(steps):
        t = end_s + step
        if all(backlog.at(t + k) <= threshold for k in range(HOLD_S + 1)):
            return float(step)
    return None
