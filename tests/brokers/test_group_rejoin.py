"""A member killed without leaving and started again under its previous
member id (gateway.kafka.rejoin_as, what a restarted gateway does under
dynamic membership) gets its own partitions back, and the member that stayed
keeps its own: on both brokers."""

from __future__ import annotations

import asyncio
import signal
import sys

import pytest
from aiokafka import AIOKafkaConsumer

from brokers import RunningBroker
from tests.brokers._broker_kit import create_topic, fresh

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]

PARTITIONS = 4
GROUP = {"session_timeout_ms": 10_000, "heartbeat_interval_ms": 500, "rebalance_timeout_ms": 2000}

# Joins (as the member id given, if any), says its member id and partitions,
# then works until killed.
MEMBER = f"""
import asyncio, sys
from aiokafka import AIOKafkaConsumer
from gateway.kafka import rejoin_as

async def main():
    consumer = AIOKafkaConsumer(
        bootstrap_servers=sys.argv[1], group_id=sys.argv[2], enable_auto_commit=False, **{GROUP}
    )
    await consumer.start()
    if len(sys.argv) > 4:
        rejoin_as(consumer, sys.argv[4])
    consumer.subscribe([sys.argv[3]])
    while not consumer.assignment():
        await consumer.getmany(timeout_ms=100)
    partitions = sorted(p.partition for p in consumer.assignment())
    print(consumer._coordinator.member_id, *partitions, flush=True)
    while True:
        await consumer.getmany(timeout_ms=100)

asyncio.run(main())
"""


async def member(*args: str) -> tuple[asyncio.subprocess.Process, str, list[int]]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", MEMBER, *args, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    member_id, *partitions = (await process.stdout.readline()).decode().split()
    return process, member_id, [int(p) for p in partitions]


async def test_a_restarted_member_rejoins_as_itself(broker: RunningBroker) -> None:
    bootstrap = broker.bootstrap_servers
    topic, group = fresh("rejoin"), fresh("rejoin")
    await create_topic(bootstrap, topic, PARTITIONS)
    first, member_id, _ = await member(bootstrap, group, topic)
    stayed = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False, **GROUP
    )
    await stayed.start()
    restarted = None
    try:
        stayed.subscribe([topic])
        while not 0 < len(stayed.assignment()) < PARTITIONS:  # the two share the work
            await stayed.getmany(timeout_ms=100)
        kept = {p.partition for p in stayed.assignment()}
        first.send_signal(signal.SIGKILL)  # no LeaveGroup from it
        await first.wait()
        pumping = asyncio.create_task(stayed.getmany(timeout_ms=100))
        restarted, rejoined_as, partitions = await member(bootstrap, group, topic, member_id)
        await pumping
        assert rejoined_as == member_id
        assert set(partitions) == set(range(PARTITIONS)) - kept
        assert {p.partition for p in stayed.assignment()} == kept
    finally:
        for process in (first, restarted):
            if process is not None and process.returncode is None:
                process.kill()
                await process.wait()
        await stayed.stop()


async def test_a_member_id_the_group_no_longer_knows_still_joins(broker: RunningBroker) -> None:
    # As after a restart that came too late: the old session expired and the
    # group forgot the id. Apache Kafka answers UNKNOWN_MEMBER_ID and aiokafka
    # joins as a new member; Tansu takes the id as a new member's. Either way
    # the member joins and works.
    bootstrap = broker.bootstrap_servers
    topic, group = fresh("rejoin"), fresh("rejoin")
    await create_topic(bootstrap, topic, PARTITIONS)
    forgotten = "aiokafka-0.14.0-00000000-0000-0000-0000-000000000000"
    process, member_id, partitions = await member(bootstrap, group, topic, forgotten)
    try:
        assert member_id
        assert partitions == list(range(PARTITIONS))
    finally:
        process.kill()
        await process.wait()
