"""The console's agency switches: take an agency down, or slow it, for a while.

A demo shows the gateway riding out an outage: the agency's processes
(every replica) are stopped and started again when the time is up; added
latency is written where the registry reads it (cli/stack.py:
inject_latency) and taken back at the end. While an agency is down on
purpose, `lienthong up`'s supervisor leaves it alone (cli/supervisor.py:
Holds), or it would start it again a second later.

The clock and the timer are parameters, so the timing is unit-tested
without waiting; every switch is serialised under one lock (the page may
send two at once, a timer may fire meanwhile).
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from cli.supervisor import Holds

MIN_SECONDS = 1
MAX_SECONDS = 600
MAX_MILLISECONDS = 30_000
SWITCHES_OFF = "the switches are off during a replay: its scenario schedules the faults"


class SwitchRefused(Exception):
    """Not this console's to switch (a replay, an agency run elsewhere): 409."""


class UnknownAgency(Exception):
    """No agency of that name: 404."""


def check_known(agency: str, agencies: tuple[str, ...]) -> None:
    if agency not in agencies:
        raise UnknownAgency(
            f"no agency named {agency[:40]!r} (the agencies: {', '.join(agencies)})"
        )


@dataclass(frozen=True)
class AgencySwitch:
    status: str  # up, down, slow, external
    fault_until: dt.datetime | None = None
    latency_ms: int = 0


class Switchboard(Protocol):
    @property
    def switches(self) -> bool:
        """Whether the page may offer the switches at all."""

    def take_down(self, agency: str, seconds: float) -> AgencySwitch: ...

    def slow_down(self, agency: str, milliseconds: int, seconds: float) -> AgencySwitch: ...

    def restore(self, agency: str) -> AgencySwitch: ...

    def state(self, agency: str) -> AgencySwitch: ...


class Cancellable(Protocol):
    def cancel(self) -> None: ...


Timer = Callable[[float, Callable[[], None]], Cancellable]


def thread_timer(seconds: float, action: Callable[[], None]) -> Cancellable:
    timer = threading.Timer(seconds, action)
    timer.daemon = True
    timer.start()
    return timer


class Switched(Protocol):
    """What the switchboard needs of a stack (cli.stack.Stack has it)."""

    def replica_names(self, agency_name: str) -> list[str]: ...

    def stop_component(self, name: str) -> None: ...

    def start_component(self, name: str) -> None: ...

    def is_running(self, name: str) -> bool: ...

    def inject_latency(self, name: str, milliseconds: float) -> None: ...


@dataclass
class _Fault:
    down_until: float | None = None
    slow_until: float | None = None
    latency_ms: int = 0
    timer: Cancellable | None = None
    generation: int = 0


class StackSwitchboard:
    """Switches over a stack of our own processes (`up`, `demo`)."""

    def __init__(
        self,
        stack: Switched,
        agencies: Iterable[str],
        *,
        external: Iterable[str] = (),
        holds: Holds | None = None,
        clock: Callable[[], float] = time.time,
        timer: Timer = thread_timer,
    ) -> None:
        self.stack = stack
        self.agencies = tuple(agencies)
        self.external = frozenset(external)
        self.holds = holds or Holds()
        self.clock = clock
        self.timer = timer
        self._lock = threading.RLock()
        self._faults: dict[str, _Fault] = {}

    @property
    def switches(self) -> bool:
        return True

    def state(self, agency: str) -> AgencySwitch:
        self._known(agency)
        if agency in self.external:
            return AgencySwitch("external")
        with self._lock:
            fault = self._faults.get(agency)
            if fault is None:
                return AgencySwitch("up")
            until = max(t for t in (fault.down_until, fault.slow_until, 0.0) if t is not None)
            when = dt.datetime.fromtimestamp(until, dt.UTC) if until else None
            if fault.down_until is not None:
                return AgencySwitch("down", when, fault.latency_ms)
            return AgencySwitch("slow", when, fault.latency_ms)

    def take_down(self, agency: str, seconds: float) -> AgencySwitch:
        self._ours(agency)
        with self._lock:
            fault = self._faults.setdefault(agency, _Fault())
            fault.down_until = self.clock() + seconds
            self._rearm(agency, fault)
            replicas = self.stack.replica_names(agency)
            for name in replicas:
                # Held first: the supervisor must not start it between our stop and its time.
                self.holds.hold(name)
            for name in replicas:
                if self.stack.is_running(name):
                    self.stack.stop_component(name)
            return self.state(agency)

    def slow_down(self, agency: str, milliseconds: int, seconds: float) -> AgencySwitch:
        self._ours(agency)
        with self._lock:
            fault = self._faults.setdefault(agency, _Fault())
            fault.slow_until = self.clock() + seconds
            fault.latency_ms = milliseconds
            self._rearm(agency, fault)
            self.stack.inject_latency(agency, milliseconds)
            return self.state(agency)

    def restore(self, agency: str) -> AgencySwitch:
        self._ours(agency)
        with self._lock:
            fault = self._faults.pop(agency, None)
            if fault is not None:
                self._end(agency, fault)
            return self.state(agency)

    def restore_all(self) -> None:
        """At the end of the console: nothing left down or slow by it."""
        with self._lock:
            for agency in list(self._faults):
                self.restore(agency)

    # --- internals ---------------------------------------------------------------------

    def _rearm(self, agency: str, fault: _Fault) -> None:
        """One timer per agency, at the latest end of its faults."""
        if fault.timer is not None:
            fault.timer.cancel()
        ends = [t for t in (fault.down_until, fault.slow_until) if t is not None]
        delay = max(0.0, max(ends) - self.clock())
        fault.generation += 1
        generation = fault.generation

        def expire() -> None:
            with self._lock:
                # A restore or a newer switch since: not this timer's business.
                if self._faults.get(agency) is fault and fault.generation == generation:
                    self._faults.pop(agency)
                    fault.timer = None
                    self._end(agency, fault)

        fault.timer = self.timer(delay, expire)

    def _end(self, agency: str, fault: _Fault) -> None:
        if fault.timer is not None:
            fault.timer.cancel()
        if fault.latency_ms:
            self.stack.inject_latency(agency, 0)
        if fault.down_until is not None:
            for name in self.stack.replica_names(agency):
                try:
                    if not self.stack.is_running(name):
                        self.stack.start_component(name)
                finally:
                    # Whatever happened, the supervisor takes over again (and
                    # retries a replica that did not start).
                    self.holds.release(name)

    def _known(self, agency: str) -> None:
        check_known(agency, self.agencies)

    def _ours(self, agency: str) -> None:
        self._known(agency)
        if agency in self.external:
            raise SwitchRefused(
                f"{agency} is plugged in with --agency: it runs elsewhere, this console "
                "cannot stop or slow it"
            )


class NoSwitches:
    """During a replay the scenario schedules the faults; the page only
    watches them (`observe`: the replay tells what it did)."""

    def __init__(self, agencies: Iterable[str], *, external: Iterable[str] = ()) -> None:
        self.agencies = tuple(agencies)
        self.external = frozenset(external)
        self._lock = threading.Lock()
        self._observed: dict[str, AgencySwitch] = {}

    @property
    def switches(self) -> bool:
        return False

    def observe(self, agency: str, status: str, latency_ms: float = 0) -> None:
        """The scenario stopped (down), started (up) or slowed (slow) an agency."""
        if agency in self.agencies:
            with self._lock:
                self._observed[agency] = AgencySwitch(status, None, int(latency_ms))

    def state(self, agency: str) -> AgencySwitch:
        check_known(agency, self.agencies)
        if agency in self.external:
            return AgencySwitch("external")
        with self._lock:
            return self._observed.get(agency, AgencySwitch("up"))

    def _refuse(self, agency: str) -> AgencySwitch:
        self.state(agency)
        raise SwitchRefused(SWITCHES_OFF)

    def take_down(self, agency: str, seconds: float) -> AgencySwitch:
        return self._refuse(agency)

    def slow_down(self, agency: str, milliseconds: int, seconds: float) -> AgencySwitch:
        return self._refuse(agency)

    def restore(self, agency: str) -> AgencySwitch:
        return self._refuse(agency)
