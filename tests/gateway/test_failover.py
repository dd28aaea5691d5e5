"""Gateways under faults, end to end (real broker, real processes): a killed
gateway's partitions come back within the bound, a gateway gone for good has
them moved within the session timeout, and a frozen gateway (a zombie) does
no more work for partitions the group gave away. Concurrent executions of one
step are counted from the gateways' logs: there must be none."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import grpc
import psycopg
import pytest

from cli.stack import Stack
from databases.postgres import PostgresServer
from lienthong.gateway.v1 import gateway_pb2 as g
from scenarios.executions import Execution, count_executions
from tests.gateway.test_end_to_end import (
    BORN,
    DIED,
    births_recorded,
    broker_kind,
    finished,
    gateway,
    submit_birth,
)
from tests.gateway.world import birth_form, new_family, open_channels, seed_families

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(300)]

SESSION_TIMEOUT = 6.0
# A gateway gone for good: its partitions move within this (the session
# timeout, then one rebalance).
MOVED_WITHIN = 10.0
# Each group's partitions: the saga reads two topics of 6; the steps, a lane
# of 6 per agency and the topic of before the lanes.
EVERY_PARTITION = {
    "saga": 12,
    "steps": 6,
    "steps-health": 6,
    "steps-population": 6,
    "steps-insurance": 6,
}


def settled_within(stack: Stack) -> float:
    """How soon a dossier submitted while a gateway is killed and restarted
    settles: with static membership the restart moves nothing; without it
    (the embedded broker) the session expires, then two rebalances follow."""
    return 15.0 if stack.broker_kind == "apache" else 30.0


# Who shares the partitions out: the broker's consumer groups, or leases in
# the saga store (gateway/leases.py; what the stack picks for the embedded
# broker). Both run on the broker under test.
COORDINATIONS = ["kafka", "store"]


@pytest.fixture(scope="module", params=COORDINATIONS)
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    with Stack(
        broker=broker_kind(),
        gateway_env={
            "LIENTHONG_RETRY_CAP_SECONDS": "0.5",
            "LIENTHONG_CALL_DEADLINE_SECONDS": "2",
            "LIENTHONG_GROUP_SESSION_TIMEOUT_SECONDS": str(SESSION_TIMEOUT),
            "LIENTHONG_GROUP_COORDINATION": request.param,
        },
    ) as running:
        running.keep_data_dir = bool(os.environ.get("LIENTHONG_KEEP_TEST_DATA"))
        yield running


def log_lines(stack: Stack, name: str) -> list[dict[str, object]]:
    lines = []
    for line in Path(stack.log_file(name)).read_text(encoding="utf-8").splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


def at(line: dict[str, object]) -> float:
    return dt.datetime.fromisoformat(str(line["timestamp"])).timestamp()


def assigned(stack: Stack, name: str, *, after: float) -> dict[str, int]:
    """consumer → partitions, as last assigned to this gateway after `after`."""
    found: dict[str, int] = {}
    for line in log_lines(stack, name):
        if line.get("event") == "partitions assigned" and at(line) > after:
            found[str(line["consumer"])] = int(str(line["partitions"]))
    return found


async def until(condition: Callable[[], object], what: str, within: float) -> float:
    """Wait for condition() with a deadline; returns the seconds it took."""
    began = time.monotonic()
    while not condition():
        assert time.monotonic() - began < within, f"{what}: not within {within} s"
        await asyncio.sleep(0.1)
    return time.monotonic() - began


def concurrent_step_runs(stack: Stack, names: list[str]) -> int:
    """How many steps (dossier, step) two gateways worked at once."""
    return overlapping_runs({name: log_lines(stack, name) for name in names})


def overlapping_runs(lines_by_gateway: Mapping[str, Iterable[dict[str, object]]]) -> int:
    """Steps that two gateways worked at once, from their step log lines.
    Each step line is one run, from its start (the line's time less its
    duration) to the line. A retry line outside the same gateway's runs is a
    moment of a run that never finished (cut short, or a zombie's): it counts
    if another gateway was running the step then. Runs are kept apart and
    compared as the replay's audit compares them (scenarios/executions.py):
    one span from a gateway's first line to its last merged two runs of one
    step into one, and counted another gateway's run between them as an
    overlap."""
    runs: list[Execution] = []
    for name, lines in lines_by_gateway.items():
        finished: dict[tuple[str, str], list[Execution]] = {}
        moments: list[tuple[tuple[str, str], float]] = []
        for line in lines:
            if line.get("logger") != "steps" or "step" not in line or "dossier_id" not in line:
                continue
            key = (str(line["dossier_id"]), str(line["step"]))
            end = at(line)
            if line.get("event") == "step":
                start = end - float(str(line.get("duration_ms", 0))) / 1000
                finished.setdefault(key, []).append(Execution(*key, name, start, end))
            else:
                moments.append((key, end))
        runs.extend(run for own in finished.values() for run in own)
        runs.extend(
            Execution(*key, name, moment, moment)
            for key, moment in moments
            if not any(r.started_s <= moment <= r.finished_s for r in finished.get(key, []))
        )
    return count_executions(runs).concurrent_step_executions


def _line(event: str, at_s: float, duration_ms: float = 0.0) -> dict[str, object]:
    return {
        "logger": "steps",
        "event": event,
        "step": "issue_health_insurance_card",
        "dossier_id": "d-1",
        "duration_ms": duration_ms,
        "timestamp": dt.datetime.fromtimestamp(1_800_000_000 + at_s, dt.UTC).isoformat(),
    }


RETRY = "agency unavailable; retrying"


def test_two_gateways_working_a_step_at_once_are_counted() -> None:
    # B retried the step while A was running it; A ran it while B did.
    assert overlapping_runs({"a": [_line("step", 10, 10_000)], "b": [_line(RETRY, 5)]}) == 1
    assert (
        overlapping_runs({"a": [_line("step", 10, 10_000)], "b": [_line("step", 12, 4_000)]}) == 1
    )


def test_one_gateways_two_runs_around_anothers_are_not_an_overlap() -> None:
    # A ran the step (cut short: a retry, no step line), then B, then A
    # again: three runs one after another. One span from A's first line to
    # its last counted B's run inside it.
    a = [_line(RETRY, 2), _line("step", 21, 1_000)]
    b = [_line("step", 15, 10_000)]
    assert overlapping_runs({"a": a, "b": b}) == 0
    # A's retry during its own second run is part of that run.
    assert overlapping_runs({"a": [*a, _line(RETRY, 20.5)], "b": b}) == 0


async def start_with_channels_closed(
    stack: Stack, name: str, channels: dict[str, grpc.aio.Channel]
) -> None:
    """Start a process with this process's gRPC channels closed: a child
    forked while grpc's event engine runs here can abort before its exec
    (seen: SIGABRT, "epoll_wait error: Bad file descriptor")."""
    for channel in channels.values():
        await channel.close()
    try:
        stack.start_component(name)
    finally:
        channels.update(open_channels(stack))


async def test_a_killed_gateway_takes_its_partitions_back_within_the_bound(stack: Stack) -> None:
    second = stack.add_gateway(database=stack.data_dir / "gateway.sqlite3")
    await until(
        lambda: len(assigned(stack, second, after=0)) == len(EVERY_PARTITION), "second joined", 60
    )
    channels = open_channels(stack)
    try:
        families = [new_family(41) for _ in range(12)]
        await seed_families(channels, families, born=BORN, died=DIED)
        stub = gateway(channels)
        killed_at = time.time()
        stack.kill(second)
        submitted: dict[str, float] = {}
        for n, family in enumerate(families):
            if n == 6:  # half while it is down, half once it is back
                await start_with_channels_closed(stack, second, channels)
                stub = gateway(channels)
                await until(
                    lambda: len(assigned(stack, second, after=killed_at)) == len(EVERY_PARTITION),
                    "the restarted gateway's partitions back",
                    MOVED_WITHIN,
                )
            key = f"fo-kill-{n}"
            submitted[await submit_birth(stub, key, birth_form(family, BORN))] = time.monotonic()
        for dossier_id, since in submitted.items():
            done = await finished(stub, dossier_id, within=settled_within(stack) + 30)
            assert done.state == g.DOSSIER_STATE_COMPLETED
            assert time.monotonic() - since < settled_within(stack), f"{dossier_id} settled late"
        assert births_recorded(stack, families) == (12, 12, 12)
        assert concurrent_step_runs(stack, ["gateway", second]) == 0
    finally:
        stack.kill(second)  # the next test starts from one gateway
        for channel in channels.values():
            await channel.close()


async def test_a_gateway_gone_for_good_has_its_partitions_moved_within_the_bound(
    stack: Stack,
) -> None:
    gone = stack.add_gateway(database=stack.data_dir / "gateway.sqlite3")
    await until(lambda: len(assigned(stack, gone, after=0)) == len(EVERY_PARTITION), "joined", 60)
    killed_at = time.time()
    stack.kill(gone)
    moved_in = await until(
        lambda: assigned(stack, "gateway", after=killed_at) == EVERY_PARTITION,
        "every partition with the remaining gateway",
        MOVED_WITHIN,
    )
    print(f"partitions moved {moved_in:.1f} s after the kill")


async def a_frozen_gateway_does_no_more_work_for_the_partitions_it_lost(
    stack: Stack, zombie: str, applied_at: Callable[[str], float | None] | None = None
) -> None:
    """`applied_at(event_id)`: when the saga store applied an event (epoch
    seconds), where the store records it; a saga line logged after the wake
    for an event applied before the freeze is a late report, not work."""
    await until(lambda: len(assigned(stack, zombie, after=0)) == len(EVERY_PARTITION), "joined", 60)
    channels = open_channels(stack)
    try:
        families = [new_family(42) for _ in range(12)]
        await seed_families(channels, families, born=BORN, died=DIED)
        stub = gateway(channels)
        # Cards wait on the insurance agency: both gateways retry their steps.
        stack.stop_component("insurance")
        ids = [
            await submit_birth(stub, f"fo-zombie-{n}", birth_form(f, BORN))
            for n, f in enumerate(families)
        ]

        def retrying(name: str) -> bool:
            return any(
                line.get("event") == "agency unavailable; retrying"
                for line in log_lines(stack, name)
            )

        await until(lambda: retrying(zombie), "the zombie retrying a step", 60)
        pid = stack.pid(zombie)
        assert pid is not None
        frozen_at = time.time()
        os.kill(pid, signal.SIGSTOP)
        try:
            await until(
                lambda: assigned(stack, "gateway", after=frozen_at) == EVERY_PARTITION,
                "the frozen gateway's partitions moved",
                # Not the bound under test (the gone-for-good test has it):
                # five groups rebalance here while steps retry; a busy
                # machine stretches that.
                MOVED_WITHIN + 50,
            )
            await start_with_channels_closed(stack, "insurance", channels)
            stub = gateway(channels)
            for dossier_id in ids:
                done = await finished(stub, dossier_id, within=90)
                assert done.state == g.DOSSIER_STATE_COMPLETED
        finally:
            woken_at = time.time()
            os.kill(pid, signal.SIGCONT)
        await until(
            lambda: assigned(stack, zombie, after=woken_at), "the zombie back in its groups", 60
        )
        rejoined = min(
            at(line)
            for line in log_lines(stack, zombie)
            if line.get("event") == "partitions assigned" and at(line) > woken_at
        )

        def applied_before(line: dict[str, object], moment: float) -> bool:
            # A batch stored and checked before the freeze, its publication
            # under way: the line comes after the wake, the work did not (the
            # store's clock says when).
            if applied_at is None or line.get("event") != "saga event":
                return False
            when = applied_at(str(line.get("event_id")))
            return when is not None and when < moment

        # A batch the saga store refused is no work done: the fence stopped
        # it (its store call was under way, awaited, when the freeze came).
        meanwhile = [
            line
            for line in log_lines(stack, zombie)
            if woken_at < at(line) < rejoined
            and line.get("logger") in ("steps", "saga")
            and line.get("event") != "saga store refused a stale owner"
            and not applied_before(line, frozen_at)
        ]
        assert meanwhile == [], "the zombie worked partitions it had lost"
        assert births_recorded(stack, families) == (12, 12, 12)
        assert concurrent_step_runs(stack, ["gateway", zombie]) == 0
    finally:
        stack.kill(zombie)
        for channel in channels.values():
            await channel.close()


@pytest.mark.xfail(
    strict=False,
    reason="known limit of the shared SQLite saga store (ARCHITECTURE.md): when the SIGSTOP "
    "lands inside the zombie's write transaction, the zombie keeps SQLite's write lock, "
    "which nothing can break; the survivor's store calls, partition claims included, fail "
    "after the 5 s busy timeout until the zombie runs again (on the store's thread since "
    "issue 13, so its heartbeats go on). Since the store left the event loop it passed in "
    "15 of 16 runs (the failure's cause not captured). The PostgreSQL variant below has "
    "no such limit",
)
async def test_a_frozen_gateway_does_no_more_work_for_the_partitions_it_lost(
    stack: Stack,
) -> None:
    zombie = stack.add_gateway(database=stack.data_dir / "gateway.sqlite3")
    await a_frozen_gateway_does_no_more_work_for_the_partitions_it_lost(stack, zombie)


SAGA_DATABASE = "failover_saga"


@pytest.fixture(scope="module", params=COORDINATIONS)
def postgres_stack(
    request: pytest.FixtureRequest, postgres_server: PostgresServer
) -> Iterator[tuple[Stack, str]]:
    """As `stack`, its gateways sharing a PostgreSQL saga store (its URL)."""
    database = postgres_server.create_database(f"{SAGA_DATABASE}_{request.param}")
    with Stack(
        broker=broker_kind(),
        gateway_env={
            "LIENTHONG_RETRY_CAP_SECONDS": "0.5",
            "LIENTHONG_CALL_DEADLINE_SECONDS": "2",
            "LIENTHONG_GROUP_SESSION_TIMEOUT_SECONDS": str(SESSION_TIMEOUT),
            "LIENTHONG_GATEWAY_DB": database,
            "LIENTHONG_GROUP_COORDINATION": request.param,
        },
    ) as running:
        running.keep_data_dir = bool(os.environ.get("LIENTHONG_KEEP_TEST_DATA"))
        yield running, database


async def test_a_frozen_gateway_sharing_a_postgres_store_does_no_more_work_for_what_it_lost(
    postgres_stack: tuple[Stack, str],
) -> None:
    stack, database = postgres_stack
    # The SQLite variant's limit is gone: the frozen gateway holds row locks
    # of its own partitions' rows at most (for the session timeouts of
    # gateway/config.py), never the whole store, and the survivor's store
    # calls never block its event loop.
    zombie = stack.add_gateway()  # LIENTHONG_GATEWAY_DB: the same database

    def applied_at(event_id: str) -> float | None:
        with psycopg.connect(database) as conn:
            row = conn.execute(
                "SELECT extract(epoch FROM applied_at) FROM processed_events WHERE event_id = %s",
                (event_id,),
            ).fetchone()
        return None if row is None else float(row[0])

    await a_frozen_gateway_does_no_more_work_for_the_partitions_it_lost(stack, zombie, applied_at)
