"""A member killed without leaving holds its partitions until its session
expires, unless it is dropped (gateway.kafka.leave_group, what a restarted
gateway does for its previous incarnation): on both brokers."""

from __future__ import annotations

import asyncio
import signal
import sys
import time

import pytest
from aiokafka import AIOKafkaConsumer

from brokers import RunningBroker
from gateway.kafka import leave_group
from tests.brokers._broker_kit import create_topic, fresh

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]

# Beyond the deadline the test gives the move (20 s): if the group moves the partitions
# within it, the drop did, not the session's expiry.
SESSION_MS = 30_000
PARTITIONS = 4

MEMBER = f"""
import asyncio, sys
from aiokafka import AIOKafkaConsumer

async def main():
    consumer = AIOKafkaConsumer(
        bootstrap_servers=sys.argv[1], group_id=sys.argv[2], enable_auto_commit=False,
        session_timeout_ms={SESSION_MS}, heartbeat_interval_ms=1000, rebalance_timeout_ms=3000,
    )
    await consumer.start()
    consumer.subscribe([sys.argv[3]])
    while not consumer.assignment():
        await consumer.getmany(timeout_ms=100)
    print(consumer._coordinator.member_id, flush=True)
    while True:
        await consumer.getmany(timeout_ms=100)

asyncio.run(main())
"""


async def until_all_partitions(consumer: AIOKafkaConsumer, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        await consumer.getmany(timeout_ms=100)
        if len(consumer.assignment()) == PARTITIONS:
            return True
    return False


async def test_a_dropped_member_s_partitions_move_at_once(broker: RunningBroker) -> None:
    bootstrap = broker.bootstrap_servers
    topic, group = fresh("leave"), fresh("leave")
    await create_topic(bootstrap, topic, PARTITIONS)
    killed = await asyncio.create_subprocess_exec(
        sys.executable, "-c", MEMBER, bootstrap, group, topic, stdout=asyncio.subprocess.PIPE
    )
    assert killed.stdout is not None
    member_id = (await killed.stdout.readline()).decode()
    survivor = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        session_timeout_ms=SESSION_MS,
        heartbeat_interval_ms=1000,
        rebalance_timeout_ms=3000,
    )
    await survivor.start()
    try:
        survivor.subscribe([topic])
        deadline = time.monotonic() + 60
        while not 0 < len(survivor.assignment()) < PARTITIONS:  # the two share the work
            assert time.monotonic() < deadline, "the group never shared its partitions"
            await survivor.getmany(timeout_ms=100)
        killed.send_signal(signal.SIGKILL)  # no LeaveGroup from it
        await killed.wait()
        await leave_group(bootstrap, group, member_id.strip())
        assert await until_all_partitions(survivor, within=20), "the partitions did not move"
        # Dropping a member that is gone already is fine (UNKNOWN_MEMBER_ID).
        await leave_group(bootstrap, group, member_id.strip())
    finally:
        if killed.returncode is None:
            killed.kill()
            await killed.wait()
        await survivor.stop()
