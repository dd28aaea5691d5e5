"""The supervisor's timing, with a stand-in stack and clock: who is started
again, when, and how the pause grows and is forgiven."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from cli.supervisor import RestartPolicy, Supervisor


@dataclass
class FakeStack:
    running: dict[str, bool]
    fails_to_start: set[str] = field(default_factory=set)
    starts: list[str] = field(default_factory=list)

    def component_names(self) -> Iterable[str]:
        return list(self.running)

    def is_running(self, name: str) -> bool:
        return self.running[name]

    def start_component(self, name: str) -> None:
        self.starts.append(name)
        if name in self.fails_to_start:
            raise RuntimeError(f"{name} exited with code 1\nmore lines")
        self.running[name] = True


@dataclass
class FakeClock:
    now: float = 0.0

    def __call__(self) -> float:
        return self.now


POLICY = RestartPolicy(first_delay_seconds=1, max_delay_seconds=8, healthy_after_seconds=60)


def supervised(**running: bool) -> tuple[FakeStack, FakeClock, Supervisor, list[str]]:
    stack, clock = FakeStack(dict(running)), FakeClock()
    said: list[str] = []
    return stack, clock, Supervisor(stack, said.append, POLICY, clock), said


def test_a_dead_child_is_started_again_after_the_first_pause_and_the_others_left_alone() -> None:
    stack, clock, supervisor, said = supervised(population=True, gateway=True)
    assert supervisor.check() == []
    stack.running["population"] = False
    assert supervisor.check() == []  # found dead: wait 1 s first
    assert said == ["population stopped unexpectedly; starting it again in 1 s"]
    clock.now = 0.999
    assert supervisor.check() == []
    clock.now = 1.0
    assert supervisor.check() == ["population"]
    assert stack.starts == ["population"] and said[-1] == "population is serving again"


def test_a_child_that_will_not_start_is_tried_ever_less_often_up_to_the_cap() -> None:
    stack, clock, supervisor, said = supervised(insurance=False)
    stack.fails_to_start.add("insurance")
    attempts = []
    while clock.now <= 40:
        before = len(stack.starts)
        supervisor.check()
        if len(stack.starts) > before:
            attempts.append(clock.now)
        clock.now += 0.5
    # Pauses of 1, 2, 4, 8, then 8 again (the cap), never given up.
    assert attempts[:6] == [1.0, 3.0, 7.0, 15.0, 23.0, 31.0]
    assert "insurance did not start again (insurance exited with code 1); next try in 2 s" in said


def test_a_child_that_stayed_up_is_forgiven_its_past_failures() -> None:
    stack, clock, supervisor, said = supervised(health=True)
    for crash_at in (0.0, 2.0):
        clock.now = crash_at
        stack.running["health"] = False
        supervisor.check()
        clock.now += POLICY.delay(1 if crash_at == 0 else 2)
        assert supervisor.check() == ["health"]
    assert said[-2] == "health stopped unexpectedly; starting it again in 2 s"
    clock.now = 200.0  # a long healthy run
    assert supervisor.check() == []
    stack.running["health"] = False
    supervisor.check()
    assert said[-1] == "health stopped unexpectedly; starting it again in 1 s"


def test_a_held_child_is_left_down_until_released_then_judged_afresh() -> None:
    stack, clock, supervisor, said = supervised(insurance=True)
    supervisor.check()
    supervisor.holds.hold("insurance")
    stack.running["insurance"] = False  # stopped on purpose (the console's outage switch)
    for now in (1.0, 5.0, 60.0):
        clock.now = now
        assert supervisor.check() == []
    assert stack.starts == [] and said == []
    supervisor.holds.release("insurance")
    clock.now = 61.0
    assert supervisor.check() == []  # found dead now: the first pause, as a fresh failure
    assert said == ["insurance stopped unexpectedly; starting it again in 1 s"]
    clock.now = 62.0
    assert supervisor.check() == ["insurance"]
