"""The outbox's publishing side: a fast path for the API, a relay for the rest.

The API stores a submission (or a supplement) and the event announcing it in
one transaction (gateway/store.py), then asks `deliver` to publish that event
at once: the answer waits for the broker's acknowledgement, as it did before
the outbox, so latency is unchanged when the broker is up. When it is not,
the event stays in the store unpublished, the API answers UNAVAILABLE, and
the relay (`run`) publishes it once the broker is back. An event is marked
published only after the broker acknowledged it.

Publishing twice is harmless: an outbox event keeps its id and time for good,
and the saga applies an event id once. Still, a record handed to the
producer stays in the producer until acknowledged (aiokafka keeps retrying it
through an outage), so the same process never hands it over again while it
waits; it only waits again. Another gateway process sharing the store may
publish it too, which is why the relay leaves alone events younger than
`relay_after`: those are in some process's fast path.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from common.errors import Unavailable
from gateway.backoff import BROKER_DOWN, Backoff
from gateway.events import Event
from gateway.store import OutboxRecord, SagaStore, StoreClosedError

log = structlog.get_logger("outbox")

# Hands one event to the producer; the future resolves on the broker's ack.
Send = Callable[[str, Event], Awaitable[asyncio.Future[Any]]]

# Published events are kept this long (seconds), for whoever looks at the
# store after an incident, then pruned.
KEEP_PUBLISHED_SECONDS = 3600.0
PRUNE_EVERY_SECONDS = 60.0
RELAY_BATCH = 500


@dataclass(frozen=True)
class RelayPass:
    due: int  # unpublished events old enough for the relay
    published: bool  # all of them acknowledged
    oldest_waited_s: float


class Outbox:
    def __init__(
        self,
        store: SagaStore,
        *,
        timeout: float,
        relay_after: float | None = None,
        poll_seconds: float = 1.0,
        backoff: Backoff | None = None,
    ) -> None:
        """timeout: how long the API waits for an acknowledgement before it
        answers UNAVAILABLE (the event stays for the relay). relay_after: the
        age (seconds) at which the relay takes an unpublished event over;
        default twice the timeout."""
        self.store = store
        self.timeout = timeout
        self.relay_after = 2 * timeout if relay_after is None else relay_after
        self.poll_seconds = poll_seconds
        self.backoff = backoff or Backoff()
        self._send: Send | None = None
        # Event id → the producer's future for it, while unacknowledged.
        self._in_flight: dict[str, asyncio.Future[Any]] = {}
        # Event ids whose future has a callback that records its outcome.
        self._watched: set[str] = set()
        self._wake = asyncio.Event()
        self._pruned_at = 0.0
        # Acknowledgements recorded after the wait (see _settled_later).
        self._marking: set[asyncio.Task[None]] = set()

    def connect(self, send: Send) -> None:
        """The producer is up: from now on events can be published."""
        self._send = send
        self._wake.set()

    @property
    def connected(self) -> bool:
        return self._send is not None

    async def deliver(self, event_ids: Sequence[str]) -> bool:
        """Publish these stored events now, if they are not yet; True once the
        broker acknowledged each of them, False if it did not in time (they
        stay in the outbox for the relay)."""
        records = await self.store.unpublished(event_ids=event_ids)
        if not records:
            return True
        return await self._publish(records)

    async def _publish(self, records: Sequence[OutboxRecord]) -> bool:
        """Hand the records to the producer (unless already handed and not yet
        failed), wait up to `timeout` for every acknowledgement, mark the
        acknowledged ones published. True if all were."""
        send = self._send
        if send is None:
            return False
        try:
            futures = [await self._handed(send, r) for r in records]
        except asyncio.CancelledError:
            raise
        except BROKER_DOWN:
            # send() itself waits for metadata when the topic is not known yet.
            return False
        if futures:
            await asyncio.wait(futures, timeout=self.timeout)
        acknowledged = []
        for record, future in zip(records, futures, strict=True):
            if not future.done():
                if record.event.event_id not in self._watched:
                    self._watched.add(record.event.event_id)
                    future.add_done_callback(self._settled_later(record))
                continue
            self._in_flight.pop(record.event.event_id, None)
            if not future.cancelled() and future.exception() is None:
                acknowledged.append(record.seq)
        await self.store.mark_published(acknowledged)
        return len(acknowledged) == len(records)

    def _settled_later(self, record: OutboxRecord) -> Callable[[asyncio.Future[Any]], None]:
        """For a record still in the producer after the wait: when the broker
        takes it (or the producer gives up on it), record that at once."""

        def settled(future: asyncio.Future[Any]) -> None:
            self._watched.discard(record.event.event_id)
            if self._in_flight.get(record.event.event_id) is future:
                del self._in_flight[record.event.event_id]
            if not future.cancelled() and future.exception() is None:
                # Recorded by a task (the store is awaited), which then wakes
                # the relay: woken first, it could take the record for one
                # still waiting and publish it again.
                marking = asyncio.create_task(self._mark_late(record))
                self._marking.add(marking)
                marking.add_done_callback(self._marking.discard)

        return settled

    async def _mark_late(self, record: OutboxRecord) -> None:
        try:
            await self.store.mark_published([record.seq])
        except StoreClosedError:
            # Shutting down: the relay of the next start publishes it again,
            # which is harmless.
            return
        except Exception as error:
            # The store away: the relay publishes it again, harmlessly.
            log.warning(
                "publication not recorded", event_id=record.event.event_id, error=repr(error)
            )
        # The broker is back: what else waits need not wait out the backoff.
        # (A failure does not wake: the backoff is for that.)
        self._wake.set()

    async def _handed(self, send: Send, record: OutboxRecord) -> asyncio.Future[Any]:
        future = self._in_flight.get(record.event.event_id)
        if future is None or (future.done() and (future.cancelled() or future.exception())):
            future = await asyncio.wait_for(send(record.topic, record.event), self.timeout)
            self._in_flight[record.event.event_id] = future
        return future

    async def relay_once(self) -> RelayPass:
        """One pass of the relay: publish the unpublished events old enough
        to be its own (see `relay_after`), oldest first."""
        await self._prune()
        due = await self.store.unpublished(
            stored_before=time.time() - self.relay_after, limit=RELAY_BATCH
        )
        if not due:
            return RelayPass(0, True, 0.0)
        oldest = time.time() - due[0].stored_at
        return RelayPass(len(due), await self._publish(due), oldest)

    async def run(self) -> None:
        """The relay: a pass every `poll_seconds` (or when woken); while the
        broker does not take what is due, passes with backoff."""
        self.backoff.reset()
        down_since: float | None = None
        while True:
            try:
                done = await self.relay_once()
            except Unavailable as error:
                # The saga store away (its server restarting): what is stored
                # stays stored, so wait and read again; a relay that ended
                # here would take the whole gateway down with it.
                delay = self.backoff.next()
                log.warning("saga store unavailable", error=error.message, retry_in_s=delay)
                await self._pause(delay)
                continue
            if not done.due:
                await self._pause(self.poll_seconds)
            elif done.published:
                log.info(
                    "relayed",
                    events=done.due,
                    oldest_waited_s=round(done.oldest_waited_s, 1),
                    outage_s=round(time.monotonic() - down_since, 1) if down_since else None,
                )
                self.backoff.reset()
                down_since = None
                # No pause: there may be more.
            else:
                down_since = down_since or time.monotonic()
                delay = self.backoff.next()
                log.warning(
                    "waiting for the broker",
                    unpublished=done.due,
                    oldest_waited_s=round(done.oldest_waited_s, 1),
                    connected=self.connected,
                    retry_in_s=delay,
                )
                await self._pause(delay)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def _prune(self) -> None:
        now = time.time()
        if now - self._pruned_at >= PRUNE_EVERY_SECONDS:
            self._pruned_at = now
            await self.store.prune_published(now - KEEP_PUBLISHED_SECONDS)
