"""Kafka plumbing shared by the saga worker and the step executor.

Consumers commit offsets by hand, only after a record's effects are durable,
so delivery is at least once and every handler is idempotent. Records of one
partition are handled in order; partitions are handled concurrently, which is
where a gateway process gets its parallelism. A record that can never be
processed goes to the dead-letter topic with the error in a header; any other
failure rewinds the partition and tries again.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Sequence

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from gateway.events import Event, PoisonEventError, decode, encode

log = structlog.get_logger("kafka")

Handler = Callable[[Event], Awaitable[None]]


async def ensure_topics(bootstrap: str, topics: Sequence[str], partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(name, num_partitions=partitions, replication_factor=1)
            for name in topics
            if name not in existing
        ]
        if wanted:
            # Another gateway process may have created them first.
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(wanted)
    finally:
        await admin.close()


def make_producer(bootstrap: str) -> AIOKafkaProducer:
    # acks=all without the idempotent producer: the embedded broker has none,
    # and duplicates are harmless because every consumer de-duplicates by ce_id.
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,
        linger_ms=2,
        request_timeout_ms=15000,
    )


async def publish(producer: AIOKafkaProducer, topic: str, events: Sequence[Event]) -> None:
    """Send and wait for every acknowledgement."""
    futures = []
    for event in events:
        key, value, headers = encode(event)
        futures.append(await producer.send(topic, value=value, key=key, headers=headers))
    for future in futures:
        await future


class _WaitForInFlight(ConsumerRebalanceListener):  # type: ignore[misc]
    """Hand partitions over only between batches: a dossier is never worked by
    two processes at once, and offsets of finished work are committed first."""

    def __init__(self, lock: asyncio.Lock, consumer: str) -> None:
        self.lock = lock
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked: object) -> None:
        async with self.lock:
            pass

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        # Operators (and the scale-out test) see who owns what after a rebalance.
        log.info("partitions assigned", consumer=self.consumer, partitions=len(assigned))


class PartitionedConsumer:
    def __init__(
        self,
        *,
        name: str,
        bootstrap: str,
        group_id: str,
        topics: Sequence[str],
        handle: Handler,
        producer: AIOKafkaProducer,
        deadletter_topic: str,
        session_timeout_ms: int = 6000,
        max_poll_interval_ms: int = 300_000,
    ) -> None:
        self.name = name
        self.handle = handle
        self.producer = producer
        self.deadletter_topic = deadletter_topic
        self.topics = list(topics)
        self.lock = asyncio.Lock()
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=max(session_timeout_ms // 3, 500),
            max_poll_interval_ms=max_poll_interval_ms,
        )

    async def start(self) -> None:
        await self.consumer.start()
        self.consumer.subscribe(self.topics, listener=_WaitForInFlight(self.lock, self.name))

    async def stop(self) -> None:
        await self.consumer.stop()

    async def run(self) -> None:
        failures = 0
        while True:
            batches = await self.consumer.getmany(timeout_ms=200, max_records=200)
            if not batches:
                continue
            async with self.lock:
                results = await asyncio.gather(
                    *(self._partition(tp, records) for tp, records in batches.items())
                )
                done = {tp: offset for tp, offset, _ in results if offset is not None}
                if done:
                    await self.consumer.commit(done)
                failed = [(tp, at) for tp, _, at in results if at is not None]
                for tp, offset in failed:
                    self.consumer.seek(tp, offset)
            if failed:
                # Back off before re-reading what failed (broker or store trouble).
                failures += 1
                await asyncio.sleep(min(5.0, 0.1 * 2**failures) * random.random())
            else:
                failures = 0

    async def _partition(
        self, tp: TopicPartition, records: list[ConsumerRecord[bytes, bytes]]
    ) -> tuple[TopicPartition, int | None, int | None]:
        """Handle records in order. Returns (tp, offset to commit, offset to retry from)."""
        commit: int | None = None
        for record in records:
            try:
                event = decode(record.key, record.value, tuple(record.headers))
                with structlog.contextvars.bound_contextvars(
                    dossier_id=event.dossier_id, event_id=event.event_id
                ):
                    await self.handle(event)
            except PoisonEventError as error:
                await self._deadletter(record, str(error))
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning(
                    "retrying record",
                    consumer=self.name,
                    topic=tp.topic,
                    partition=tp.partition,
                    offset=record.offset,
                    error=repr(error),
                )
                return tp, commit, record.offset
            commit = record.offset + 1
        return tp, commit, None

    async def _deadletter(self, record: ConsumerRecord[bytes, bytes], why: str) -> None:
        headers = [
            *record.headers,
            ("x-deadletter-reason", why.encode()),
            ("x-deadletter-origin", f"{record.topic}/{record.partition}/{record.offset}".encode()),
        ]
        await self.producer.send_and_wait(
            self.deadletter_topic, value=record.value, key=record.key, headers=headers
        )
        log.error(
            "dead-lettered",
            consumer=self.name,
            reason=why,
            topic=record.topic,
            offset=record.offset,
        )
