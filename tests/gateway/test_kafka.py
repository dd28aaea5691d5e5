"""The partitioned consumer (gateway/kafka.py) driven by a fake group
consumer: batches in order, commits, pauses, and what a partition being
handed over, a refused commit, a stale owner or a frozen loop do to its work.
No broker: assignments and revocations are the test's to make."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError
from prometheus_client import CollectorRegistry

from gateway import kafka
from gateway.events import Event, PoisonEventError, encode
from gateway.kafka import (
    HandOverLostError,
    Lease,
    Membership,
    PartitionedConsumer,
    PartitionRevokedError,
    StoredIncarnations,
)
from gateway.metrics import GatewayMetrics
from lienthong.events.v1 import events_pb2 as ev

pytestmark = pytest.mark.timeout(30)

TOPIC = "t.step-commands"
P0, P1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)
GRACE = 0.2
SESSION_S = 2.0


class FakeCoordinator:
    member_id = ""


class FakeGroupConsumer:
    """The group consumer as PartitionedConsumer sees it."""

    def __init__(self) -> None:
        self._coordinator = FakeCoordinator()
        self.started = False
        self.fetched: asyncio.Queue[dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]]
        self.fetched = asyncio.Queue()
        self.assigned: set[TopicPartition] = set()
        self.listener: ConsumerRebalanceListener | None = None
        self.commits: list[dict[TopicPartition, int]] = []
        self.refuse_commits = False
        self._paused: set[TopicPartition] = set()
        self.seeks: list[TopicPartition] = []
        self.getmany_calls = 0
        # What the last fetch said each partition's high watermark was.
        self.highwaters: dict[TopicPartition, int] = {}

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        pass

    def subscribe(self, topics: list[str], listener: ConsumerRebalanceListener) -> None:
        self.listener = listener

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Mapping[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        self.getmany_calls += 1
        try:
            return await asyncio.wait_for(self.fetched.get(), 0.05)
        except TimeoutError:
            return {}

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def pause(self, *partitions: TopicPartition) -> None:
        self._paused.update(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self._paused.difference_update(partitions)

    def paused(self) -> set[TopicPartition]:
        return set(self._paused)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.refuse_commits:
            raise CommitFailedError("the group has rebalanced")
        self.commits.append(dict(offsets))

    async def seek_to_committed(self, *partitions: TopicPartition) -> Any:
        self.seeks.extend(partitions)

    def highwater(self, partition: TopicPartition) -> int | None:
        return self.highwaters.get(partition)

    # --- the group's side -------------------------------------------------------------

    async def assign(self, *partitions: TopicPartition) -> None:
        assert self.listener is not None
        self.assigned = set(partitions)
        await self.listener.on_partitions_assigned(set(partitions))

    async def revoke(self) -> None:
        assert self.listener is not None
        await self.listener.on_partitions_revoked(set(self.assigned))
        self.assigned = set()

    def deliver(self, tp: TopicPartition, *offsets: int) -> None:
        self.fetched.put_nowait({tp: [record(tp, o) for o in offsets]})


def record(tp: TopicPartition, offset: int) -> ConsumerRecord[bytes, bytes]:
    command = ev.StepCommand(dossier_id=f"birth-{offset}", step="register_birth")
    key, value, headers = encode(
        Event(f"birth-{offset}/register_birth", f"birth-{offset}", command, dt.datetime.now(dt.UTC))
    )
    return ConsumerRecord(
        tp.topic, tp.partition, offset, 0, 0, key, value, None, len(key), len(value), headers
    )


class Recorder:
    """A batch handler that records what it handled, and can be held."""

    def __init__(self) -> None:
        self.handled: list[tuple[int, str]] = []  # (epoch, event id)
        self.hold: asyncio.Event | None = None
        self.started = asyncio.Event()
        self.behave: Callable[[Lease], Awaitable[None]] | None = None

    async def __call__(self, events: list[Event], lease: Lease) -> None:
        self.started.set()
        if self.behave is not None:
            await self.behave(lease)
        if self.hold is not None:
            await self.hold.wait()
        lease.check()  # as the executor does before it publishes: the effect comes after
        self.handled.extend((lease.epoch, e.event_id) for e in events)


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def partitioned(
    fake: FakeGroupConsumer,
    handler: Recorder,
    *,
    monotonic: Callable[[], float] = time.monotonic,
    incarnations: StoredIncarnations | None = None,
    metrics: GatewayMetrics | None = None,
    check: Callable[[Event], None] = lambda event: None,
    producer: Any = None,  # no poison unless `check` says so: nothing is produced
    trusted: Callable[[], bool] = lambda: True,
) -> PartitionedConsumer:
    """The consumer under test, over the fake group consumer."""
    return PartitionedConsumer(
        name="steps",
        consumer=fake,
        topics=[TOPIC],
        handle=handler,
        check=check,
        producer=producer,
        deadletter_topic="t.deadletter",
        group_id="t.steps",
        metrics=metrics,
        membership=Membership(
            session_timeout_ms=int(SESSION_S * 1000), handover_grace_seconds=GRACE
        ),
        monotonic=monotonic,
        incarnations=incarnations,
        trusted=trusted,
    )


@pytest.fixture
def now() -> list[float]:
    """The consumer's monotonic clock, moved by hand."""
    return [1000.0]


@pytest.fixture
async def running(
    now: list[float],
) -> AsyncIterator[tuple[PartitionedConsumer, FakeGroupConsumer, Recorder]]:
    fake, handler = FakeGroupConsumer(), Recorder()
    consumer = partitioned(fake, handler, monotonic=lambda: now[0])
    await consumer.start()
    task = asyncio.create_task(consumer.run())
    yield consumer, fake, handler
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


def committed(fake: FakeGroupConsumer, tp: TopicPartition) -> int | None:
    offsets = [c[tp] for c in fake.commits if tp in c]
    return offsets[-1] if offsets else None


async def a_batch_in_flight(
    fake: FakeGroupConsumer, handler: Recorder, tp: TopicPartition = P0
) -> asyncio.Event:
    """`tp` assigned and its first record's batch held in the handler until
    the event returned is set."""
    await fake.assign(tp)
    hold = handler.hold = asyncio.Event()
    fake.deliver(tp, 0)
    await handler.started.wait()
    return hold


@contextlib.asynccontextmanager
async def consuming(*consumers: PartitionedConsumer) -> AsyncIterator[None]:
    """The consumers started and running until the block ends; each then
    ends by its cancellation, not by an error of its own."""
    for consumer in consumers:
        await consumer.start()
    tasks = [asyncio.create_task(consumer.run()) for consumer in consumers]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        ended = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(e, asyncio.CancelledError) for e in ended), ended


async def test_batches_are_handled_in_order_and_committed_after_them(
    running: tuple[PartitionedConsumer, FakeGroupConsumer, Recorder],
) -> None:
    _consumer, fake, handler = running
    await fake.assign(P0, P1)
    fake.deliver(P0, 0, 1, 2)
    fake.deliver(P1, 0)
    fake.deliver(P0, 3)
    await until(lambda: committed(fake, P0) == 4 and committed(fake, P1) == 1)
    assert [i for _, i in handler.handled if i.startswith(("birth-1", "birth-2", "birth-3"))] == [
        "birth-1/register_birth",
        "birth-2/register_birth",
        "birth-3/register_birth",
    ]


async def test_a_long_backlog_pauses_its_partition_until_worked_off(
    running: tuple[PartitionedConsumer, FakeGroupConsumer, Recorder],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _consumer, fake, handler = running
    monkeypatch.setattr(kafka, "PAUSE_BACKLOG", 2)
    monkeypatch.setattr(kafka, "MAX_BATCH", 1)
    await fake.assign(P0)
    handler.hold = asyncio.Event()
    fake.deliver(P0, 0, 1, 2, 3, 4)
    await until(lambda: P0 in fake.paused())
    handler.hold.set()
    await until(lambda: committed(fake, P0) == 5)
    assert P0 not in fake.paused()


async def test_a_batch_that_finishes_within_the_grace_is_committed_at_the_handover(
    running: tuple[PartitionedConsumer, FakeGroupConsumer, Recorder],
) -> None:
    _consumer, fake, handler = running
    await fake.assign(P0)
    handler.hold = asyncio.Event()
    fake.deliver(P0, 0, 1)
    await handler.started.wait()
    asyncio.get_running_loop().call_later(GRACE / 4, handler.hold.set)
    await fake.revoke()
    # Committed by the revocation itself, before the partition is let go.
    assert committed(fake, P0) == 2
    assert len(handler.handled) == 2


async def test_a_batch_still_busy_after_the_grace_is_cancelled_and_not_committed(
    running: tuple[PartitionedConsumer, FakeGroupConsumer, Recorder],
) -> None:
    consumer, fake, handler = running
    await fake.assign(P0)
    handler.hold = asyncio.Event()  # an agency that never answers
    fake.deliver(P0, 0)
    await handler.started.wait()
    began = time.monotonic()
    await fake.revoke()
    assert time.monotonic() - began < GRACE + 1, "the handover waited for the batch"
    handler.hold.set()  # the agency answers late: nothing may come of it
    await asyncio.sleep(0)
    assert handler.handled == []
    assert committed(fake, P0) is None
    # Records fetched before the revocation are not worked either.
    fake.deliver(P0, 1)
    await until(fake.fetched.empty)
    assert consumer.workers == {}


async def test_a_refused_commit_leaves_the_offset_uncommitted_and_work_goes_on(
    running: tuple[PartitionedConsumer, FakeGroupConsumer, Recorder],
) -> None:
    _consumer, fake, handler = running
    await fake.assign(P0)
    fake.refuse_commits = True
    fake.deliver(P0, 0)
    await until(lambda: len(handler.handled) == 1)
    fake.refuse_commits = False
    fake.deliver(P0, 1)
    await until(lambda: committed(fake, P0) == 2)


async def test_a_stale_owner_drops_its_batch_without_committing(
    running: tuple[PartitionedConsumer, FakeGroupConsumer, Recorder],
) -> None:
    consumer, fake, handler = running
    await fake.assign(P0)

    async def refused(lease: Lease) -> None:
        raise PartitionRevokedError("the saga store has a later claim")

    handler.behave = refused
    fake.deliver(P0, 0, 1)
    await until(lambda: consumer.workers[P0].task.done() if P0 in consumer.workers else False)
    assert handler.handled == [] and committed(fake, P0) is None


async def test_a_batch_in_flight_stops_once_the_coordination_no_longer_vouches_for_it() -> None:
    # Leased partitions: the process's beats went stale (its store stuck),
    # and the round that would let go waits behind that store: the worker
    # itself must stop before it publishes.
    vouched = [True]
    fake, handler = FakeGroupConsumer(), Recorder()
    consumer = partitioned(fake, handler, trusted=lambda: vouched[0])
    async with consuming(consumer):
        hold = await a_batch_in_flight(fake, handler)
        vouched[0] = False
        hold.set()
        await until(consumer.workers[P0].task.done)
        assert handler.handled == []
        assert committed(fake, P0) is None


async def test_each_assignment_gives_a_new_epoch(
    running: tuple[PartitionedConsumer, FakeGroupConsumer, Recorder],
) -> None:
    _consumer, fake, handler = running
    await fake.assign(P0)
    fake.deliver(P0, 0)
    await until(lambda: len(handler.handled) == 1)
    await fake.revoke()
    await fake.assign(P0)
    fake.deliver(P0, 1)
    await until(lambda: len(handler.handled) == 2)
    assert [epoch for epoch, _ in handler.handled] == [1, 2]


async def frozen_with_a_batch_in_flight(
    consumer: PartitionedConsumer, fake: FakeGroupConsumer, handler: Recorder
) -> None:
    hold = await a_batch_in_flight(fake, handler)
    # As after SIGSTOP: the loop was not seen alive for longer than the limit.
    consumer.watch.last_tick -= 10
    hold.set()
    await until(lambda: P0 in fake.paused())


async def test_after_a_frozen_loop_nothing_is_worked_until_the_group_has_had_its_say(
    running: tuple[PartitionedConsumer, FakeGroupConsumer, Recorder],
    now: list[float],
) -> None:
    consumer, fake, handler = running
    await frozen_with_a_batch_in_flight(consumer, fake, handler)
    # Records fetched before the pause took effect are not worked either.
    fake.deliver(P0, 0)
    now[0] += SESSION_S - 0.5  # not yet a session timeout after the freeze
    await until(lambda: fake.getmany_calls >= 5)
    fake.getmany_calls = 0
    await until(lambda: fake.getmany_calls >= 5)
    assert handler.handled == []
    assert fake.seeks == []
    assert committed(fake, P0) is None
    # The heartbeat found this member gone: the group assigns afresh, and the
    # wait is over at once.
    await fake.revoke()
    await fake.assign(P0)
    assert P0 not in fake.paused()
    fake.deliver(P0, 0)
    await until(lambda: len(handler.handled) == 1)
    assert handler.handled[0][0] == 2  # under the new claim


async def test_after_a_frozen_loop_with_no_rebalance_the_partitions_are_read_again(
    running: tuple[PartitionedConsumer, FakeGroupConsumer, Recorder],
    now: list[float],
) -> None:
    consumer, fake, handler = running
    await frozen_with_a_batch_in_flight(consumer, fake, handler)
    now[0] += SESSION_S  # a session timeout and no rebalance: still ours
    await until(lambda: P0 in fake.seeks)
    assert P0 not in fake.paused()
    assert handler.handled == []
    assert committed(fake, P0) is None
    fake.deliver(P0, 0)  # read again from the last commit, under a new claim
    await until(lambda: len(handler.handled) == 1)
    assert handler.handled[0][0] == 2


class Members:
    """The saga store's record of member ids, in memory."""

    def __init__(self) -> None:
        self.ids: dict[tuple[str, str], str] = {}

    async def remember_member(self, instance: str, group_id: str, member_id: str) -> None:
        self.ids[instance, group_id] = member_id

    async def previous_member(self, instance: str, group_id: str) -> str | None:
        return self.ids.get((instance, group_id))


async def test_a_restarted_gateway_rejoins_as_its_previous_member() -> None:
    members, fake = Members(), FakeGroupConsumer()
    await members.remember_member("gateway-a", "g-saga", "member-before-the-kill")
    subscribed_as: list[str] = []
    subscribe = fake.subscribe

    def subscribing(topics: list[str], listener: ConsumerRebalanceListener) -> None:
        assert fake.started, "the member id is set between start() and subscribe()"
        subscribed_as.append(fake._coordinator.member_id)
        subscribe(topics, listener)

    fake.subscribe = subscribing  # type: ignore[method-assign]
    consumer = partitioned(
        fake, Recorder(), incarnations=StoredIncarnations(members, "gateway-a", "g-saga")
    )
    await consumer.start()
    assert subscribed_as == ["member-before-the-kill"]
    # The group may answer with another id (the old one had expired): that
    # one is remembered for the next restart.
    fake._coordinator.member_id = "member-now"
    await fake.assign(P0)
    assert await members.previous_member("gateway-a", "g-saga") == "member-now"


class SlowOwners:
    """The saga store's partition claims, answering only when let: a claim
    awaits the store, and aiokafka fetches the new partitions meanwhile."""

    def __init__(self) -> None:
        self.let = asyncio.Event()
        self.epochs: dict[tuple[str, int], int] = {}

    async def claim(self, topic: str, partition: int, owner: str) -> int:
        await self.let.wait()
        self.epochs[topic, partition] = self.epochs.get((topic, partition), 0) + 1
        return self.epochs[topic, partition]


async def test_new_partitions_are_not_fetched_until_claimed() -> None:
    # run() passes over records of a partition with no epoch yet; aiokafka
    # hands out no records of a paused partition (and fetches them again
    # from the same position once it is resumed), so none are passed over.
    fake, owners = FakeGroupConsumer(), SlowOwners()
    consumer = partitioned(fake, Recorder())
    consumer.owners = owners
    await consumer.start()
    claiming = asyncio.create_task(fake.assign(P0, P1))
    await until(lambda: fake.paused() == {P0, P1})
    assert consumer.epochs == {}
    owners.let.set()
    await claiming
    assert fake.paused() == set()
    assert consumer.epochs == {P0: 1, P1: 1}


async def test_a_first_start_joins_with_no_member_id() -> None:
    fake = FakeGroupConsumer()
    consumer = partitioned(
        fake, Recorder(), incarnations=StoredIncarnations(Members(), "gateway-a", "g-saga")
    )
    await consumer.start()
    assert fake._coordinator.member_id == ""


# --- metrics (gateway/metrics.py) -------------------------------------------------------


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


async def test_the_lag_is_the_high_watermark_less_the_first_offset_not_handled() -> None:
    registry = CollectorRegistry()
    fake, handler = FakeGroupConsumer(), Recorder()
    consumer = partitioned(fake, handler, metrics=GatewayMetrics(registry))
    await consumer.start()
    task = asyncio.create_task(consumer.run())
    lag = {"group": "t.steps", "topic": TOPIC, "partition": "0"}
    try:
        await fake.assign(P0)
        # The broker holds offsets 0..4; the first fetch brings 0..2, held in flight.
        fake.highwaters[P0] = 5
        handler.hold = asyncio.Event()
        fake.deliver(P0, 0, 1, 2)
        await handler.started.wait()
        await until(lambda: sample(registry, "lienthong_consumer_lag", **lag) == 5)
        handler.hold.set()
        await until(lambda: sample(registry, "lienthong_consumer_lag", **lag) == 2)
        fake.deliver(P0, 3, 4)
        await until(lambda: sample(registry, "lienthong_consumer_lag", **lag) == 0)
        # Handed over: the next owner reports it.
        await fake.revoke()
        assert sample(registry, "lienthong_consumer_lag", **lag) is None
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


class FlakyProducer:
    """Takes dead letters; refuses the first (the broker away a moment)."""

    def __init__(self) -> None:
        self.refusals = 1
        self.sent: list[tuple[str, bytes | None]] = []

    async def send_and_wait(self, topic: str, *, value: bytes, key: bytes, headers: Any) -> None:
        if self.refusals:
            self.refusals -= 1
            raise ConnectionError("the broker is away")
        self.sent.append((topic, key))


async def test_dead_letters_and_batches_retried_are_counted() -> None:
    registry = CollectorRegistry()
    fake, handler, producer = FakeGroupConsumer(), Recorder(), FlakyProducer()

    def poison_at_offset_one(event: Event) -> None:
        if event.dossier_id == "birth-1":
            raise PoisonEventError("never processable")

    consumer = partitioned(
        fake,
        handler,
        metrics=GatewayMetrics(registry),
        check=poison_at_offset_one,
        producer=producer,
    )
    await consumer.start()
    task = asyncio.create_task(consumer.run())
    try:
        await fake.assign(P0)
        fake.deliver(P0, 0, 1, 2)
        await until(lambda: committed(fake, P0) == 3)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert producer.sent == [("t.deadletter", b"birth-1")]
    labels = {"consumer": "steps", "topic": TOPIC}
    assert sample(registry, "lienthong_dead_letters_total", **labels) == 1
    assert sample(registry, "lienthong_batch_retries_total", **labels) == 1


# --- events handed over in-process (gateway/local_outcomes.py) --------------------------


def outcome(n: int) -> Event:
    message = ev.StepOutcome(dossier_id=f"birth-{n}", step="register_birth")
    return Event(
        f"birth-{n}/register_birth/outcome", f"birth-{n}", message, dt.datetime.now(dt.UTC)
    )


async def test_an_event_handed_over_is_handled_under_the_partitions_lease_in_turn_with_its_records(
    running: tuple[PartitionedConsumer, FakeGroupConsumer, Recorder],
) -> None:
    consumer, fake, handler = running
    hold = await a_batch_in_flight(fake, handler)
    handed = consumer.deliver_locally(P0, outcome(7))
    assert handed is not None
    fake.getmany_calls = 0
    await until(lambda: fake.getmany_calls >= 3)  # the loop went round meanwhile
    assert not handed.done()  # waits for the batch before it: a partition's work is in order
    hold.set()
    await asyncio.wait_for(handed, 5)
    epoch = consumer.epochs[P0]
    assert handler.handled == [
        (epoch, "birth-0/register_birth"),
        (epoch, "birth-7/register_birth/outcome"),
    ]
    await until(lambda: committed(fake, P0) == 1)
    # No offset is the handed-over event's: only the record's is committed.
    assert {c[P0] for c in fake.commits if P0 in c} == {1}


async def test_an_event_for_a_partition_not_held_here_is_left_to_the_broker(
    running: tuple[PartitionedConsumer, FakeGroupConsumer, Recorder],
) -> None:
    consumer, fake, handler = running
    await fake.assign(P0)
    assert consumer.deliver_locally(P1, outcome(1)) is None
    await fake.revoke()
    assert consumer.deliver_locally(P0, outcome(2)) is None
    assert handler.handled == []


async def test_an_event_handed_over_fails_if_its_partition_is_let_go_first(
    running: tuple[PartitionedConsumer, FakeGroupConsumer, Recorder],
) -> None:
    consumer, fake, handler = running
    await a_batch_in_flight(fake, handler)  # never let go: it outlives the grace
    handed = consumer.deliver_locally(P0, outcome(3))
    assert handed is not None
    await fake.revoke()
    with pytest.raises(HandOverLostError):
        await asyncio.wait_for(handed, 5)
    assert handler.handled == []  # its sender sends it again; nothing was done here


async def test_an_event_handed_over_is_not_handled_once_the_lease_lapses(now: list[float]) -> None:
    fake, handler, vouched = FakeGroupConsumer(), Recorder(), [True]
    consumer = partitioned(fake, handler, monotonic=lambda: now[0], trusted=lambda: vouched[0])
    async with consuming(consumer):
        hold = await a_batch_in_flight(fake, handler)
        handed = consumer.deliver_locally(P0, outcome(4))
        assert handed is not None
        vouched[0] = False
        hold.set()
        with pytest.raises(HandOverLostError):
            await asyncio.wait_for(handed, 5)
        assert handler.handled == []
        assert consumer.deliver_locally(P0, outcome(5)) is None


async def test_a_lost_hand_over_retries_the_senders_batch_and_its_partition_works_on() -> None:
    # The executor hands an outcome to the saga's partition, which is let go
    # before handling it: the executor's own partition is still its own, so
    # its batch is run again (the outcome then goes elsewhere) and committed.
    saga_fake, saga_handler = FakeGroupConsumer(), Recorder()
    saga = partitioned(saga_fake, saga_handler)
    saga_tp = TopicPartition(TOPIC, 1)
    tries: list[bool] = []

    async def hand_over(events: list[Event], lease: Lease) -> None:
        handed = saga.deliver_locally(saga_tp, outcome(len(tries)))
        tries.append(handed is not None)
        if handed is not None:
            await handed

    lane_fake = FakeGroupConsumer()
    lane = partitioned(lane_fake, hand_over)  # type: ignore[arg-type]
    async with consuming(saga, lane):
        # Never let go: the saga's batch outlives the grace.
        await a_batch_in_flight(saga_fake, saga_handler, saga_tp)
        await lane_fake.assign(P0)
        lane_fake.deliver(P0, 0)
        await until(lambda: tries == [True])
        await saga_fake.revoke()
        await until(lambda: committed(lane_fake, P0) == 1)
        assert tries[0] and not tries[-1]  # handed over, lost, then sent elsewhere
