"""The outbox on a real saga store file, with the broker stood in for by a
fake `send` whose acknowledgements the test holds, gives or fails (the
end-to-end outage tests in test_broker_outage.py do the same with a real
broker stopped and started again)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, cast

import pytest
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError

from gateway.backoff import Backoff, until_done
from gateway.events import Event
from gateway.outbox import Outbox
from gateway.store import Announcement, SagaStore, open_saga_store, store_unavailable
from lienthong.events.v1 import events_pb2 as ev
from lienthong.gateway.v1 import gateway_pb2 as pb
from tests.gateway.test_saga import MONDAY, birth_dossier

TOPIC = "test.dossiers"


class FakeBroker:
    """Stands in for the producer's send: records each hand-over; acknowledges
    at once while up, holds the acknowledgement while down, or fails it."""

    def __init__(self) -> None:
        self.up = True
        self.fail_next = 0
        self.sent: list[tuple[str, Event]] = []
        self.held: list[asyncio.Future[Any]] = []

    async def send(self, topic: str, event: Event) -> asyncio.Future[Any]:
        self.sent.append((topic, event))
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.fail_next:
            self.fail_next -= 1
            future.set_exception(KafkaTimeoutError())
        elif self.up:
            future.set_result(None)
        else:
            self.held.append(future)
        return future

    def come_back(self) -> None:
        """What aiokafka does when the broker returns: the records it kept are taken."""
        self.up = True
        for future in self.held:
            future.set_result(None)
        self.held.clear()

    def event_ids(self) -> list[str]:
        return [event.event_id for _, event in self.sent]


def submitted(dossier: pb.Dossier) -> Announcement:
    event = Event(
        f"{dossier.dossier_id}/submitted",
        dossier.dossier_id,
        ev.DossierSubmitted(dossier=dossier),
        MONDAY,
    )
    return TOPIC, event


async def store_submission(store: SagaStore, key: str = "k1") -> str:
    dossier = birth_dossier()
    dossier.dossier_id = f"birth-{key}"
    stored = await store.submit(key, key.encode(), dossier, submitted)
    return f"{stored.dossier_id}/submitted"


async def eventually(condition: Callable[[], bool | Awaitable[bool]], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while True:
        held = condition()
        if not isinstance(held, bool):
            held = await held
        if held:
            return
        assert time.monotonic() < deadline, "the condition never held"
        await asyncio.sleep(0.01)


async def unpublished_ids(store: SagaStore) -> list[str]:
    return [r.event.event_id for r in await store.unpublished()]


async def nothing_unpublished(store: SagaStore) -> bool:
    return await unpublished_ids(store) == []


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SagaStore]:
    opened = await open_saga_store(tmp_path / "gateway.sqlite3")
    yield opened
    await opened.close()


@pytest.fixture
async def relay_of(store: SagaStore) -> AsyncIterator[Callable[[Outbox], None]]:
    tasks: list[asyncio.Task[None]] = []

    def start(outbox: Outbox) -> None:
        tasks.append(asyncio.create_task(outbox.run()))

    yield start
    for task in tasks:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def quick_outbox(store: SagaStore, **settings: Any) -> Outbox:
    defaults: dict[str, Any] = {
        "timeout": 0.1,
        "relay_after": 0.0,
        "poll_seconds": 0.02,
        "backoff": Backoff(0.02, 0.1),
    }
    return Outbox(store, **(defaults | settings))


async def test_a_submission_and_its_event_are_stored_in_one_transaction(store: SagaStore) -> None:
    def broken(dossier: pb.Dossier) -> Announcement:
        raise RuntimeError("the event could not be made")

    with pytest.raises(RuntimeError):
        await store.submit("k1", b"k1", birth_dossier(), broken)
    assert await store.load(birth_dossier().dossier_id) is None
    event_id = await store_submission(store)
    assert await unpublished_ids(store) == [event_id]
    stored = (await store.unpublished())[0]
    assert stored.topic == TOPIC
    assert stored.event.message == ev.DossierSubmitted(dossier=await store.load("birth-k1"))
    # A repeat stores nothing new: the same dossier, the same single event.
    assert await store_submission(store) == event_id
    assert await unpublished_ids(store) == [event_id]


async def test_a_supplement_and_its_event_are_stored_in_one_transaction(store: SagaStore) -> None:
    event = Event(
        "birth-1/supplement/s1", "birth-1", ev.DossierSupplemented(dossier_id="birth-1"), MONDAY
    )
    await store.accept_supplement("birth-1", "s1", b"print", (TOPIC, event))
    await store.accept_supplement("birth-1", "s1", b"print", (TOPIC, event))
    assert await store.supplement_accepted("birth-1", "s1", b"print")
    assert await unpublished_ids(store) == ["birth-1/supplement/s1"]


async def test_delivered_at_once_when_the_broker_acknowledges(store: SagaStore) -> None:
    broker = FakeBroker()
    outbox = quick_outbox(store)
    outbox.connect(broker.send)
    event_id = await store_submission(store)
    assert await outbox.deliver([event_id])
    assert broker.event_ids() == [event_id]
    assert await unpublished_ids(store) == []
    # Delivered already: a repeat publishes nothing.
    assert await outbox.deliver([event_id])
    assert broker.event_ids() == [event_id]


async def test_marked_published_only_once_the_broker_acknowledged(store: SagaStore) -> None:
    broker = FakeBroker()
    broker.up = False
    outbox = quick_outbox(store)
    outbox.connect(broker.send)
    event_id = await store_submission(store)
    assert not await outbox.deliver([event_id])
    assert await unpublished_ids(store) == [event_id]
    # Asked again while the first hand-over is still in the producer: it is
    # waited for again, not handed over a second time.
    assert not await outbox.deliver([event_id])
    assert broker.event_ids() == [event_id]
    broker.come_back()
    await eventually(lambda: nothing_unpublished(store))
    assert broker.event_ids() == [event_id]


async def test_not_connected_yet_answers_at_once_and_keeps_the_event(
    store: SagaStore, relay_of: Callable[[Outbox], None]
) -> None:
    # A gateway whose producer has not reached the broker yet (start-up).
    outbox = quick_outbox(store, timeout=30.0, relay_after=0.0)
    event_id = await store_submission(store)
    started = time.monotonic()
    assert not await outbox.deliver([event_id])
    assert time.monotonic() - started < 1.0
    relay_of(outbox)
    broker = FakeBroker()
    outbox.connect(broker.send)
    await eventually(lambda: nothing_unpublished(store))
    assert broker.event_ids() == [event_id]


async def test_the_relay_publishes_what_was_stored_and_not_published_as_the_same_event(
    store: SagaStore, relay_of: Callable[[Outbox], None]
) -> None:
    broker = FakeBroker()
    broker.fail_next = 2  # two attempts fail outright (e.g. a request timeout)
    outbox = quick_outbox(store)
    outbox.connect(broker.send)
    event_ids = [await store_submission(store, f"k{n}") for n in range(3)]
    stored = {r.event.event_id: r.event for r in await store.unpublished()}
    relay_of(outbox)
    await eventually(lambda: nothing_unpublished(store))
    assert set(broker.event_ids()) == set(event_ids)
    assert len(broker.sent) == 3 + 2
    # Every publication of an event is the same event: id, time, body.
    for _, event in broker.sent:
        assert event == stored[event.event_id]


async def test_the_relay_leaves_young_events_to_the_fast_path(store: SagaStore) -> None:
    # Another gateway process sharing the store may be publishing it now.
    broker = FakeBroker()
    outbox = quick_outbox(store, relay_after=60.0)
    outbox.connect(broker.send)
    await store_submission(store)
    assert (await outbox.relay_once()).due == 0
    assert broker.sent == []
    assert len(await unpublished_ids(store)) == 1


async def test_the_relay_waits_out_an_outage_and_publishes_when_the_broker_is_back(
    store: SagaStore, relay_of: Callable[[Outbox], None]
) -> None:
    broker = FakeBroker()
    broker.up = False
    outbox = quick_outbox(store)
    outbox.connect(broker.send)
    event_ids = [await store_submission(store, f"k{n}") for n in range(3)]
    relay_of(outbox)
    await eventually(lambda: len(broker.held) == 3)
    assert sorted(await unpublished_ids(store)) == sorted(event_ids)
    broker.come_back()
    await eventually(lambda: nothing_unpublished(store))
    # Handed over once each, however many relay passes the outage lasted.
    assert sorted(broker.event_ids()) == sorted(event_ids)


async def test_published_events_are_pruned_after_a_while(store: SagaStore) -> None:
    await store_submission(store)
    await store.mark_published([r.seq for r in await store.unpublished()])
    assert await store.prune_published(time.time() - 60) == 0
    assert await store.prune_published(time.time() + 1) == 1


def test_backoff_doubles_up_to_its_cap_and_starts_over() -> None:
    backoff = Backoff(0.5, 10.0)
    assert [backoff.next() for _ in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    backoff.reset()
    assert backoff.next() == 0.5


async def test_until_done_waits_with_backoff_while_the_broker_is_down() -> None:
    failures = [KafkaConnectionError("Unable to bootstrap from 127.0.0.1:9"), OSError("refused")]
    waited: list[float] = []

    async def attempt() -> str:
        if failures:
            raise failures.pop(0)
        return "connected"

    async def sleep(seconds: float) -> None:
        waited.append(seconds)

    assert await until_done("kafka", attempt, Backoff(0.5, 10.0), sleep=sleep) == "connected"
    assert waited == [0.5, 1.0]

    async def bug() -> str:
        raise ValueError("not an outage")

    with pytest.raises(ValueError, match="not an outage"):
        await until_done("kafka", bug, Backoff(), sleep=sleep)


class StoreAway:
    """The saga store with its server gone for the first `failures` reads of
    the relay (as store_postgres answers then: UNAVAILABLE)."""

    def __init__(self, store: SagaStore, failures: int) -> None:
        self.store = store
        self.failures = failures

    async def unpublished(self, **settings: Any) -> Any:
        if self.failures:
            self.failures -= 1
            raise store_unavailable()
        return await self.store.unpublished(**settings)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)


async def test_the_relay_waits_out_the_saga_store_gone_and_publishes_when_it_is_back(
    store: SagaStore, relay_of: Callable[[Outbox], None]
) -> None:
    broker = FakeBroker()
    away = StoreAway(store, failures=3)
    outbox = quick_outbox(cast(SagaStore, away))
    outbox.connect(broker.send)
    event_id = await store_submission(store)
    relay_of(outbox)
    await eventually(lambda: nothing_unpublished(store))
    assert away.failures == 0
    assert broker.event_ids() == [event_id]
