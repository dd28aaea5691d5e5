"""Step outcomes handed to the saga worker in the same process, when that
process holds the outcome's partition, instead of through the broker.

A step's outcome used to make two more hops through Kafka: the executor
published it to `step-outcomes`, and the saga consumer read it back. Four of
a dossier's ten records were outcomes, and on the embedded broker every
fetch costs more as a partition grows (brokers/fetch_cost.py), so that topic
was what slowed a long run down first. The executor and the saga worker
share a process, and the gateways deal every topic's partitions alike, so
the process that runs a dossier's step usually holds the partition its
outcome would be read from as well.

Then the outcome goes straight to that partition's worker
(PartitionedConsumer.deliver_locally). It is handled as a record of that
partition would be: in turn with the partition's records, under its lease
and epoch (the saga store fences a stale owner's write the same way), in
one store transaction with whatever else was handed over meanwhile. The
executor's batch completes, and its command's offset may be committed, only
once that transaction and the commands it caused are durable: as before,
when the broker's acknowledgement of the outcome was the condition. If the
partition is let go first, the future fails and the executor's batch is run
again (the agencies' request ids make that harmless); the next try may go
through the broker. When this process does not hold the partition, the
outcome goes through the broker, as before.

What is no longer there: an outcome handled in-process is not in the
`step-outcomes` topic. The console and `events tail` learn a step's end from
the dossier's timeline in its next command or in its settled announcement.
`LIENTHONG_LOCAL_OUTCOMES=0` sends every outcome through the broker.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from gateway.events import Event, event_key
from gateway.kafka import PartitionedConsumer, send


def partition_for(key: bytes, partitions: int) -> int:
    """The partition the producer picks for a key: its default partitioner
    (murmur2, as Kafka's Java client), which gateway.kafka.make_producer keeps."""
    every = list(range(partitions))
    chosen: int = DefaultPartitioner()(key, every, every)
    return chosen


class LocalOutcomes:
    def __init__(
        self, saga: PartitionedConsumer, producer: AIOKafkaProducer, partitions: dict[str, int]
    ) -> None:
        self.saga = saga
        self.producer = producer
        self.partitions = partitions  # per topic, from the broker (ensure_topics)
        self.local = 0
        self.through_broker = 0

    async def deliver(self, topic: str, event: Event) -> asyncio.Future[Any]:
        """gateway.executor.Deliver: the future of the outcome's durability."""
        tp = TopicPartition(topic, partition_for(event_key(event), self.partitions[topic]))
        handled = self.saga.deliver_locally(tp, event)
        if handled is not None:
            self.local += 1
            return handled
        self.through_broker += 1
        return await send(self.producer, topic, event)
