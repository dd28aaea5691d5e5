"""send_now lets a unit of work's records go without waiting out the producer's
linger (gateway/kafka.py), on the real embedded broker with the pinned aiokafka:
it reaches into the producer's internals, so a new aiokafka that moved them
fails here rather than silently costing every hop its linger again."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterator

import pytest

from brokers import BrokerKind, RunningBroker, start_broker
from gateway.events import Event
from gateway.kafka import ensure_topics, make_producer, publish, send, send_alone, send_now
from lienthong.events.v1 import events_pb2 as ev

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(60)]

# Long enough that an acknowledgement within a fraction of it can only mean
# the batch did not linger.
LINGER_MS = 2_000
TOPIC = "send-now"


@pytest.fixture(scope="module")
def broker() -> Iterator[RunningBroker]:
    with start_broker(BrokerKind.EMBEDDED) as running:
        yield running


def _event(n: int) -> Event:
    outcome = ev.StepOutcome(dossier_id=f"birth-{n}", step="register_birth")
    return Event(
        f"birth-{n}/register_birth/outcome", f"birth-{n}", outcome, dt.datetime.now(dt.UTC)
    )


async def test_a_sent_record_goes_at_once_when_let_go(broker: RunningBroker) -> None:
    await ensure_topics(broker.bootstrap_servers, [TOPIC], partitions=2)
    producer = make_producer(broker.bootstrap_servers, linger_ms=LINGER_MS)
    await producer.start()
    try:
        began = time.monotonic()
        acknowledged = [await send(producer, TOPIC, _event(n)) for n in range(5)]
        send_now(producer)
        await asyncio.wait_for(asyncio.gather(*acknowledged), LINGER_MS / 2000)
        assert time.monotonic() - began < LINGER_MS / 2000

        # publish() lets its records go too.
        began = time.monotonic()
        await asyncio.wait_for(
            publish(producer, [(TOPIC, _event(n)) for n in range(5, 9)]), LINGER_MS / 2000
        )
        assert time.monotonic() - began < LINGER_MS / 2000

        # And the outbox's send of a lone submission.
        began = time.monotonic()
        await asyncio.wait_for(await send_alone(producer, TOPIC, _event(9)), LINGER_MS / 2000)
        assert time.monotonic() - began < LINGER_MS / 2000
    finally:
        await producer.stop()


async def test_without_it_the_record_lingers(broker: RunningBroker) -> None:
    """The control: the same send, not let go, waits out the linger."""
    await ensure_topics(broker.bootstrap_servers, [TOPIC], partitions=2)
    producer = make_producer(broker.bootstrap_servers, linger_ms=LINGER_MS)
    await producer.start()
    try:
        began = time.monotonic()
        await (await send(producer, TOPIC, _event(100)))
        assert time.monotonic() - began >= LINGER_MS / 1000 * 0.9
    finally:
        await producer.stop()
