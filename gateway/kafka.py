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
until it succeeds.

One worker per partition, enforced: each worker holds a Lease on its
partition, with the epoch the saga store gave this process when it claimed
the partition (PartitionOwners). A partition being handed over may finish
its batch in flight for a short grace, while this process is still a member,
then the batch is cancelled (agency retries with it) and the lease revoked:
nothing more is published or stored for it. A lease also lapses when the
event loop was frozen for a good part of the session timeout (SIGSTOP, a
stalled host): the group may have moved the partition meanwhile, so the work
stops before it calls an agency again, and the saga store refuses a write
under a claim that is no longer the latest.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import CommitFailedError, KafkaError, TopicAlreadyExistsError

from gateway.backoff import Backoff
from gateway.events import Event, PoisonEventError, decode, encode
from gateway.metrics import GatewayMetrics

log = structlog.get_logger("kafka")


class PartitionRevokedError(Exception):
    """This process no longer owns the partition: its batch stops, unfinished."""


class HandOverLostError(Exception):
    """An event handed over in-process (PartitionedConsumer.deliver_locally)
    was not handled: the partition it was handed to was let go first. Not a
    PartitionRevokedError: the sender's own partition is still its own, and
    its batch is retried (the event then goes wherever it goes next)."""


class PartitionOwners(Protocol):
    """Who owns which partition, kept where the work's effects are (the saga
    store): a claim gives a larger epoch than any before it."""

    async def claim(self, topic: str, partition: int, owner: str) -> int: ...


class LoopWatch:
    """Notices that the event loop was frozen (SIGSTOP, a stalled host) for
    longer than `limit` seconds: the group may have given this process's
    partitions to another meanwhile, before any heartbeat could say so."""

    def __init__(self, limit: float, on_stall: Callable[[float], None]) -> None:
        self.limit = limit
        self.on_stall = on_stall
        self.last_tick = time.monotonic()

    def fresh(self) -> bool:
        # Read inline, because after a freeze a retry's timer may fire before
        # the watch's own tick does.
        return time.monotonic() - self.last_tick < self.limit

    async def run(self) -> None:
        tick = min(0.1, self.limit / 4)
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            if now - self.last_tick >= self.limit:
                self.on_stall(now - self.last_tick)
            self.last_tick = now


def always_trusted() -> bool:
    """Lease.trusted where nothing beyond the broker's group vouches."""
    return True


class Lease:
    """A worker's right to work its partition."""

    def __init__(
        self,
        tp: TopicPartition,
        epoch: int,
        watch: LoopWatch,
        trusted: Callable[[], bool] = always_trusted,
    ) -> None:
        self.tp = tp
        self.epoch = epoch
        self.watch = watch
        # Whether whoever hands out the partitions still vouches for this
        # process (store-coordinated: its beats are recent, gateway/leases.py).
        # Read inline, as the watch is: the round that would let go may be
        # stuck behind the very store call that stopped the beats.
        self.trusted = trusted
        self.revoked = False

    @property
    def valid(self) -> bool:
        return not self.revoked and self.watch.fresh() and self.trusted()

    def check(self) -> None:
        """Raise PartitionRevokedError unless still this process's to work:
        called before each agency call and each publication."""
        if not self.watch.fresh() or not self.trusted():
            self.revoked = True
        if self.revoked:
            raise PartitionRevokedError(f"{self.tp.topic}/{self.tp.partition} epoch {self.epoch}")


# Handles the events of one partition's batch, in order; returns once their
# effects are durable (stored, and what they caused acknowledged by the broker).
# The lease says whether the partition is still this process's to work.
BatchHandler = Callable[[list[Event], Lease], Awaitable[None]]


class Incarnations(Protocol):
    """A process's earlier lives in one consumer group (dynamic membership):
    a member killed without leaving holds its partitions until its session
    expires, unless its successor rejoins under its member id."""

    async def previous(self) -> str | None:
        """The member id this process had in the group before it restarted."""

    async def joined(self, member_id: str) -> None:
        """Remember the member id this process has now."""


class MemberRecords(Protocol):
    async def remember_member(self, instance: str, group_id: str, member_id: str) -> None: ...

    async def previous_member(self, instance: str, group_id: str) -> str | None: ...


class StoredIncarnations:
    """Incarnations kept in the saga store, under the gateway's configured
    instance id (stable across restarts even where the broker does not honour
    static membership). Measured with a member SIGKILLed and started again:
    rejoining under its old member id, it had its partitions back 3.4 s after
    the kill on the embedded broker (whose joins take 3 s) and the other
    member was not rebalanced at all; with a new member id the group waited
    9 s for the dead one's session, and rebalanced everyone."""

    def __init__(self, store: MemberRecords, instance: str, group_id: str) -> None:
        self.store = store
        self.instance = instance
        self.group_id = group_id

    async def previous(self) -> str | None:
        return await self.store.previous_member(self.instance, self.group_id)

    async def joined(self, member_id: str) -> None:
        await self.store.remember_member(self.instance, self.group_id, member_id)


def rejoin_as(consumer: GroupConsumer, member_id: str) -> None:
    """Make the consumer's first JoinGroup carry this member id (between
    start() and subscribe(), before it joins). aiokafka keeps the id on its
    coordinator and has no public way to set it; the version is pinned in
    uv.lock and tests/brokers/test_group_rejoin.py checks it on both brokers.
    If the id is unknown to the group by now (its session expired), Apache
    Kafka answers UNKNOWN_MEMBER_ID and aiokafka joins afresh; Tansu takes it
    as a new member's id. Either way the member joins."""
    coordinator = getattr(consumer, "_coordinator", None)
    if coordinator is not None:
        coordinator.member_id = member_id


def member_id_of(consumer: GroupConsumer) -> str | None:
    """The member id the group gave this consumer (aiokafka keeps it on its
    coordinator; a fake consumer has none)."""
    coordinator = getattr(consumer, "_coordinator", None)
    member_id = getattr(coordinator, "member_id", None)
    return member_id if isinstance(member_id, str) and member_id else None


class GroupConsumer(Protocol):
    """What PartitionedConsumer uses of AIOKafkaConsumer (a fake in tests)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def subscribe(self, topics: list[str], listener: ConsumerRebalanceListener) -> None: ...

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Mapping[TopicPartition, list[ConsumerRecord[bytes, bytes]]]: ...

    def assignment(self) -> set[TopicPartition]: ...

    def pause(self, *partitions: TopicPartition) -> None: ...

    def resume(self, *partitions: TopicPartition) -> None: ...

    def paused(self) -> set[TopicPartition]: ...

    async def commit(self, offsets: dict[TopicPartition, int]) -> None: ...

    async def seek_to_committed(self, *partitions: TopicPartition) -> Any: ...

    def highwater(self, partition: TopicPartition) -> int | None: ...


@dataclass(frozen=True)
class Membership:
    """How a gateway process belongs to its consumer groups."""

    # Static membership (KIP-345) when set: see static_membership_honoured.
    instance_id: str | None = None
    session_timeout_ms: int = 6000
    rebalance_timeout_ms: int = 5000
    handover_grace_seconds: float = 1.0


def make_consumer(
    bootstrap: str,
    group_id: str,
    membership: Membership,
    *,
    max_poll_interval_ms: int,
    fetch_max_wait_ms: int = 500,
) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group_id,
        group_instance_id=membership.instance_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=membership.session_timeout_ms,
        # At most 1 s: a member hears of a rebalance at its next heartbeat.
        heartbeat_interval_ms=max(500, min(membership.session_timeout_ms // 3, 1000)),
        # Given apart: the broker waits this long for every member to rejoin,
        # so a member's revocation must fit in it (handover grace + commit).
        rebalance_timeout_ms=membership.rebalance_timeout_ms,
        max_poll_interval_ms=max_poll_interval_ms,
        fetch_max_wait_ms=fetch_max_wait_ms,
    )


def make_plain_consumer(bootstrap: str, fetch_max_wait_ms: int = 500) -> AIOKafkaConsumer:
    """A consumer without a group, for partitions leased in the saga store
    (gateway/leases.py), which also keeps their offsets."""
    return AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=fetch_max_wait_ms,
    )


async def static_membership_honoured(bootstrap: str, topic: str, *, within: float = 2.0) -> bool:
    """Whether the broker gives a restarted static member its partitions back
    at once. Both brokers accept group_instance_id on the wire (JoinGroup v5);
    Apache Kafka keeps the member's place, the embedded Tansu broker waits for
    the old member's session to expire (measured: 7.5 s after a restart
    against Apache's 1.6 s, and a member gone for good was dropped after 11.6 s
    against 8.6 s without an instance id). So this tries it, in a throwaway
    group: join, vanish without leaving, rejoin under the same id."""
    group = f"static-membership-probe-{uuid.uuid4().hex[:8]}"
    membership = Membership(instance_id=f"probe-{uuid.uuid4().hex[:8]}")

    async def join() -> tuple[AIOKafkaConsumer, float]:
        consumer = make_consumer(bootstrap, group, membership, max_poll_interval_ms=300_000)
        await consumer.start()
        consumer.subscribe([topic])
        began = time.monotonic()
        while not consumer.assignment():
            await consumer.getmany(timeout_ms=100)
            if time.monotonic() - began > 30:
                break
        return consumer, time.monotonic() - began

    first, _ = await join()
    await first.stop()  # a static member sends no LeaveGroup
    second, rejoined_in = await join()
    await second.stop()
    return bool(second.assignment()) and rejoined_in < within


async def ensure_topics(bootstrap: str, topics: Sequence[str], partitions: int) -> dict[str, int]:
    """Create the topics that do not exist yet; returns each topic's partition
    count as the broker has it (a topic made before may have another). Raises
    a KafkaError when the broker cannot be reached or cannot say yet (the
    caller waits and tries again)."""
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
        described = {
            str(t["topic"]): len(t["partitions"])
            for t in await admin.describe_topics(list(topics))
            if t.get("partitions")
        }
    finally:
        await admin.close()
    missing = [t for t in topics if t not in described]
    if missing:
        raise KafkaError(f"no partitions known yet for {', '.join(missing)}")
    return described


def make_producer(bootstrap: str, *, linger_ms: int = 5) -> AIOKafkaProducer:
    # acks=all without the idempotent producer: the embedded broker has none,
    # and duplicates are harmless because every consumer de-duplicates by ce_id.
    # linger 5 ms: fewer, fuller produce requests; at 260 dossiers/s p99 was
    # 1.7 s against 2.5 s with 2 ms (10 ms was worse again).
    return AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=False,
        linger_ms=linger_ms,
        request_timeout_ms=15000,
    )


async def send(producer: AIOKafkaProducer, topic: str, event: Event) -> asyncio.Future[Any]:
    """Hand one event to the producer; the future resolves on the broker's ack."""
    key, value, headers = encode(event)
    acknowledged: asyncio.Future[Any] = await producer.send(
        topic, value=value, key=key, headers=headers
    )
    return acknowledged


def send_now(producer: AIOKafkaProducer) -> None:
    """Let what the producer holds go without waiting out its linger, where
    nothing is in flight for its partition: a unit of work (a saga batch, a
    step batch) has sent all it will, and waiting 5 ms more for company that
    is not coming cost each of a dossier's hops that much when the stack is
    quiet. A partition whose produce request is in flight keeps its open
    batch lingering (it goes when the request returns, as before), so under
    load requests stay as full as before: closing a batch there would queue
    a second one behind it, and the sender takes one batch per partition per
    request. Nagle, per partition. aiokafka has no public call for this
    (flush() waits, and closes nothing); the version is pinned in uv.lock and
    tests/gateway/test_kafka.py checks it still works."""
    accumulator = getattr(producer, "_message_accumulator", None)
    sender = getattr(producer, "_sender", None)
    batches = getattr(accumulator, "_batches", None)
    muted = getattr(sender, "_muted_partitions", None)
    if batches is None or muted is None:
        return  # another aiokafka: the linger applies, nothing breaks
    released = False
    for tp, queued in batches.items():
        if len(queued) == 1 and tp not in muted:
            queued[0]._builder.close()
            released = True
    waiter = getattr(accumulator, "_waiter_future", None)
    if released and waiter is not None and not waiter.done():
        waiter.set_result(None)  # wakes the sender, as a new batch would


async def send_alone(producer: AIOKafkaProducer, topic: str, event: Event) -> asyncio.Future[Any]:
    """send() for a unit of work of one event (an API submission): let go at once."""
    acknowledged = await send(producer, topic, event)
    send_now(producer)
    return acknowledged


async def publish(producer: AIOKafkaProducer, messages: Sequence[tuple[str, Event]]) -> None:
    """Send (topic, event) pairs and wait for every acknowledgement: sent all
    first, so they share produce requests, then let go (send_now) and awaited
    together."""
    futures = [await send(producer, topic, event) for topic, event in messages]
    if futures:
        send_now(producer)
    for future in futures:
        await future


# Partitions with a longer backlog than this are paused at the broker.
PAUSE_BACKLOG = 2_000
# Records handed to one batch at most (one store transaction).
MAX_BATCH = 500
# Offsets are committed at most this often: each commit is a round trip and,
# on Apache Kafka, a write to __consumer_offsets. At 0.1 s the four busy
# consumers of a gateway made ~40 commits a second at 30 dossiers/s each,
# ~3 % of the gateway's CPU (py-spy); a crash redelivers at most this much
# more, which the handlers' idempotence absorbs, and a handover commits at
# once (release) whatever the interval.
COMMIT_INTERVAL_SECONDS = 0.5


def _retrieved(done: asyncio.Future[None]) -> None:
    if not done.cancelled():
        done.exception()


def _fail_all(waiting: list[tuple[Event, asyncio.Future[None]]], tp: TopicPartition) -> None:
    for _, done in waiting:
        if not done.done():
            done.set_exception(
                HandOverLostError(f"{tp.topic}/{tp.partition} let go before the event was handled")
            )
    waiting.clear()


class _PartitionWorker:
    """Handles one partition's records in order, a batch at a time."""

    def __init__(
        self,
        lease: Lease,
        process: Callable[[Lease, list[ConsumerRecord[bytes, bytes]]], Awaitable[None]],
        on_done: Callable[[_PartitionWorker], None],
        process_local: Callable[[Lease, list[Event]], Awaitable[None]] | None = None,
    ) -> None:
        self.tp = lease.tp
        self.lease = lease
        self.process = process
        self.process_local = process_local
        self.on_done = on_done
        self.backlog: list[ConsumerRecord[bytes, bytes]] = []
        # Events handed over in this process instead of through the broker
        # (PartitionedConsumer.deliver_locally), each with the future its
        # sender awaits: done once the event's effects are durable, failed
        # if the partition is let go first.
        self.local: list[tuple[Event, asyncio.Future[None]]] = []
        self.arrived = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()
        self.done_offset: int | None = None  # next offset to commit
        # The first offset not handled yet (for the consumer lag).
        self.next_offset: int | None = None
        self.committed_offset: int | None = None
        self.task = asyncio.create_task(
            self._run(), name=f"partition {self.tp.topic}/{self.tp.partition}"
        )

    def add(self, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        if self.next_offset is None and records:
            self.next_offset = records[0].offset
        self.backlog.extend(records)
        self.arrived.set()

    def add_local(self, event: Event) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Its sender may be gone by the time it fails (its own batch cut short
        # at a handover): read the failure here, so asyncio does not report
        # it as never retrieved.
        done.add_done_callback(_retrieved)
        self.local.append((event, done))
        self.arrived.set()
        return done

    async def _run(self) -> None:
        try:
            while True:
                await self.arrived.wait()
                self.arrived.clear()
                while self.backlog or self.local:
                    # Records and events handed over take turns, a batch each.
                    if self.backlog and not await self._records():
                        return
                    if self.local and not await self._local():
                        return
        finally:
            # Let go (stopped, cancelled, revoked): whoever handed an event
            # over learns it was not handled, and sends it again.
            _fail_all(self.local, self.tp)

    async def _records(self) -> bool:
        """One batch of records; False once the partition is not ours."""
        batch, self.backlog = self.backlog[:MAX_BATCH], self.backlog[MAX_BATCH:]
        self.idle.clear()
        try:
            await self.process(self.lease, batch)
        except PartitionRevokedError:
            # Not this process's any more: nothing is committed, the
            # owner reads the batch again from the committed offset.
            self.backlog.clear()
            return False
        finally:
            self.idle.set()
        self.done_offset = self.next_offset = batch[-1].offset + 1
        self.on_done(self)
        return True

    async def _local(self) -> bool:
        """One batch of events handed over; no offset moves for them."""
        assert self.process_local is not None  # add_local is offered only with it
        batch, self.local = self.local[:MAX_BATCH], self.local[MAX_BATCH:]
        self.idle.clear()
        try:
            await self.process_local(self.lease, [event for event, _ in batch])
        except PartitionRevokedError:
            _fail_all(batch, self.tp)
            self.backlog.clear()
            return False
        except BaseException:
            _fail_all(batch, self.tp)
            raise
        finally:
            self.idle.set()
        for _, done in batch:
            if not done.done():
                done.set_result(None)
        return True

    async def stop(self, grace: float) -> bool:
        """Drop what has not started (the next owner reads it again from the
        committed offset); let the batch in flight finish within `grace`
        seconds, else cancel it. Then nothing more is done for the partition.
        Returns whether a batch was cut short."""
        self.backlog.clear()
        _fail_all(self.local, self.tp)
        cut_short = False
        if self.lease.valid and not self.task.done():
            try:
                await asyncio.wait_for(self.idle.wait(), grace)
            except TimeoutError:
                cut_short = True
        else:
            cut_short = not self.idle.is_set()
        self.lease.revoked = True
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        return cut_short


class _HandOverBetweenBatches(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, owner: PartitionedConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.owner.release(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.owner.claim(assigned)
        # Operators (and the scale-out test) see who owns what after a rebalance.
        # All it holds now: a group assigns everything anew, leases add to it.
        log.info(
            "partitions assigned",
            consumer=self.owner.name,
            partitions=len(self.owner.consumer.assignment()),
            new=len(assigned),
            static=self.owner.membership.instance_id is not None,
        )
        self.owner.joined.set()


class PartitionedConsumer:
    def __init__(
        self,
        *,
        name: str,
        consumer: GroupConsumer,
        topics: Sequence[str],
        handle: BatchHandler,
        check: Callable[[Event], None],
        producer: AIOKafkaProducer,
        deadletter_topic: str,
        membership: Membership,
        owners: PartitionOwners | None = None,
        owner_name: str = "",
        remake: Callable[[], GroupConsumer] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        incarnations: Incarnations | None = None,
        group_id: str = "",
        metrics: GatewayMetrics | None = None,
        trusted: Callable[[], bool] = always_trusted,
    ) -> None:
        self.name = name
        # Ends every lease at once when false (see Lease.trusted).
        self.trusted = trusted
        # The consumer group, as the lag metric names it.
        self.group_id = group_id or name
        self.metrics = GatewayMetrics() if metrics is None else metrics
        self.membership = membership
        # Claims this process's partitions where their work's effects are
        # stored; without it (tests), epochs count locally.
        self.owners = owners
        self.owner_name = owner_name or name
        self.epochs: dict[TopicPartition, int] = {}  # of the partitions held now
        self._claims: dict[TopicPartition, int] = {}  # counted here when no owners
        # Half the session: a freeze that long may have let the group move on.
        self.watch = LoopWatch(membership.session_timeout_ms / 2000, self._stalled)
        self.handle = handle
        # Raises PoisonEventError for a record the handler can never process,
        # so that one record goes to the dead-letter topic, not its batch.
        self.check = check
        self.producer = producer
        self.deadletter_topic = deadletter_topic
        self.topics = list(topics)
        self.workers: dict[TopicPartition, _PartitionWorker] = {}
        self.to_commit = asyncio.Event()
        # Partitions whose work was dropped after a freeze, to read again
        # once the group has had its say (see _stalled).
        self._reread: set[TopicPartition] = set()
        self._reread_at = 0.0
        self._monotonic = monotonic
        # Under dynamic membership: this process's earlier member in the group.
        self.incarnations = incarnations
        # Set once the group gave this consumer its share (maybe none).
        self.joined = asyncio.Event()
        self.consumer = consumer
        # A client that failed to bootstrap (the broker down at start) is not
        # started again: a fresh one is made for the next try.
        self._remake = remake

    async def start(self) -> None:
        """Connect and subscribe. Raises a KafkaError when the broker cannot be
        reached; the next call starts afresh (a client that failed to
        bootstrap is not started again)."""
        try:
            await self.consumer.start()
        except BaseException:
            await self.consumer.stop()
            if self._remake is not None:
                self.consumer = self._remake()
            raise
        previous = None if self.incarnations is None else await self.incarnations.previous()
        if previous is not None:
            # Rejoin as the member this process was before it restarted: the
            # group gives its partitions back without waiting out its session.
            rejoin_as(self.consumer, previous)
            log.info("rejoining as the previous member", consumer=self.name, member_id=previous)
        self.consumer.subscribe(self.topics, listener=_HandOverBetweenBatches(self))

    async def stop(self) -> None:
        await self.release(set(self.workers))
        await self.consumer.stop()

    async def claim(self, assigned: set[TopicPartition]) -> None:
        """Take the assigned partitions in the owners' record: a larger epoch
        than any earlier owner's, whose writes the store now refuses."""
        # The claims await the store, and aiokafka fetches the new partitions
        # meanwhile: paused until each has its epoch, since run() passes over
        # records of a partition with none (a paused partition's records are
        # not handed out, and are fetched again from the same position).
        if assigned:
            self.consumer.pause(*assigned)
        try:
            member_id = member_id_of(self.consumer)
            if self.incarnations is not None and member_id is not None:
                await self.incarnations.joined(member_id)
            # A fresh assignment ends any wait after a freeze: the group has
            # spoken, and an assignment reads from the committed offsets.
            self._reread -= assigned
            for tp in assigned:
                if self.owners is not None:
                    self.epochs[tp] = await self.owners.claim(
                        tp.topic, tp.partition, self.owner_name
                    )
                else:
                    self._claims[tp] = self._claims.get(tp, 0) + 1
                    self.epochs[tp] = self._claims[tp]
        finally:
            if assigned:
                self.consumer.resume(*assigned)

    def _stalled(self, seconds: float) -> None:
        """The loop was frozen: every lease lapsed (Lease.check already says
        so). Drop the workers and pause their partitions. Work nothing for
        them until the group has had its say: if it moved them meanwhile, the
        next heartbeat finds this member gone and a rebalance assigns afresh
        (claim() ends the wait); if it did not, after one session timeout
        with no rebalance they are still ours, and are read again from the
        last commit. Reading them again at once let a frozen member run a
        step that its successor ran too, before the group told it so."""
        log.warning(
            "event loop was frozen; dropping partitions' work",
            consumer=self.name,
            frozen_s=round(seconds, 1),
            partitions=len(self.workers),
        )
        dropped = list(self.workers.values())
        self.workers.clear()
        for worker in dropped:
            worker.lease.revoked = True
            worker.backlog.clear()
            worker.task.cancel()
        held = set(self.epochs) | {w.tp for w in dropped}
        self.epochs.clear()
        self.metrics.forget_partitions(self.group_id, held)
        self._reread |= held
        self._reread_at = self._monotonic() + self.membership.session_timeout_ms / 1000
        if held:
            self.consumer.pause(*held)

    async def run(self) -> None:
        committer = asyncio.create_task(self._commit_loop(), name=f"{self.name} commits")
        watch = asyncio.create_task(self.watch.run(), name=f"{self.name} loop watch")
        try:
            while True:
                if self._reread and self._monotonic() >= self._reread_at:
                    await self._read_again_from_commit()
                batches = await self.consumer.getmany(timeout_ms=1000, max_records=MAX_BATCH)
                if self._reread:
                    # Fetched before the freeze was noticed: read again from
                    # the commit once the wait is over.
                    batches = {tp: r for tp, r in batches.items() if tp not in self._reread}
                assigned = self.consumer.assignment()
                for tp, records in batches.items():
                    if tp not in assigned or tp not in self.epochs:
                        continue  # revoked since the fetch: the next owner reads it
                    worker = self._worker(tp)
                    worker.add(records)
                    if len(worker.backlog) > PAUSE_BACKLOG:
                        self.consumer.pause(tp)
                self._report_lag()
        finally:
            committer.cancel()
            watch.cancel()
            for worker in self.workers.values():
                worker.task.cancel()

    async def _read_again_from_commit(self) -> None:
        partitions = self._reread & self.consumer.assignment()
        self._reread = set()
        if partitions:
            # Re-claim: if the store already has a later owner, the new
            # workers' writes are refused; a rebalance will sort out who.
            await self.claim(partitions)
            await self.consumer.seek_to_committed(*partitions)
            self.consumer.resume(*partitions)

    def _batch_done(self, worker: _PartitionWorker) -> None:
        if not worker.backlog and worker.tp in self.consumer.paused():
            self.consumer.resume(worker.tp)
        self.to_commit.set()
        self._report_lag([worker.tp])

    def _report_lag(self, partitions: Iterable[TopicPartition] | None = None) -> None:
        """The lag of each held partition (or of these): its high watermark at
        the last fetch minus the first offset not handled yet. On the event
        loop, after each fetch (at least once a second: every held partition)
        and each batch (its own). A partition with no record fetched since it
        was assigned is caught up as of the fetch that brought its high
        watermark."""
        assigned = self.consumer.assignment()
        for tp in list(self.epochs if partitions is None else partitions):
            if tp not in assigned or tp not in self.epochs:
                continue
            highwater = self.consumer.highwater(tp)
            if highwater is None:
                continue  # not fetched yet
            worker = self.workers.get(tp)
            handled = worker.next_offset if worker is not None else None
            self.metrics.lag(self.group_id, tp, 0 if handled is None else highwater - handled)

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
        """Stop the workers of partitions being handed over, each after its
        batch in flight or the handover grace, and commit what they finished
        (while this process is still the group's member for them)."""
        for tp in partitions:
            self.epochs.pop(tp, None)
        self.metrics.forget_partitions(self.group_id, partitions)
        leaving = [self.workers.pop(tp) for tp in partitions if tp in self.workers]
        cut_short = await asyncio.gather(
            *(w.stop(self.membership.handover_grace_seconds) for w in leaving)
        )
        if leaving:
            log.info(
                "partitions released",
                consumer=self.name,
                partitions=len(leaving),
                batches_cut_short=sum(cut_short),
            )
        await self._commit(leaving)

    def deliver_locally(self, tp: TopicPartition, event: Event) -> asyncio.Future[None] | None:
        """Hand an event to this consumer's worker of `tp`, as if read from it,
        when this process holds `tp` now: the future is done once the
        handler made its effects durable (under the partition's epoch, as a
        record's), and fails if the partition is let go first. None when
        `tp` is not held here (or its lease lapsed): send it through the
        broker instead. The event is checked first; a poison event is None."""
        if tp not in self.epochs or tp in self._reread or tp not in self.consumer.assignment():
            return None
        try:
            self.check(event)
        except PoisonEventError:
            return None
        worker = self._worker(tp)
        if not worker.lease.valid:
            return None
        return worker.add_local(event)

    def _worker(self, tp: TopicPartition) -> _PartitionWorker:
        worker = self.workers.get(tp)
        if worker is None:
            lease = Lease(tp, self.epochs[tp], self.watch, self.trusted)
            worker = _PartitionWorker(lease, self._process, self._batch_done, self._handle_local)
            self.workers[tp] = worker
        return worker

    async def _handle_local(self, lease: Lease, events: list[Event]) -> None:
        await self._handle(lease, events, [], offset=None)

    async def _process(self, lease: Lease, records: list[ConsumerRecord[bytes, bytes]]) -> None:
        """Decode one batch of records: the poison to the dead-letter topic,
        the rest to the handler."""
        events: list[Event] = []
        poison: list[tuple[ConsumerRecord[bytes, bytes], str]] = []
        for record in records:
            try:
                event = decode(record.key, record.value, tuple(record.headers))
                self.check(event)
                events.append(event)
            except PoisonEventError as error:
                poison.append((record, str(error)))
        await self._handle(lease, events, poison, offset=records[0].offset)

    async def _handle(
        self,
        lease: Lease,
        events: list[Event],
        poison: list[tuple[ConsumerRecord[bytes, bytes], str]],
        *,
        offset: int | None,
    ) -> None:
        """Until it succeeds: the poison to the dead-letter topic, the events
        to the handler, retried with backoff on any failure. `offset`: the
        batch's first, for the log (None: events handed over in-process)."""
        records = len(events) + len(poison)
        failures = 0
        while True:
            try:
                while poison:
                    lease.check()
                    await self._deadletter(*poison[0])
                    poison.pop(0)
                if events:
                    await self.handle(events, lease)
                return
            except asyncio.CancelledError:
                raise
            except PartitionRevokedError as revoked:
                log.warning(
                    "batch dropped: partition no longer ours",
                    consumer=self.name,
                    topic=lease.tp.topic,
                    partition=lease.tp.partition,
                    epoch=lease.epoch,
                    offset=offset,
                    records=records,
                    why=str(revoked),
                )
                raise
            except Exception as error:
                failures += 1
                self.metrics.batch_retried(self.name, lease.tp.topic)
                pause = min(5.0, 0.1 * 2**failures) * random.random()
                log.warning(
                    "retrying batch",
                    consumer=self.name,
                    topic=lease.tp.topic,
                    partition=lease.tp.partition,
                    offset=offset,
                    records=records,
                    error=repr(error),
                    pause_s=round(pause, 3),
                )
                await asyncio.sleep(pause)
                lease.check()

    async def _deadletter(self, record: ConsumerRecord[bytes, bytes], why: str) -> None:
        headers = [
            *record.headers,
            ("x-deadletter-reason", why.encode()),
            ("x-deadletter-origin", f"{record.topic}/{record.partition}/{record.offset}".encode()),
        ]
        await self.producer.send_and_wait(
            self.deadletter_topic, value=record.value, key=record.key, headers=headers
        )
        self.metrics.dead_lettered(self.name, record.topic)
        log.error(
            "dead-lettered",
            consumer=self.name,
            reason=why,
            topic=record.topic,
            offset=record.offset,
        )
