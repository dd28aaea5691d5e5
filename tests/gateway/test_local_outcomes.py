"""gateway/local_outcomes.py: a step's outcome goes to the saga worker of this
process when it holds the outcome's partition, else through the broker; the
partition is the one the producer itself would write the outcome to."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from brokers import BrokerKind, start_broker
from gateway.config import GatewayConfig
from gateway.events import Event
from gateway.kafka import make_producer, send
from gateway.local_outcomes import LocalOutcomes, partition_for
from lienthong.events.v1 import events_pb2 as ev

TOPIC = "t.step-outcomes"
PARTITIONS = 6


def outcome(dossier_id: str) -> Event:
    message = ev.StepOutcome(dossier_id=dossier_id, step="register_birth")
    return Event(
        f"{dossier_id}/register_birth/outcome", dossier_id, message, dt.datetime.now(dt.UTC)
    )


@pytest.mark.kafka
async def test_the_partition_is_the_one_the_producer_writes_the_outcome_to() -> None:
    # The oracle is the broker's answer: where the record landed.
    with start_broker(BrokerKind.EMBEDDED) as broker:
        admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])
        finally:
            await admin.close()
        producer = make_producer(broker.bootstrap_servers)
        await producer.start()
        try:
            for n in range(40):
                dossier_id = f"birth-{n:04d}-{n * 7919:x}"
                landed = await (await send(producer, TOPIC, outcome(dossier_id)))
                assert landed.partition == partition_for(dossier_id.encode(), PARTITIONS)
        finally:
            await producer.stop()


class Saga:
    """Stands in for the saga's consumer: holds the partitions it is given."""

    def __init__(self, held: set[TopicPartition]) -> None:
        self.held = held
        self.handed: list[tuple[TopicPartition, str]] = []

    def deliver_locally(self, tp: TopicPartition, event: Event) -> asyncio.Future[None] | None:
        if tp not in self.held:
            return None
        self.handed.append((tp, event.event_id))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


class Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    async def send(self, topic: str, *, value: bytes, key: bytes, headers: Any) -> Any:
        self.sent.append((topic, key))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def routed(held: set[TopicPartition]) -> tuple[LocalOutcomes, Saga, Producer]:
    saga, producer = Saga(held), Producer()
    local = LocalOutcomes(saga, producer, {TOPIC: PARTITIONS})  # type: ignore[arg-type]
    return local, saga, producer


async def test_an_outcome_whose_partition_is_held_here_goes_to_the_saga_not_the_broker() -> None:
    every = {TopicPartition(TOPIC, p) for p in range(PARTITIONS)}
    local, saga, producer = routed(every)
    await (await local.deliver(TOPIC, outcome("birth-1")))
    assert [event_id for _, event_id in saga.handed] == ["birth-1/register_birth/outcome"]
    assert producer.sent == []
    assert (local.local, local.through_broker) == (1, 0)


async def test_an_outcome_whose_partition_is_held_elsewhere_goes_through_the_broker() -> None:
    local, saga, producer = routed(set())
    await (await local.deliver(TOPIC, outcome("birth-2")))
    assert saga.handed == []
    assert producer.sent == [(TOPIC, b"birth-2")]
    assert (local.local, local.through_broker) == (0, 1)


def test_in_process_outcomes_are_on_unless_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIENTHONG_LOCAL_OUTCOMES", raising=False)
    assert GatewayConfig.from_env().local_outcomes is True
    monkeypatch.setenv("LIENTHONG_LOCAL_OUTCOMES", "0")
    assert GatewayConfig.from_env().local_outcomes is False
