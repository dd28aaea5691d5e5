"""The per-agency circuit breaker: while an agency is down one caller probes
it at a time, and the first answer releases every held caller at once."""

from __future__ import annotations

import asyncio
import itertools
from typing import cast

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition

from common.clock import SystemClock
from gateway.agencies import Agencies, TransientAgencyError
from gateway.breaker import Breaker
from gateway.events import Topics
from gateway.executor import StepExecutor
from gateway.kafka import Lease, LoopWatch
from gateway.steps import StepDone, StepInput, succeeded
from lienthong.events.v1 import events_pb2 as ev
from lienthong.gateway.v1 import gateway_pb2 as pb

pytestmark = pytest.mark.timeout(30)

# Far longer than the test's timeout: a caller that is released before it
# would have been released by its own backoff.
NEVER = 3600.0
PROBE = 0.01


class Agency:
    """Counts calls, and how many were in flight at once, while down."""

    def __init__(self, latency: float = 0.0) -> None:
        self.up = False
        self.latency = latency
        self.calls = 0
        self.in_flight = 0
        self.most_in_flight_while_down = 0
        # Calls made while the breaker was open (probes): how many at once.
        self.probes_in_flight = 0
        self.most_probes_in_flight = 0
        self.called = asyncio.Event()

    async def calls_made(self, count: int) -> None:
        while self.calls < count:
            self.called.clear()
            await self.called.wait()

    async def call(self, breaker: Breaker) -> bool:
        self.calls += 1
        self.called.set()
        self.in_flight += 1
        probe = breaker.open
        self.probes_in_flight += probe
        self.most_probes_in_flight = max(self.most_probes_in_flight, self.probes_in_flight)
        if not self.up:
            self.most_in_flight_while_down = max(self.most_in_flight_while_down, self.in_flight)
        await asyncio.sleep(self.latency)
        self.in_flight -= 1
        self.probes_in_flight -= probe
        if self.up:
            breaker.succeeded()
            return True
        breaker.failed()
        return False


async def step(agency: Agency, breaker: Breaker, backoff: float = NEVER) -> None:
    """A step as the executor runs it: admitted, then call, and on failure
    wait (before_retry admits), again."""
    await breaker.admit()
    await call_until_answered(agency, breaker, backoff)


async def call_until_answered(agency: Agency, breaker: Breaker, backoff: float = NEVER) -> None:
    while not await agency.call(breaker):
        await breaker.before_retry(backoff)


async def test_closed_a_failed_call_waits_out_its_own_backoff() -> None:
    breaker = Breaker("insurance", threshold=3, probe_every=PROBE)
    breaker.failed()
    assert not breaker.open
    waited = asyncio.create_task(breaker.before_retry(NEVER))
    await asyncio.sleep(0.05)
    assert not waited.done()  # the breaker does not shorten a closed wait
    waited.cancel()


async def test_open_one_probe_at_a_time_and_the_first_answer_releases_everyone() -> None:
    breaker = Breaker("insurance", threshold=3, probe_every=PROBE)
    agency = Agency()
    # Three steps fail while closed, each then waits its own (endless) backoff.
    first = [asyncio.create_task(step(agency, breaker)) for _ in range(3)]
    await asyncio.sleep(0.01)
    assert breaker.open
    # Steps that fail once the breaker is open wait for a probe.
    held = [asyncio.create_task(step(agency, breaker)) for _ in range(50)]
    probes_before = agency.calls
    await asyncio.sleep(20 * PROBE)
    assert agency.calls > probes_before  # the agency is probed meanwhile...
    assert agency.most_in_flight_while_down <= 3  # ...by one held step at a time
    agency.up = True
    await asyncio.wait_for(asyncio.gather(*held), 5)  # released long before NEVER
    assert not breaker.open
    for task in first:
        task.cancel()


async def test_calls_in_flight_as_the_agency_goes_down_do_not_all_become_probes() -> None:
    # Twenty steps call at once and all fail, the breaker opening at the
    # third failure. Each of the late failures used to free the probe slot
    # for its own next try: twenty probes every interval, for good.
    breaker = Breaker("population", threshold=3, probe_every=PROBE)
    agency = Agency(latency=PROBE)
    steps = [asyncio.create_task(step(agency, breaker, backoff=PROBE)) for _ in range(20)]
    await agency.calls_made(20 + 10)  # the first calls, then ten probes
    assert agency.most_probes_in_flight == 1
    agency.up = True
    await asyncio.wait_for(asyncio.gather(*steps), 5)
    assert not breaker.open


async def test_a_probe_that_never_reports_gives_up_its_turn() -> None:
    breaker = Breaker("population", threshold=1, probe_every=PROBE)
    breaker.failed()
    gone = asyncio.create_task(breaker.before_retry(NEVER))
    await asyncio.sleep(2 * PROBE)
    assert gone.done()  # it took the probe, and its task is then cancelled:
    # no report of the probe comes. Another caller gets the turn soon after.
    agency = Agency()
    agency.up = True
    await asyncio.wait_for(step_after_failure(agency, breaker), 5)
    assert not breaker.open


async def step_after_failure(agency: Agency, breaker: Breaker) -> None:
    await breaker.before_retry(NEVER)
    await call_until_answered(agency, breaker)


class TestClock:
    """Monotonic time that passes only when the breaker sleeps."""

    __test__ = False

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


async def test_a_held_step_probes_the_agency_once_a_probe_interval() -> None:
    # Through the executor's own retry loop: a step waits once before each
    # attempt. Waiting twice (before_retry, then admit again) held the probe
    # slot the step had just taken until it lapsed: probes came every 3 s
    # instead of every 0.5 s, and a registry back from an outage was called
    # again up to 3 s late.
    clock = TestClock()
    breaker = Breaker(
        "population", threshold=1, probe_every=0.5, monotonic=clock.monotonic, sleep=clock.sleep
    )
    agencies = Agencies({}, [], 1.0, breakers={"population": breaker})
    calls: list[float] = []

    async def register(agencies: Agencies, _step: StepInput) -> StepDone:
        calls.append(clock.now)
        if len(calls) < 6:
            agencies.breaker("population").failed()  # as Agencies.call does
            raise TransientAgencyError("population", "UNAVAILABLE")
        agencies.breaker("population").succeeded()
        return succeeded("registered")

    executor = StepExecutor(
        agencies,
        cast(AIOKafkaProducer, None),
        Topics.with_prefix("t"),
        SystemClock(),
        retry_base_seconds=NEVER,  # the breaker opens at the first failure
        retry_cap_seconds=NEVER,
    )
    lease = Lease(TopicPartition("t.step-commands.population", 0), 1, LoopWatch(60, print))
    command = ev.StepCommand(dossier_id="d-1", step="register_birth", dossier=pb.Dossier())
    attempts, agency, done = await executor._attempts(command, "population", register, lease)
    assert (attempts, agency, done.kind) == (6, "population", ev.STEP_OUTCOME_KIND_SUCCEEDED)
    assert [later - earlier for earlier, later in itertools.pairwise(calls)] == [0.5] * 5


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="threshold"):
        Breaker("health", threshold=0)
