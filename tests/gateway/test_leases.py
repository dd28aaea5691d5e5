"""Store-coordinated partitions (gateway/leases.py), unit by unit: the Kafka
side is a fake consumer, the store a real SQLite saga store in tmp_path
(its lease methods are in the store contract, for PostgreSQL too), and
the clock of each roster is moved by hand where trust is the point. The
end-to-end tests on the embedded broker run the gateway this way."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from gateway.leases import LeasedConsumer, ReplacedError, Roster, share_of
from gateway.store import SagaStore, open_saga_store

TOPIC = "lienthong.step-commands.health"
PARTITIONS = 6
SESSION = 30.0


class FakeKafka:
    """The Kafka consumer without a group: what was assigned, sought, paused."""

    def __init__(self) -> None:
        self.assigned: list[TopicPartition] = []
        self.positions: dict[TopicPartition, int] = {}
        self._paused: set[TopicPartition] = set()

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def assign(self, partitions: list[TopicPartition]) -> None:
        self.assigned = list(partitions)

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Mapping[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        return {}

    def pause(self, *partitions: TopicPartition) -> None:
        self._paused |= set(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        self._paused -= set(partitions)

    def paused(self) -> set[TopicPartition]:
        return set(self._paused)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        self.positions[partition] = offset

    def highwater(self, partition: TopicPartition) -> int | None:
        return None


class Listener:
    """What PartitionedConsumer does on a handover, recorded: on revocation
    it commits what it finished, as the holder (see `commit_on_revoke`)."""

    def __init__(self, consumer: LeasedConsumer) -> None:
        self.consumer = consumer
        self.assigned: list[set[TopicPartition]] = []
        self.revoked: list[set[TopicPartition]] = []
        self.commit_on_revoke: dict[TopicPartition, int] = {}
        self.commit_errors: list[Exception] = []
        self.paused_when_assigned: set[TopicPartition] = set()

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        # Nothing of a new partition may be fetched before its epoch is claimed.
        self.paused_when_assigned |= assigned & self.consumer.consumer.paused()
        self.assigned.append(set(assigned))
        self.consumer.resume(*assigned)

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.revoked.append(set(revoked))
        offsets = {tp: o for tp, o in self.commit_on_revoke.items() if tp in revoked}
        if offsets:
            try:
                await self.consumer.commit(offsets)
            except KafkaError as error:
                self.commit_errors.append(error)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Member:
    def __init__(self, store: SagaStore, instance: str, session: float = SESSION) -> None:
        self.clock = Clock()
        self.roster = Roster(store, instance, session_seconds=session, monotonic=self.clock)
        self.kafka = FakeKafka()
        self.consumer = LeasedConsumer(
            self.kafka, self.roster, name="steps", partitions={TOPIC: PARTITIONS}
        )
        self.listener = Listener(self.consumer)

    async def start(self) -> None:
        await self.consumer.start()
        self.consumer.subscribe([TOPIC], self.listener)
        # The test deals by hand: no background rounds.
        assert self.consumer._task is not None
        self.consumer._task.cancel()

    async def round(self) -> None:
        await self.roster.beat_once()
        await self.consumer.deal()


def tps(*partitions: int) -> set[TopicPartition]:
    return {TopicPartition(TOPIC, p) for p in partitions}


@pytest.fixture
async def store(tmp_path: Path) -> Any:
    opened = await open_saga_store(tmp_path / "gateway.sqlite3")
    yield opened
    await opened.close()


def test_the_deal_is_round_robin_over_the_sorted_members() -> None:
    everything = tps(*range(6))
    # Worked by hand: partitions 0..5 dealt to a, b, c, a, b, c.
    assert share_of("b", ["c", "a", "b"], everything) == tps(1, 4)
    assert share_of("a", ["a"], everything) == everything
    assert share_of("z", ["a", "b"], everything) == set()


async def test_a_lone_member_takes_every_partition_paused_until_claimed(store: SagaStore) -> None:
    a = Member(store, "gateway-a")
    await a.start()
    assert set(a.kafka.assigned) == tps(*range(6))
    assert a.kafka.paused() == tps(*range(6))  # nothing held yet: nothing read
    await a.round()
    assert a.consumer.assignment() == tps(*range(6))
    assert a.listener.paused_when_assigned == tps(*range(6))
    assert a.kafka.paused() == set()
    assert a.kafka.positions == {tp: 0 for tp in tps(*range(6))}  # never committed


async def test_a_member_that_joins_gets_its_share_after_the_holder_commits_and_frees_it(
    store: SagaStore,
) -> None:
    a, b = Member(store, "gateway-a"), Member(store, "gateway-b")
    await a.start()
    await b.start()
    await a.round()
    a.listener.commit_on_revoke = {TopicPartition(TOPIC, 1): 17}
    await b.round()  # b is seen, but a holds everything
    assert b.consumer.assignment() == set()
    assert b.listener.assigned == [set()]  # told once, so the gateway can serve
    await a.round()  # a gives up b's share, committing first
    assert a.listener.revoked == [tps(1, 3, 5)]
    assert a.listener.commit_errors == []
    assert a.consumer.assignment() == tps(0, 2, 4)
    assert tps(1, 3, 5) <= a.kafka.paused()
    await b.round()
    assert b.consumer.assignment() == tps(1, 3, 5)
    assert b.kafka.positions[TopicPartition(TOPIC, 1)] == 17  # where a left it


async def test_a_killed_member_restarted_takes_its_partitions_back_at_once(
    store: SagaStore,
) -> None:
    a, b = Member(store, "gateway-a"), Member(store, "gateway-b")
    for member in (a, b):
        await member.start()
    for _ in range(2):
        for member in (a, b):
            await member.round()
    assert a.consumer.assignment() == tps(0, 2, 4)
    # SIGKILL: a's process is gone, its leases still in the store.
    again = Member(store, "gateway-a")
    await again.start()
    await again.round()
    assert again.consumer.assignment() == tps(0, 2, 4)
    await b.round()
    assert b.listener.revoked == []  # b never noticed
    assert b.consumer.assignment() == tps(1, 3, 5)


async def test_a_member_gone_for_good_has_its_partitions_taken_after_the_session(
    store: SagaStore,
) -> None:
    session = 0.2
    a, b = Member(store, "gateway-a", session), Member(store, "gateway-b", session)
    for member in (a, b):
        await member.start()
        await member.round()
    await a.round()
    await b.round()
    assert b.consumer.assignment() == tps(1, 3, 5)
    # a stops beating; b's rounds go on (its own clock keeps it trusted).
    deadline = time.monotonic() + 10
    while b.consumer.assignment() != tps(*range(6)):
        assert time.monotonic() < deadline, "a's partitions never moved"
        await asyncio.sleep(0.05)
        await b.round()
    # a comes back to life: it finds its leases gone and stops at once.
    a.clock.now += 0.01
    await a.round()
    assert a.listener.revoked[-1] == tps(0, 2, 4)
    assert a.consumer.assignment() == set()


async def test_a_member_whose_beats_fail_stops_working_before_others_may_take_over(
    store: SagaStore,
) -> None:
    a = Member(store, "gateway-a")
    await a.start()
    await a.round()
    assert a.consumer.assignment() == tps(*range(6))
    a.clock.now += SESSION / 2  # no beat recorded for half the session
    await a.consumer.deal()
    assert a.listener.revoked == [tps(*range(6))]
    assert a.consumer.assignment() == set()
    assert a.kafka.paused() == tps(*range(6))
    await a.round()  # beats again: still its own leases, taken back
    assert a.consumer.assignment() == tps(*range(6))


async def test_a_commit_for_a_lease_taken_meanwhile_is_refused(store: SagaStore) -> None:
    a = Member(store, "gateway-a")
    await a.start()
    await a.round()
    await a.consumer.commit({TopicPartition(TOPIC, 0): 5})
    await store.leave("gateway-a")
    with pytest.raises(CommitFailedError):
        await a.consumer.commit({TopicPartition(TOPIC, 0): 6})
    await store.close()
    with pytest.raises(KafkaError):  # the store away: pending, tried again
        await a.consumer.commit({TopicPartition(TOPIC, 0): 6})


async def test_a_member_taken_over_by_a_twin_stops_working_and_fails(store: SagaStore) -> None:
    a = Member(store, "gateway-a")
    await a.start()
    await a.round()
    assert a.consumer.assignment() == tps(*range(6))
    twin = Member(store, "gateway-a")  # a second process under the same id
    await twin.start()
    await twin.round()
    await a.round()
    assert a.roster.replaced
    assert a.listener.revoked == [tps(*range(6))]
    assert a.consumer.assignment() == set()
    with pytest.raises(ReplacedError):
        await a.roster.run()
    await a.roster.leave()  # leaves the twin's row and leases alone
    assert await store.held("gateway-a") == {(TOPIC, p) for p in range(6)}
