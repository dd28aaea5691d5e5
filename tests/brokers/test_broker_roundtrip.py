"""Produce keyed messages with headers and consume them back in a group, on Tansu and Kafka."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from brokers import RunningBroker, supports_idempotence
from tests.brokers._broker_kit import GROUP_TIMING, create_topic, drain, fresh

pytestmark = pytest.mark.kafka


def _consumer(broker: RunningBroker, topic: str, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap_servers,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        **GROUP_TIMING,
    )


Sent = tuple[bytes, bytes, tuple[tuple[str, bytes], ...]]


async def _produce(broker: RunningBroker, topic: str, batch: str, count: int) -> list[Sent]:
    # acks="all" without idempotence: what works on both brokers (Tansu has no producer ids).
    producer = AIOKafkaProducer(
        bootstrap_servers=broker.bootstrap_servers, acks="all", enable_idempotence=False
    )
    await producer.start()
    sent: list[Sent] = []
    try:
        for i in range(count):
            key = f"citizen-{i}".encode()
            value = f"{batch}:{i}".encode()
            headers = (("saga-id", fresh("saga").encode()), ("batch", batch.encode()))
            await producer.send_and_wait(topic, value, key=key, headers=list(headers))
            sent.append((key, value, headers))
    finally:
        await producer.stop()
    return sent


async def test_group_commit_and_resume(broker: RunningBroker) -> None:
    topic, group = fresh("roundtrip"), fresh("group")
    partitions = await create_topic(broker.bootstrap_servers, topic, partitions=3)

    first = await _produce(broker, topic, "first", 9)
    consumer = _consumer(broker, topic, group)
    await consumer.start()
    try:
        records = await drain(consumer, partitions)
        assert sorted((r.key, r.value, tuple(r.headers)) for r in records) == sorted(first)
        partition_of = {r.key: r.partition for r in records}
        assert len(set(partition_of.values())) > 1  # The keys spread over the partitions.
        await consumer.commit()
        committed = {tp: await consumer.committed(tp) for tp in partitions}
        assert committed == await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()

    second = await _produce(broker, topic, "second", 6)
    successor = _consumer(broker, topic, group)
    await successor.start()
    try:
        records = await drain(successor, partitions)
        # It resumed where the first one committed: nothing of the first batch again.
        assert sorted((r.key, r.value, tuple(r.headers)) for r in records) == sorted(second)
        assert all(partition_of[r.key] == r.partition for r in records)  # Same key, same place.
        for record in records:
            tp = next(p for p in partitions if p.partition == record.partition)
            assert record.offset >= (committed[tp] or 0)
        await successor.commit()
    finally:
        await successor.stop()


async def test_idempotent_producer_only_where_supported(broker: RunningBroker) -> None:
    # The launcher's claim matches what the broker answers to InitProducerId.
    assert supports_idempotence(broker.bootstrap_servers) is broker.supports_idempotence
    if not broker.supports_idempotence:
        pytest.skip(f"{broker.kind} hands out no producer ids")
    topic = fresh("idempotent")
    await create_topic(broker.bootstrap_servers, topic, partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, enable_idempotence=True)
    await producer.start()
    try:
        metadata = await producer.send_and_wait(topic, b"once", key=b"k")
        assert metadata.offset == 0
    finally:
        await producer.stop()
