"""The per-agency circuit breaker: while an agency is down one caller probes
it at a time, and the first answer releases every held caller at once."""

from __future__ import annotations

import asyncio

import pytest

from gateway.breaker import Breaker

pytestmark = pytest.mark.timeout(30)

# Far longer than the test's timeout: a caller that is released before it
# would have been released by its own backoff.
NEVER = 3600.0
PROBE = 0.01


class Agency:
    """Counts calls, and how many were in flight at once, while down."""

    def __init__(self) -> None:
        self.up = False
        self.calls = 0
        self.in_flight = 0
        self.most_in_flight_while_down = 0

    async def call(self, breaker: Breaker) -> bool:
        self.calls += 1
        self.in_flight += 1
        if not self.up:
            self.most_in_flight_while_down = max(self.most_in_flight_while_down, self.in_flight)
        await asyncio.sleep(0)
        self.in_flight -= 1
        if self.up:
            breaker.succeeded()
            return True
        breaker.failed()
        return False


async def step(agency: Agency, breaker: Breaker) -> None:
    """A step as the executor runs it: call, and on failure wait, again."""
    await breaker.admit()
    while not await agency.call(breaker):
        await breaker.before_retry(NEVER)


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
    await step(agency, breaker)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="threshold"):
        Breaker("health", threshold=0)
