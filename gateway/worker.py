"""The saga worker: applies dossier events and step outcomes to the saga
store, then sends the step commands they cause and announces the dossiers
they settled."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer
from google.protobuf.message import Message

from common.clock import Clock
from gateway import saga
from gateway.events import Event, PoisonEventError, Topics
from gateway.kafka import Lease, PartitionRevokedError, publish
from gateway.procedures import PROCEDURES, UnknownProcedureError
from gateway.store import Fence, PendingEvent, SagaStore, StaleOwnerError, Transition
from lienthong.events.v1 import events_pb2 as ev
from lienthong.gateway.v1 import gateway_pb2 as pb

log = structlog.get_logger("saga")

# The saga transition for each event type the saga consumes.
TRANSITIONS: dict[
    type[Message], Callable[[pb.Dossier | None, Any, dt.datetime], saga.Transition]
] = {
    ev.DossierSubmitted: saga.on_submitted,
    ev.DossierSupplemented: saga.on_supplemented,
    ev.SupplementWindowExpired: saga.on_supplement_window_expired,
    ev.StepOutcome: saga.on_step_outcome,
}


def command_topic(topics: Topics, command: ev.StepCommand) -> str:
    """The lane of the step's agency: a step waiting out its agency's outage
    then holds up only that agency's steps, never another agency's. The agency
    is the one the step of the dossier's group names."""
    return topics.step_commands_for(PROCEDURES.plan(command.dossier, command.step).agency)


class SagaWorker:
    def __init__(
        self,
        store: SagaStore,
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

    def check(self, event: Event) -> None:
        if type(event.message) not in TRANSITIONS:
            raise PoisonEventError(f"the saga does not handle {event.type}")
        # A submission of a kind this gateway does not run is never stored
        # (never run as another kind). The other events find their dossier in
        # the store, where only kinds that passed here are; one stored by a
        # newer gateway sharing the store raises UnknownProcedureError in the
        # saga, and its batch is retried (logged) rather than dropped.
        if isinstance(event.message, ev.DossierSubmitted):
            try:
                PROCEDURES.of(event.message.dossier)
            except UnknownProcedureError as unknown:
                raise PoisonEventError(str(unknown)) from None

    @staticmethod
    def _transition(event: Event, now: dt.datetime) -> Transition:
        on_event = TRANSITIONS[type(event.message)]  # check() let only these through
        return lambda current: on_event(current, event.message, now)

    async def handle_batch(self, events: list[Event], lease: Lease) -> None:
        now = self.clock.now()
        lease.check()
        try:
            applied = await self.store.apply_all(
                [PendingEvent(e.event_id, e.dossier_id, self._transition(e, now)) for e in events],
                fence=Fence(lease.tp.topic, lease.tp.partition, lease.epoch),
            )
        except StaleOwnerError as stale:
            # Another process claimed the partition since: it works these
            # events; this one stores and publishes nothing for them.
            log.warning("saga store refused a stale owner", error=str(stale), events=len(events))
            lease.revoked = True
            raise PartitionRevokedError(str(stale)) from stale
        caused: list[tuple[str, Event]] = []
        for result in applied:
            caused.extend(
                (
                    command_topic(self.topics, c),
                    Event(f"{c.dossier_id}/{c.step}", c.dossier_id, c, now),
                )
                for c in result.caused.commands
            )
            if result.caused.HasField("settled"):
                settled = result.caused.settled
                dossier_id = settled.dossier.dossier_id
                state = pb.DossierState.Name(settled.dossier.state)
                caused.append(
                    (
                        self.topics.settled,
                        Event(f"{dossier_id}/settled/{state}", dossier_id, settled, now),
                    )
                )
        # Stored under the latest claim; the freeze check still applies, so a
        # batch frozen right here publishes only what the next owner re-sends.
        lease.check()
        await publish(self.producer, caused)
        for event, result in zip(events, applied, strict=True):
            log.info(
                "saga event",
                dossier_id=event.dossier_id,
                event_id=event.event_id,
                ce_type=event.type,
                state=pb.DossierState.Name(result.dossier.state) if result.dossier else None,
                commands=[c.step for c in result.caused.commands],
            )
        async with self.changed:
            self.changed.notify_all()
