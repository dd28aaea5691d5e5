"""The agency switches over a stand-in stack, with a fake clock and timers fired by hand."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from cli.supervisor import Holds
from cli.web.switchboard import StackSwitchboard, SwitchRefused, UnknownAgency


@dataclass
class FakeStack:
    running: dict[str, bool] = field(
        default_factory=lambda: {"population": True, "population-2": True, "health": True}
    )
    latency: dict[str, float] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    def replica_names(self, agency_name: str) -> list[str]:
        return [n for n in self.running if n.split("-")[0] == agency_name]

    def stop_component(self, name: str) -> None:
        self.calls.append(f"stop {name}")
        self.running[name] = False

    def start_component(self, name: str) -> None:
        self.calls.append(f"start {name}")
        self.running[name] = True

    def is_running(self, name: str) -> bool:
        return self.running[name]

    def inject_latency(self, name: str, milliseconds: float) -> None:
        self.latency[name] = milliseconds


@dataclass
class Timers:
    armed: list[tuple[float, Callable[[], None], Timers.Handle]] = field(default_factory=list)

    @dataclass
    class Handle:
        cancelled: bool = False

        def cancel(self) -> None:
            self.cancelled = True

    def __call__(self, seconds: float, action: Callable[[], None]) -> Timers.Handle:
        handle = Timers.Handle()
        self.armed.append((seconds, action, handle))
        return handle

    def fire_all(self) -> None:
        for _, action, handle in list(self.armed):
            if not handle.cancelled:
                action()


def board() -> tuple[FakeStack, Timers, Holds, StackSwitchboard, list[float]]:
    stack, timers, holds, now = FakeStack(), Timers(), Holds(), [1000.0]
    switchboard = StackSwitchboard(
        stack,
        ("population", "health", "insurance"),
        external=("insurance",),
        holds=holds,
        clock=lambda: now[0],
        timer=timers,
    )
    return stack, timers, holds, switchboard, now


def test_an_outage_stops_every_replica_holds_them_and_restarts_them_when_the_time_is_up() -> None:
    stack, timers, holds, switchboard, _ = board()
    state = switchboard.take_down("population", 30)
    assert state.status == "down" and state.fault_until is not None
    assert state.fault_until.timestamp() == 1030.0
    assert stack.calls == ["stop population", "stop population-2"]
    assert "population" in holds and "population-2" in holds
    assert [seconds for seconds, _, _ in timers.armed] == [30.0]
    timers.fire_all()
    assert stack.running == {"population": True, "population-2": True, "health": True}
    assert "population" not in holds and "population-2" not in holds
    assert switchboard.state("population").status == "up"


def test_a_restore_cancels_the_timer_and_a_later_fire_does_nothing() -> None:
    stack, timers, _, switchboard, _ = board()
    switchboard.take_down("health", 60)
    assert switchboard.restore("health").status == "up"
    assert stack.calls == ["stop health", "start health"]
    timers.fire_all()  # cancelled: nothing more
    assert stack.calls == ["stop health", "start health"]


def test_latency_is_added_then_taken_back() -> None:
    stack, timers, _, switchboard, _ = board()
    state = switchboard.slow_down("health", 800, 10)
    assert (state.status, state.latency_ms) == ("slow", 800)
    assert stack.latency == {"health": 800}
    timers.fire_all()
    assert stack.latency == {"health": 0}
    assert switchboard.state("health").status == "up"


def test_a_second_outage_extends_the_first_and_only_the_newest_timer_counts() -> None:
    stack, timers, _, switchboard, now = board()
    switchboard.take_down("health", 10)
    now[0] += 5
    switchboard.take_down("health", 60)
    first, second = timers.armed
    first[1]()  # the old timer fires: the agency stays down
    assert stack.running["health"] is False
    second[1]()
    assert stack.running["health"] is True


def test_unknown_and_external_agencies_are_refused() -> None:
    _, _, _, switchboard, _ = board()
    with pytest.raises(UnknownAgency):
        switchboard.take_down("nobody", 5)
    with pytest.raises(SwitchRefused):
        switchboard.take_down("insurance", 5)
    assert switchboard.state("insurance").status == "external"
