"""What the console shows live, kept from the gateway's events: no I/O here.

The feed (cli/web/feed.py) calls `submitted`, `step_started`, `step_ended`
and `settled` as it reads the topics; each returns the changes to push to
the page (a dossier's row, a step event). The page's numbers are read with
`snapshot()`.

Memory stays bounded however long a replay runs: only the dossiers in
flight are held (plus the 50 most recent rows and the ids of the last ended
ones, to ignore their late events), throughput is kept in one-second
buckets over its window, and step latencies in a capped ring per agency.

Times: the events' own times (CloudEvents `ce_time`) decide which window
an event falls in, against the injected clock (seconds since the epoch);
a console started late reads the history from the beginning without
counting it as a burst of throughput now.
"""

from __future__ import annotations

import datetime as dt
import math
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from cli.render import TERMINAL_STATES, dossier_state
from scenarios.report import nearest_rank

# The gateway contract's DossierState names without the prefix (cli/render.py: dossier_state).
RECEIVED = "RECEIVED"
IN_PROGRESS = "IN_PROGRESS"
NEEDS_SUPPLEMENT = "NEEDS_SUPPLEMENT"
ENDED_STATES = frozenset(dossier_state(state) for state in TERMINAL_STATES)

RECENT_SIZE = 50
THROUGHPUT_WINDOW_S = 10
LATENCY_WINDOW_S = 60
# Per agency: enough for 330 steps a second over the window; older samples go first.
LATENCY_SAMPLES = 20_000
# Ended dossiers remembered so that a late event of theirs (another topic,
# read a little later) does not bring them back as in flight.
REMEMBERED_ENDED = 10_000

Change = tuple[str, dict[str, Any]]  # (SSE event name, its JSON object)


def iso(at: dt.datetime | None) -> str | None:
    """ISO-8601 UTC with a Z, as the page reads it."""
    if at is None:
        return None
    return at.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class DossierRow:
    dossier_id: str
    procedure: str
    state: str
    submitted_at: dt.datetime | None
    updated_at: dt.datetime | None
    current_agency: str | None = None
    ended: bool = False

    def as_json(self) -> dict[str, Any]:
        return {
            "dossier_id": self.dossier_id,
            "procedure": self.procedure,
            "state": self.state,
            "submitted_at": iso(self.submitted_at),
            "updated_at": iso(self.updated_at),
            "current_agency": self.current_agency,
            "ended": self.ended,
        }


@dataclass
class _InFlight:
    row: DossierRow
    # step name → (agency, when its command was published)
    steps: dict[str, tuple[str, dt.datetime]] = field(default_factory=dict)


class LiveState:
    """Counters, windows and the recent dossiers; thread-safe (the feed
    writes from the console's loop, a replay's progress from its own)."""

    def __init__(
        self,
        agencies: Iterable[str],
        *,
        clock: Callable[[], float] = time.time,
        recent_size: int = RECENT_SIZE,
        throughput_window_s: int = THROUGHPUT_WINDOW_S,
        latency_window_s: int = LATENCY_WINDOW_S,
        latency_samples: int = LATENCY_SAMPLES,
        remembered_ended: int = REMEMBERED_ENDED,
    ) -> None:
        self.agencies = tuple(agencies)
        self._clock = clock
        self._lock = threading.Lock()
        self._recent_size = recent_size
        self.throughput_window_s = throughput_window_s
        self.latency_window_s = latency_window_s
        self._counters: dict[str, int] = {}
        self._in_flight: dict[str, _InFlight] = {}
        self._recent: OrderedDict[str, DossierRow] = OrderedDict()  # newest first
        self._ended_ids: set[str] = set()
        self._ended_order: deque[str] = deque()
        self._remembered_ended = remembered_ended
        # second → [submitted, settled]
        self._buckets: dict[int, list[int]] = {}
        self._latency: dict[str, deque[tuple[float, float]]] = {
            name: deque(maxlen=latency_samples) for name in self.agencies
        }
        self._latency_samples = latency_samples
        self._active: dict[str, int] = dict.fromkeys(self.agencies, 0)
        self.replay: dict[str, Any] | None = None

    # --- events ------------------------------------------------------------------------

    def submitted(self, dossier_id: str, procedure: str, at: dt.datetime) -> list[Change]:
        with self._lock:
            if dossier_id in self._ended_ids or dossier_id in self._in_flight:
                return []  # a redelivery, or its end was read first
            row = DossierRow(dossier_id, procedure, RECEIVED, at, at)
            self._in_flight[dossier_id] = _InFlight(row)
            self._count(RECEIVED, +1)
            self._bucket(at, 0)
            self._remember(row)
            return [("dossier", row.as_json())]

    def step_started(
        self,
        dossier_id: str,
        step: str,
        agency: str,
        at: dt.datetime,
        *,
        procedure: str = "",
        submitted_at: dt.datetime | None = None,
    ) -> list[Change]:
        """A step's command was published (`procedure` and `submitted_at` from
        the dossier the command carries: its submission may be read later)."""
        with self._lock:
            changes: list[Change] = [
                ("step", _step(dossier_id, step, agency, phase="started", outcome=None, at=at))
            ]
            if dossier_id in self._ended_ids:
                return changes
            flight = self._in_flight.get(dossier_id)
            if flight is None:
                row = DossierRow(dossier_id, procedure, IN_PROGRESS, submitted_at or at, at)
                flight = self._in_flight[dossier_id] = _InFlight(row)
                self._count(IN_PROGRESS, +1)
                self._bucket(submitted_at or at, 0)
                self._remember(row)
            row = flight.row
            if row.state == RECEIVED:
                self._count(RECEIVED, -1)
                self._count(IN_PROGRESS, +1)
                row.state = IN_PROGRESS
            if step not in flight.steps:
                self._active[agency] = self._active.get(agency, 0) + 1
            flight.steps[step] = (agency, at)
            row.current_agency = agency
            row.updated_at = at
            changes.insert(0, ("dossier", row.as_json()))
            return changes

    def step_ended(
        self,
        dossier_id: str,
        step: str,
        agency: str,
        outcome: str,
        at: dt.datetime,
        *,
        took_ms: float | None = None,
        if_running: bool = False,
    ) -> list[Change]:
        """A step's outcome was published; `took_ms` (the agency call's own
        time) stands in when its command was not seen. `if_running`: only if
        its start was seen and its end not yet (an end read from a
        dossier's timeline, which names every step ended so far)."""
        with self._lock:
            flight = self._in_flight.get(dossier_id)
            if if_running and (flight is None or step not in flight.steps):
                return []
            changes: list[Change] = [
                ("step", _step(dossier_id, step, agency, phase="ended", outcome=outcome, at=at))
            ]
            started = flight.steps.pop(step, None) if flight is not None else None
            if started is not None:
                self._active[started[0]] = max(0, self._active.get(started[0], 0) - 1)
                took_ms = max(0.0, (at - started[1]).total_seconds() * 1000)
            if took_ms is not None:
                samples = self._latency.setdefault(agency, deque(maxlen=self._latency_samples))
                samples.append((at.timestamp(), took_ms))
            if flight is not None:
                row = flight.row
                running = [a for a, _ in flight.steps.values()]
                current = running[-1] if running else None
                row.updated_at = at
                if current != row.current_agency:
                    row.current_agency = current
                    changes.insert(0, ("dossier", row.as_json()))
            return changes

    def settled(
        self,
        dossier_id: str,
        state: str,
        at: dt.datetime,
        *,
        procedure: str = "",
        submitted_at: dt.datetime | None = None,
    ) -> list[Change]:
        """The dossier reached an end (or waits for the declarant: NEEDS_SUPPLEMENT)."""
        with self._lock:
            if dossier_id in self._ended_ids:
                return []
            flight = self._in_flight.get(dossier_id)
            if flight is None:
                row = DossierRow(dossier_id, procedure, state, submitted_at or at, at)
                self._bucket(submitted_at or at, 0)
                self._remember(row)
            else:
                row = flight.row
                self._count(row.state, -1)
                for agency, _ in flight.steps.values():
                    self._active[agency] = max(0, self._active.get(agency, 0) - 1)
                flight.steps.clear()
            self._count(state, +1)
            row.state = state
            row.updated_at = at
            row.current_agency = None
            row.ended = state in ENDED_STATES
            if row.ended:
                self._in_flight.pop(dossier_id, None)
                self._forget_later(dossier_id)
                self._bucket(at, 1)
            elif flight is None:
                # Waits for a supplement: still ours to follow.
                self._in_flight[dossier_id] = _InFlight(row)
            return [("dossier", row.as_json())]

    def set_replay(self, stats: dict[str, Any]) -> list[Change]:
        with self._lock:
            self.replay = stats
            return [("replay", stats)]

    # --- reading -----------------------------------------------------------------------

    def snapshot(self, *, recent: bool = True) -> dict[str, Any]:
        with self._lock:
            now = self._clock()
            window = self.throughput_window_s
            first = math.floor(now) - window + 1
            self._prune_buckets(first)
            submitted = sum(c[0] for s, c in self._buckets.items() if first <= s <= now)
            ended = sum(c[1] for s, c in self._buckets.items() if first <= s <= now)
            latency = {}
            for agency in self._latency:
                since = now - self.latency_window_s
                values = sorted(ms for at, ms in self._latency[agency] if since <= at <= now)
                latency[agency] = {
                    "p50": round(nearest_rank(values, 0.50), 1) if values else None,
                    "p95": round(nearest_rank(values, 0.95), 1) if values else None,
                    "count": len(values),
                    "window_s": self.latency_window_s,
                }
            data: dict[str, Any] = {
                "counters": {s: n for s, n in self._counters.items() if n},
                "throughput": {
                    "submitted_per_s": round(submitted / window, 2),
                    "settled_per_s": round(ended / window, 2),
                    "window_s": window,
                },
                "agency_latency_ms": latency,
                "active_steps": dict(self._active),
                "replay": self.replay,
            }
            if recent:
                data["recent"] = [row.as_json() for row in self._recent.values()]
            return data

    def in_flight_count(self) -> int:
        with self._lock:
            return len(self._in_flight)

    def held(self) -> dict[str, int]:
        """How many things of each kind are held: what bounds the memory."""
        with self._lock:
            return {
                "in_flight": len(self._in_flight),
                "recent": len(self._recent),
                "ended_ids": len(self._ended_ids),
                "buckets": len(self._buckets),
                "latency_samples": sum(len(d) for d in self._latency.values()),
            }

    # --- internals ---------------------------------------------------------------------

    def _count(self, state: str, delta: int) -> None:
        self._counters[state] = self._counters.get(state, 0) + delta

    def _bucket(self, at: dt.datetime, which: int) -> None:
        second = math.floor(at.timestamp())
        if second <= math.floor(self._clock()) - self.throughput_window_s:
            return  # history read late: not throughput now
        counts = self._buckets.setdefault(second, [0, 0])
        counts[which] += 1
        if len(self._buckets) > 4 * self.throughput_window_s:
            self._prune_buckets(math.floor(self._clock()) - self.throughput_window_s + 1)

    def _prune_buckets(self, first: int) -> None:
        for second in [s for s in self._buckets if s < first]:
            del self._buckets[second]

    def _remember(self, row: DossierRow) -> None:
        self._recent[row.dossier_id] = row
        self._recent.move_to_end(row.dossier_id, last=False)
        while len(self._recent) > self._recent_size:
            self._recent.popitem(last=True)

    def _forget_later(self, dossier_id: str) -> None:
        self._ended_ids.add(dossier_id)
        self._ended_order.append(dossier_id)
        while len(self._ended_order) > self._remembered_ended:
            self._ended_ids.discard(self._ended_order.popleft())


def _step(
    dossier_id: str,
    step: str,
    agency: str,
    *,
    phase: str,
    outcome: str | None,
    at: dt.datetime,
) -> dict[str, Any]:
    return {
        "dossier_id": dossier_id,
        "step": step,
        "agency": agency,
        "phase": phase,
        "outcome": outcome,
        "at": iso(at),
    }
