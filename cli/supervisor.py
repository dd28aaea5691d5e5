"""`lienthong up`'s watch over its children: a registry or gateway that dies is
started again on its port, database and settings, with exponential backoff,
so a crash is a blip rather than the end of the stack (issue: faults are
normal). A child that keeps failing is retried less and less often, never
given up on; one that stayed up long enough is forgiven its past failures.

The supervisor takes the stack, the clock and the printer as parameters, so
its timing is unit-tested without processes (tests/cli/test_supervisor.py)
and its real behaviour end to end (tests/cli/test_commands_end_to_end.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol


class Supervised(Protocol):
    """What the supervisor needs of a stack (cli.stack.Stack has it)."""

    def component_names(self) -> Iterable[str]: ...

    def is_running(self, name: str) -> bool: ...

    def start_component(self, name: str) -> None:
        """Start it again and wait until it serves; raises if it does not."""


class Holds:
    """Children stopped on purpose (the console's outage switch,
    cli/web/switchboard.py): the supervisor leaves them down until released.
    Thread-safe: the console holds from its own thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._held: set[str] = set()

    def hold(self, name: str) -> None:
        with self._lock:
            self._held.add(name)

    def release(self, name: str) -> None:
        with self._lock:
            self._held.discard(name)

    def __contains__(self, name: object) -> bool:
        with self._lock:
            return name in self._held


@dataclass(frozen=True)
class RestartPolicy:
    first_delay_seconds: float = 1.0
    max_delay_seconds: float = 30.0
    # Up this long since its last start: the next failure starts from the first delay.
    healthy_after_seconds: float = 60.0

    def delay(self, failures: int) -> float:
        """The pause before the next attempt after `failures` failures in a row."""
        growth: float = 2.0 ** max(0, failures - 1)
        return min(self.max_delay_seconds, self.first_delay_seconds * growth)


@dataclass
class _Record:
    failures: int = 0
    next_attempt: float = 0.0
    started_at: float = 0.0
    down: bool = False


@dataclass
class Supervisor:
    stack: Supervised
    say: Callable[[str], None]
    policy: RestartPolicy = field(default_factory=RestartPolicy)
    clock: Callable[[], float] = time.monotonic
    holds: Holds = field(default_factory=Holds)
    _records: dict[str, _Record] = field(default_factory=dict)

    def check(self) -> list[str]:
        """Look at every child once; start the dead ones whose pause is over.
        Returns the names started again this time."""
        restarted = []
        now = self.clock()
        for name in self.stack.component_names():
            if name in self.holds:
                # Down on purpose: its restart is whoever held it's; once
                # released it is judged afresh (not as a failure of its own).
                self._records[name] = _Record(started_at=now)
                continue
            record = self._records.setdefault(name, _Record(started_at=now))
            if self.stack.is_running(name):
                if record.failures and now - record.started_at >= self.policy.healthy_after_seconds:
                    record.failures = 0
                continue
            if not record.down:
                # Newly found dead: one failure, and the first pause before the restart.
                record.down = True
                if now - record.started_at >= self.policy.healthy_after_seconds:
                    record.failures = 0
                record.failures += 1
                record.next_attempt = now + self.policy.delay(record.failures)
                self.say(
                    f"{name} stopped unexpectedly; starting it again in "
                    f"{self.policy.delay(record.failures):g} s"
                )
            if now < record.next_attempt:
                continue
            try:
                self.stack.start_component(name)
            except Exception as error:  # a child that cannot start is retried, later
                record.failures += 1
                record.next_attempt = self.clock() + self.policy.delay(record.failures)
                first_line = str(error).splitlines()[0] if str(error) else type(error).__name__
                self.say(
                    f"{name} did not start again ({first_line}); next try in "
                    f"{self.policy.delay(record.failures):g} s"
                )
                continue
            record.down = False
            record.started_at = self.clock()
            restarted.append(name)
            self.say(f"{name} is serving again")
        return restarted
