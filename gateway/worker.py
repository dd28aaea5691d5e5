"""The saga worker: applies dossier events and step outcomes to the saga
store, then sends the step commands they cause."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable

import structlog
from aiokafka import AIOKafkaProducer

from common.clock import Clock
from gateway import saga
from gateway.events import Event, PoisonEventError, Topics
from gateway.kafka import publish
from gateway.store import DossierStore
from lienthong.events.v1 import events_pb2 as ev
from lienthong.gateway.v1 import gateway_pb2 as pb

log = structlog.get_logger("saga")


class SagaWorker:
    def __init__(
        self,
        store: DossierStore,
        producer: AIOKafkaProducer,
        topics: Topics,
        clock: Clock,
        changed: asyncio.Condition,
    ) -> None:
        self.store = store
        self.producer = producer
        self.topics = topics
        self.clock = clock
        self.changed = changed

    def _transition(
        self, event: Event, now: dt.datetime
    ) -> Callable[[pb.Dossier | None], saga.Transition]:
        message = event.message
        if isinstance(message, ev.DossierSubmitted):
            return lambda current: saga.on_submitted(current, message, now)
        if isinstance(message, ev.DossierSupplemented):
            return lambda current: saga.on_supplemented(current, message, now)
        if isinstance(message, ev.SupplementWindowExpired):
            return lambda current: saga.on_supplement_window_expired(current, message, now)
        if isinstance(message, ev.StepOutcome):
            return lambda current: saga.on_step_outcome(current, message, now)
        raise PoisonEventError(f"the saga does not handle {event.type}")

    async def handle(self, event: Event) -> None:
        now = self.clock.now()
        commands, dossier = self.store.apply(
            event.event_id, event.dossier_id, self._transition(event, now)
        )
        await publish(
            self.producer,
            self.topics.step_commands,
            [Event(f"{c.dossier_id}/{c.step}", c.dossier_id, c, now) for c in commands],
        )
        log.info(
            "saga event",
            ce_type=event.type,
            state=pb.DossierState.Name(dossier.state) if dossier else None,
            commands=[c.step for c in commands],
        )
        async with self.changed:
            self.changed.notify_all()
