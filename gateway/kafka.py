"""Kafka plumbing shared by the saga worker and the step executor.

Consumers commit offsets by hand, only after a batch's effects are durable,
so delivery is at least once and every handler is idempotent.

Each assigned partition has its own worker task: the records of a partition
are handled in order, as batches (whatever arrived while the previous batch
was being handled), and partitions are handled concurrently. Fetching never
waits for handling, and commits are made by their own task, so a record waits
for its own partition only: a batch is one store transaction and one wait for
the broker's acknowledgements, however many records it holds. A partition
whose backlog grows too long is paused at the broker until its worker catches
up. A record that can never be processed goes to the dead-letter topic with
the error in a header; any other failure retries the batch, with backoff,
until it succeeds. Partitions are handed over in a rebalance only between
batches: a dossier is never worked by two processes at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import CommitFailedError, KafkaError, TopicAlreadyExistsError

from gateway.backoff import Backoff
from gateway.events import Event, PoisonEventError, decode, encode

log = structlog.get_logger("kafka")

# Handles the events of one partition's batch, in order; returns once their
# effects are durable (stored, and what they caused acknowledged by the broker).
BatchHandler = Callable[[list[Event]], Awaitable[None]]


async def ensure_topics(bootstrap: str, topics: Sequence[str], partitions: int) -> None:
    """Create the topics that do not exist yet. Raises a KafkaError when the
    broker cannot be reached (the caller waits and tries again)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        await admin.start()
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
    # linger 5 ms: fewer, fuller produce requests; at 260 dossiers/s p99 was
    # 1.7 s against 2.5 s with 2 ms (10 ms was worse again).
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,
        linger_ms=5,
        request_timeout_ms=15000,
    )


async def send(producer: AIOKafkaProducer, topic: str, event: Event) -> asyncio.Future[Any]:
    """Hand one event to the producer; the future resolves on the broker's ack."""
    key, value, headers = encode(event)
    acknowledged: asyncio.Future[Any] = await producer.send(
        topic, value=value, key=key, headers=headers
    )
    return acknowledged


async def publish(producer: AIOKafkaProducer, messages: Sequence[tuple[str, Event]]) -> None:
    """Send (topic, event) pairs and wait for every acknowledgement: sent all
    first, so they share produce requests, then awaited together."""
    futures = [await send(producer, topic, event) for topic, event in messages]
    for future in futures:
        await future


# Partitions with a longer backlog than this are paused at the broker.
PAUSE_BACKLOG = 2_000
# Records handed to one batch at most (one store transaction).
MAX_BATCH = 500
# Offsets are committed at most this often (each commit is a broker round trip).
COMMIT_INTERVAL_SECONDS = 0.1


class _PartitionWorker:
    """Handles one partition's records in order, a batch at a time."""

    def __init__(
        self,
        tp: TopicPartition,
        process: Callable[[TopicPartition, list[ConsumerRecord[bytes, bytes]]], Awaitable[None]],
        on_done: Callable[[_PartitionWorker], None],
    ) -> None:
        self.tp = tp
        self.process = process
        self.on_done = on_done
        self.backlog: list[ConsumerRecord[bytes, bytes]] = []
        self.arrived = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()
        self.done_offset: int | None = None  # next offset to commit
        self.committed_offset: int | None = None
        self.task = asyncio.create_task(self._run(), name=f"partition {tp.topic}/{tp.partition}")

    def add(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        self.backlog.extend(records)
        self.arrived.set()

    async def _run(self) -> None:
        while True:
            await self.arrived.wait()
            self.arrived.clear()
            while self.backlog:
                batch, self.backlog = self.backlog[:MAX_BATCH], self.backlog[MAX_BATCH:]
                self.idle.clear()
                try:
                    await self.process(self.tp, batch)
                finally:
                    self.idle.set()
                self.done_offset = batch[-1].offset + 1
                self.on_done(self)

    async def stop(self) -> None:
        """Drop what has not started (the next owner reads it again from the
        committed offset) and wait for the batch in flight."""
        self.backlog.clear()
        await self.idle.wait()
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


class _HandOverBetweenBatches(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: PartitionedConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.owner.release(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        # Operators (and the scale-out test) see who owns what after a rebalance.
        log.info("partitions assigned", consumer=self.owner.name, partitions=len(assigned))
        self.owner.joined.set()


class PartitionedConsumer:
    def __init__(
        self,
        *,
        name: str,
        bootstrap: str,
        group_id: str,
        topics: Sequence[str],
        handle: BatchHandler,
        check: Callable[[Event], None],
        producer: AIOKafkaProducer,
        deadletter_topic: str,
        session_timeout_ms: int = 6000,
        max_poll_interval_ms: int = 300_000,
    ) -> None:
        self.name = name
        self.handle = handle
        # Raises PoisonEventError for a record the handler can never process,
        # so that one record goes to the dead-letter topic, not its batch.
        self.check = check
        self.producer = producer
        self.deadletter_topic = deadletter_topic
        self.topics = list(topics)
        self.workers: dict[TopicPartition, _PartitionWorker] = {}
        self.to_commit = asyncio.Event()
        # Set once the group gave this consumer its share (maybe none).
        self.joined = asyncio.Event()
        self._settings: dict[str, Any] = {
            "bootstrap_servers": bootstrap,
            "group_id": group_id,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "session_timeout_ms": session_timeout_ms,
            "heartbeat_interval_ms": max(session_timeout_ms // 3, 500),
            "max_poll_interval_ms": max_poll_interval_ms,
        }
        self.consumer = AIOKafkaConsumer(**self._settings)

    async def start(self) -> None:
        """Connect and subscribe. Raises a KafkaError when the broker cannot be
        reached; the next call starts afresh (a client that failed to
        bootstrap is not started again)."""
        try:
            await self.consumer.start()
        except BaseException:
            await self.consumer.stop()
            self.consumer = AIOKafkaConsumer(**self._settings)
            raise
        self.consumer.subscribe(self.topics, listener=_HandOverBetweenBatches(self))

    async def stop(self) -> None:
        await self.release(set(self.workers))
        await self.consumer.stop()

    async def run(self) -> None:
        committer = asyncio.create_task(self._commit_loop(), name=f"{self.name} commits")
        try:
            while True:
                batches = await self.consumer.getmany(timeout_ms=1000, max_records=MAX_BATCH)
                assigned = self.consumer.assignment()
                for tp, records in batches.items():
                    if tp not in assigned:
                        continue  # revoked since the fetch: the next owner reads it
                    worker = self.workers.get(tp)
                    if worker is None:
                        worker = _PartitionWorker(tp, self._process, self._batch_done)
                        self.workers[tp] = worker
                    worker.add(records)
                    if len(worker.backlog) > PAUSE_BACKLOG:
                        self.consumer.pause(tp)
        finally:
            committer.cancel()
            for worker in self.workers.values():
                worker.task.cancel()

    def _batch_done(self, worker: _PartitionWorker) -> None:
        if not worker.backlog and worker.tp in self.consumer.paused():
            self.consumer.resume(worker.tp)
        self.to_commit.set()

    def _finished_offsets(self, workers: list[_PartitionWorker]) -> dict[TopicPartition, int]:
        return {
            w.tp: w.done_offset
            for w in workers
            if w.done_offset is not None and w.done_offset != w.committed_offset
        }

    async def _commit(self, workers: list[_PartitionWorker]) -> bool:
        """Commit what these workers finished; False if the broker could not
        be reached (the offsets stay pending)."""
        offsets = self._finished_offsets(workers)
        if not offsets:
            return True
        try:
            await self.consumer.commit(offsets)
        except CommitFailedError as error:
            # Ownership moved: the next owner handles those records again,
            # which the handlers' idempotence makes harmless.
            log.warning("commit refused", consumer=self.name, error=str(error))
            return True
        except KafkaError as error:
            # The broker is away: the offsets stay pending and the commit
            # loop tries again (a crash meanwhile redelivers, harmlessly).
            log.warning("commit failed", consumer=self.name, error=repr(error))
            return False
        for worker in workers:
            if worker.tp in offsets:
                worker.committed_offset = offsets[worker.tp]
        return True

    async def _commit_loop(self) -> None:
        # Commits coalesce: whatever finished while one was in flight, or in
        # the pause after it, goes in the next. A crash redelivers at most that
        # much, which the handlers' idempotence absorbs. While the broker is
        # away, commits are tried again with backoff.
        backoff = Backoff()
        while True:
            await self.to_commit.wait()
            self.to_commit.clear()
            if await self._commit(list(self.workers.values())):
                backoff.reset()
                await asyncio.sleep(COMMIT_INTERVAL_SECONDS)
            else:
                self.to_commit.set()
                await asyncio.sleep(backoff.next())

    async def release(self, partitions: set[TopicPartition]) -> None:
        """Stop the workers of partitions being handed over, after their batch
        in flight, and commit what they finished."""
        leaving = [self.workers.pop(tp) for tp in partitions if tp in self.workers]
        await asyncio.gather(*(w.stop() for w in leaving))
        await self._commit(leaving)

    async def _process(
        self, tp: TopicPartition, records: list[ConsumerRecord[bytes, bytes]]
    ) -> None:
        """Handle one batch until it succeeds: the poison to the dead-letter
        topic, the rest to the handler, retried with backoff on any failure."""
        events: list[Event] = []
        poison: list[tuple[ConsumerRecord[bytes, bytes], str]] = []
        for record in records:
            try:
                event = decode(record.key, record.value, tuple(record.headers))
                self.check(event)
                events.append(event)
            except PoisonEventError as error:
                poison.append((record, str(error)))
        failures = 0
        while True:
            try:
                while poison:
                    await self._deadletter(*poison[0])
                    poison.pop(0)
                if events:
                    await self.handle(events)
                return
            except asyncio.CancelledError:
                raise
            except Exception as error:
                failures += 1
                pause = min(5.0, 0.1 * 2**failures) * random.random()
                log.warning(
                    "retrying batch",
                    consumer=self.name,
                    topic=tp.topic,
                    partition=tp.partition,
                    offset=records[0].offset,
                    records=len(records),
                    error=repr(error),
                    pause_s=round(pause, 3),
                )
                await asyncio.sleep(pause)

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
