"""Two members of one consumer group split the partitions and rebalance when one leaves.

The gateway scales out by running several members of one group, so this is
checked on both brokers (Tansu takes seconds per rebalance, Kafka well under one).
"""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer

from brokers import RunningBroker
from tests.brokers._broker_kit import GROUP_TIMING, assigned, create_topic, fresh, poll_until

pytestmark = pytest.mark.kafka

PARTITIONS = 4


async def test_two_members_split_then_one_takes_over(broker: RunningBroker) -> None:
    topic, group = fresh("split"), fresh("group")
    await create_topic(broker.bootstrap_servers, topic, partitions=PARTITIONS)
    everything = set(range(PARTITIONS))

    def member() -> AIOKafkaConsumer:
        return AIOKafkaConsumer(
            topic,
            bootstrap_servers=broker.bootstrap_servers,
            group_id=group,
            enable_auto_commit=False,
            **GROUP_TIMING,
        )

    first, second = member(), member()
    await first.start()
    try:
        await poll_until([first], lambda: assigned(first) == everything, seconds=30)
        await second.start()
        try:
            await poll_until(
                [first, second],
                lambda: (
                    bool(assigned(first))
                    and bool(assigned(second))
                    and assigned(first) | assigned(second) == everything
                    and not assigned(first) & assigned(second)
                ),
                seconds=30,
            )
        finally:
            await second.stop()  # A clean LeaveGroup.
        await poll_until([first], lambda: assigned(first) == everything, seconds=30)
    finally:
        await first.stop()
