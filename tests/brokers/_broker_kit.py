"""Small aiokafka helpers for the broker tests: fresh names, draining, waiting on a condition."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

# Tansu makes a group's first JoinGroup wait about half the session timeout, and a
# member joining after the last one left waits for that one's session to expire:
# the smallest session Apache Kafka accepts by default (6 s) keeps tests short.
GROUP_TIMING: dict[str, int] = {"session_timeout_ms": 6000, "heartbeat_interval_ms": 500}


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


async def create_topic(bootstrap: str, topic: str, partitions: int) -> list[TopicPartition]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        await admin.close()
    return [TopicPartition(topic, p) for p in range(partitions)]


async def drain(
    consumer: AIOKafkaConsumer, partitions: Sequence[TopicPartition], seconds: float = 30
) -> list[ConsumerRecord[Any, Any]]:
    """Consume until the group gave us every partition and we reached each one's end.

    The end offsets are read once, at the start: everything produced before is
    returned, whatever partition it went to.
    """
    wanted = set(partitions)
    ends = await consumer.end_offsets(list(partitions))
    records: list[ConsumerRecord[Any, Any]] = []
    async with asyncio.timeout(seconds):
        while True:
            if consumer.assignment() == wanted:
                positions = {tp: await consumer.position(tp) for tp in partitions}
                if all(positions[tp] >= ends[tp] for tp in partitions):
                    return records
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)


async def poll_until(
    consumers: Sequence[AIOKafkaConsumer], condition: Callable[[], bool], seconds: float
) -> float:
    """Keep the consumers polling until ``condition()`` holds; return the seconds it took."""
    started = time.monotonic()
    async with asyncio.timeout(seconds):
        while not condition():
            for consumer in consumers:
                await consumer.getmany(timeout_ms=50)
    return time.monotonic() - started


def assigned(consumer: AIOKafkaConsumer) -> set[int]:
    return {tp.partition for tp in consumer.assignment()}
