"""Partitions shared out by leases in the saga store, instead of by the
broker's consumer group: a GroupConsumer for brokers whose groups are slow to
hand partitions back.

Why: on the embedded broker (Tansu) a consumer group keeps no static
member's place and every join takes about 3 s, so each gateway kill stalled
its five groups for ~5 s and a group that lost a member rebalanced everyone
(issue 10's chaos preset missed its targets there on that alone). The
gateways already share one store (a SQLite file on one host, PostgreSQL on
many), and it already fences stale owners by epoch; the leases live there
too, so a gateway killed and restarted under the same instance id takes its
partitions back as soon as it runs, on any broker.

How:
- Each gateway process beats (Roster) every `beat_seconds`; members seen
  within the session timeout are alive.
- Each consumer deals the partitions of its topics round-robin over the
  sorted live members. It takes the lease of a partition in its share if the
  lease is free, already its own (a previous incarnation of this instance,
  which was killed), or held by a member not seen within the session.
- It gives up a partition no longer in its share after its batch in flight
  (within the handover grace), committing first.
- It stops working everything when its own beats have failed for half the
  session, before any other member may take its leases.
- Offsets are kept beside the lease; a commit by an instance that no longer
  holds the lease is refused (CommitFailedError), as a group's would be.
Kafka is then read without a group: every partition is assigned to the
underlying consumer, and the ones not held are paused, so a held partition's
fetch position is never disturbed by another's handover.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol

import structlog
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, KafkaError

log = structlog.get_logger("leases")

Partition = tuple[str, int]


class ReplacedError(Exception):
    """Another process took over this instance id (it joined after this one):
    this process must not work any of the instance's partitions."""


class LeaseStore(Protocol):
    """Members and partition leases, kept in the saga store (both
    implementations; tests/gateway/test_saga_store_contract.py)."""

    async def beat(
        self, instance: str, within: float, *, incarnation: str = "", joining: bool = True
    ) -> list[str]:
        """Record `instance` as alive now, as this `incarnation` (one process's
        life); the instances seen within `within` seconds (this one
        included), sorted. Joining (a process's first beat) takes the
        instance over from any earlier incarnation, killed or not; a later
        beat of an incarnation that was taken over raises ReplacedError, as
        Kafka fences the older of two static members with one instance id."""

    async def take(self, topic: str, partition: int, instance: str, within: float) -> bool:
        """Hold the partition's lease if it is free, already this instance's,
        or held by an instance not seen within `within` seconds."""

    async def held(self, instance: str) -> set[Partition]:
        """The partitions whose lease this instance holds."""

    async def give_up(self, partitions: Iterable[Partition], instance: str) -> None:
        """Free these leases, where this instance holds them."""

    async def leave(self, instance: str) -> None:
        """Forget the instance and free its leases (a clean stop)."""

    async def save_offsets(self, instance: str, offsets: Mapping[Partition, int]) -> bool:
        """Record the next offset to read for each partition this instance
        holds; False if it holds any of them no longer (those are not saved)."""

    async def offsets(self, partitions: Iterable[Partition]) -> dict[Partition, int]:
        """The saved next offsets of those partitions that have one."""


class Roster:
    """This process's beat, shared by its consumers: who is alive, and
    whether this process may still trust its own leases."""

    def __init__(
        self,
        store: LeaseStore,
        instance: str,
        *,
        session_seconds: float,
        beat_seconds: float = 0.5,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.instance = instance
        self.session_seconds = session_seconds
        self.beat_seconds = beat_seconds
        self._monotonic = monotonic
        self.members: list[str] = []
        # When the last beat the store took was sent (monotonic): the store
        # recorded it at or after that moment.
        self.last_beat: float | None = None
        self._failing = False
        # This process's life under the instance id: a second process started
        # under the same id (a misconfiguration) takes it over, and this one
        # then stops (ReplacedError).
        self.incarnation = uuid.uuid4().hex
        self._joined = False
        self.replaced = False

    def trusted(self) -> bool:
        """Whether this process's leases are still its own to work: its last
        beat is recent enough that no other member may take them yet (half
        the session, leaving the other half for a batch to stop)."""
        return (
            not self.replaced
            and self.last_beat is not None
            and self._monotonic() - self.last_beat < self.session_seconds / 2
        )

    async def beat_once(self) -> bool:
        if self.replaced:
            return False
        sent = self._monotonic()
        try:
            members = await self.store.beat(
                self.instance,
                self.session_seconds,
                incarnation=self.incarnation,
                joining=not self._joined,
            )
        except ReplacedError:
            self.replaced = True
            log.error(
                "another gateway process took over this instance id; this one stops working",
                instance=self.instance,
            )
            return False
        except Exception as error:  # the store away: said once per outage
            if not self._failing:
                log.warning("beat failed", instance=self.instance, error=repr(error))
            self._failing = True
            return False
        if self._failing:
            log.info("beat recorded again", instance=self.instance)
        self._failing = False
        self._joined = True
        self.members = members
        self.last_beat = sent
        return True

    async def run(self) -> None:
        """Beat until stopped; raises ReplacedError once another process took
        the instance over (the gateway then fails, loudly)."""
        while True:
            await self.beat_once()
            if self.replaced:
                raise ReplacedError(f"another gateway process runs as {self.instance}")
            await asyncio.sleep(self.beat_seconds)

    async def leave(self) -> None:
        if self.replaced:
            return  # the instance's row and leases are the other process's now
        with contextlib.suppress(Exception):
            await self.store.leave(self.instance)


def share_of(
    instance: str, members: Sequence[str], partitions: Iterable[TopicPartition]
) -> set[TopicPartition]:
    """The partitions dealt to `instance`: round-robin over the sorted live
    members, in (topic, partition) order, so every member computes the same
    deal from the same roster."""
    if instance not in members:
        return set()
    ordered = sorted(members)
    return {tp for i, tp in enumerate(sorted(partitions)) if ordered[i % len(ordered)] == instance}


class PlainConsumer(Protocol):
    """What LeasedConsumer uses of an AIOKafkaConsumer without a group."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def assign(self, partitions: list[TopicPartition]) -> None: ...

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Mapping[TopicPartition, list[ConsumerRecord[bytes, bytes]]]: ...

    def pause(self, *partitions: TopicPartition) -> None: ...

    def resume(self, *partitions: TopicPartition) -> None: ...

    def paused(self) -> set[TopicPartition]: ...

    def seek(self, partition: TopicPartition, offset: int) -> None: ...

    def highwater(self, partition: TopicPartition) -> int | None: ...


class LeasedConsumer:
    """gateway.kafka.GroupConsumer over leases (see the module's docstring)."""

    def __init__(
        self,
        consumer: PlainConsumer,
        roster: Roster,
        *,
        name: str,
        partitions: Mapping[str, int],
    ) -> None:
        self.consumer = consumer
        self.roster = roster
        self.store = roster.store
        self.name = name
        # The topics read, with their partition counts (gateway.kafka.ensure_topics).
        self.topics = list(partitions)
        self._all = {TopicPartition(t, p) for t, count in partitions.items() for p in range(count)}
        self.listener: ConsumerRebalanceListener | None = None
        self.held: set[TopicPartition] = set()
        self._task: asyncio.Task[None] | None = None
        self._dealt_once = False

    # --- GroupConsumer -----------------------------------------------------------

    async def start(self) -> None:
        await self.consumer.start()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        if self.held and not self.roster.replaced:
            # PartitionedConsumer.stop() has released the workers and
            # committed: the next member may take these at once.
            with contextlib.suppress(Exception):
                await self.store.give_up(
                    [(tp.topic, tp.partition) for tp in self.held], self.roster.instance
                )
            self.held = set()
        await self.consumer.stop()

    def subscribe(self, topics: list[str], listener: ConsumerRebalanceListener) -> None:
        if set(topics) != set(self.topics):
            raise ValueError(f"{self.name} leases {self.topics}, not {topics}")
        self.listener = listener
        # Every partition assigned, the ones not held paused: see the module.
        self.consumer.assign(sorted(self._all))
        self.consumer.pause(*self._all)
        self._task = asyncio.create_task(self._keep_share(), name=f"{self.name} leases")

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Mapping[TopicPartition, list[ConsumerRecord[bytes, bytes]]]:
        batches = await self.consumer.getmany(
            *partitions, timeout_ms=timeout_ms, max_records=max_records
        )
        return {tp: records for tp, records in batches.items() if tp in self.held}

    def assignment(self) -> set[TopicPartition]:
        return set(self.held)

    def pause(self, *partitions: TopicPartition) -> None:
        self.consumer.pause(*partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        # Only a held partition is read: the others stay paused.
        self.consumer.resume(*(tp for tp in partitions if tp in self.held))

    def paused(self) -> set[TopicPartition]:
        return self.consumer.paused() & self.held

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        try:
            saved = await self.store.save_offsets(
                self.roster.instance, {(tp.topic, tp.partition): o for tp, o in offsets.items()}
            )
        except Exception as error:
            # The store away: pending, tried again (PartitionedConsumer).
            raise KafkaError(f"offsets not saved: {error!r}") from error
        if not saved:
            raise CommitFailedError("a lease was taken by another member")

    async def seek_to_committed(self, *partitions: TopicPartition) -> Any:
        saved = await self.store.offsets([(tp.topic, tp.partition) for tp in partitions])
        for tp in partitions:
            # Never committed: from the start (an offset the broker no longer
            # has resets to the earliest, auto_offset_reset).
            self.consumer.seek(tp, saved.get((tp.topic, tp.partition), 0))

    def highwater(self, partition: TopicPartition) -> int | None:
        return self.consumer.highwater(partition)

    # --- the share ---------------------------------------------------------------

    async def _keep_share(self) -> None:
        while True:
            try:
                await self.deal()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                # The store away: this consumer keeps what it holds while its
                # beats are trusted (deal() lets go of it after that).
                log.warning("leases not dealt", consumer=self.name, error=repr(error))
            await asyncio.sleep(self.roster.beat_seconds)

    async def deal(self) -> None:
        """One round: let go of what is no longer this member's, take what is."""
        assert self.listener is not None
        instance = self.roster.instance
        if not self.roster.trusted():
            if self.held:
                log.warning(
                    "leases no longer trusted: own beats failing; stopping work",
                    consumer=self.name,
                    partitions=len(self.held),
                )
                await self._let_go(set(self.held))
            return
        share = share_of(instance, self.roster.members, self._all)
        held = {TopicPartition(t, p) for t, p in await self.store.held(instance)} & self._all
        # Taken by another member (this one was thought gone): stop at once.
        lost = self.held - held
        # No longer this member's share: finish the batch, commit, free it.
        surplus = held - share
        if lost or surplus & self.held:
            await self._let_go(lost | (surplus & self.held))
        if surplus:
            await self.store.give_up([(tp.topic, tp.partition) for tp in surplus], instance)
        wanted = sorted(share - self.held)
        taken = [
            tp
            for tp in wanted
            if await self.store.take(tp.topic, tp.partition, instance, self.roster.session_seconds)
        ]
        if taken:
            await self._take(taken)
        elif not self._dealt_once:
            # Tell the listener once even when nothing was dealt (joined).
            await self.listener.on_partitions_assigned(set())
        self._dealt_once = True
        if lost or surplus or taken:
            log.info(
                "leases dealt",
                consumer=self.name,
                members=len(self.roster.members),
                held=len(self.held),
                taken=len(taken),
                given_up=len(surplus),
                lost=len(lost),
            )

    async def _let_go(self, partitions: set[TopicPartition]) -> None:
        assert self.listener is not None
        await self.listener.on_partitions_revoked(partitions)
        self.consumer.pause(*partitions)
        self.held -= partitions

    async def _take(self, partitions: list[TopicPartition]) -> None:
        assert self.listener is not None
        # Still paused: nothing is fetched for them before the listener's
        # claim has their epochs (it resumes them).
        await self.seek_to_committed(*partitions)
        self.held |= set(partitions)
        await self.listener.on_partitions_assigned(set(partitions))
