"""The console's live state, fed from the gateway's Kafka topics.

Like `lienthong events tail` (cli/events.py) it reads every partition
without a consumer group, so it commits nothing and takes nothing from the
gateway's consumers, and from the beginning, so a console started beside a
running stack shows its counters whole. The topics (proto/asyncapi.yaml):
`dossiers` (submitted), `step-commands.<agency>` (a step started: the topic
names the agency), `step-outcomes` (a step ended), `dossier-settled` (an
end, with the final state). An outcome the gateway handled in its own process
(gateway/local_outcomes.py) is not in `step-outcomes`: its step's end is read
from the dossier's timeline, which the next command and the settled
announcement carry.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterable

import structlog
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError

from cli.render import dossier_state, kind_name
from cli.web.hub import Hub
from cli.web.live import Change, LiveState
from gateway.events import PoisonEventError, Topics, decode
from lienthong.events.v1 import events_pb2 as ev
from lienthong.gateway.v1 import gateway_pb2 as gw

log = structlog.get_logger("cli.web.feed")

# The page's words for a step outcome (the contract: done, refused, failed).
OUTCOMES = {
    ev.STEP_OUTCOME_KIND_SUCCEEDED: "done",
    ev.STEP_OUTCOME_KIND_REJECTED: "refused",
    # Nothing to do is the step done (e.g. no death notice to close).
    ev.STEP_OUTCOME_KIND_SKIPPED: "done",
}
# The same words for a step the dossier's timeline says ended.
ENDED_STEPS = {
    gw.STEP_STATE_SUCCEEDED: "done",
    gw.STEP_STATE_REJECTED: "refused",
    gw.STEP_STATE_SKIPPED: "done",
}
RETRY_SECONDS = 1.0


def _stamp(dossier: gw.Dossier) -> dt.datetime | None:
    if dossier.submitted_at.seconds or dossier.submitted_at.nanos:
        return dossier.submitted_at.ToDatetime(tzinfo=dt.UTC)
    return None


class Feed:
    """Reads the topics into a LiveState and pushes each change to the hub."""

    def __init__(self, bootstrap_servers: str, topics: Topics, live: LiveState, hub: Hub) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topics = topics
        self.live = live
        self.hub = hub
        self._lanes = {topic: agency for agency, topic in topics.step_lanes.items()}
        self.records = 0
        self._positions: dict[TopicPartition, int] = {}

    @property
    def topic_names(self) -> list[str]:
        return [
            self.topics.dossiers,
            *self.topics.step_lanes.values(),
            self.topics.step_outcomes,
            self.topics.settled,
        ]

    def apply(self, record: ConsumerRecord[bytes, bytes]) -> list[Change]:
        """One record's changes; one that does not decode is skipped (the
        dead-letter topic is the gateway's business, not the page's)."""
        try:
            event = decode(record.key, record.value, tuple(record.headers))
        except PoisonEventError:
            return []
        message = event.message
        if isinstance(message, ev.DossierSubmitted):
            return self.live.submitted(
                event.dossier_id, kind_name(message.dossier.kind), event.time
            )
        if isinstance(message, ev.StepCommand):
            agency = self._lanes.get(record.topic)
            if agency is None:
                return []
            return self._ended_steps(message.dossier) + self.live.step_started(
                message.dossier_id or event.dossier_id,
                message.step,
                agency,
                event.time,
                procedure=kind_name(message.dossier.kind),
                submitted_at=_stamp(message.dossier),
            )
        if isinstance(message, ev.StepOutcome):
            took = (
                float(message.finished_at_unix_ms - message.started_at_unix_ms)
                if message.finished_at_unix_ms and message.started_at_unix_ms
                else None
            )
            return self.live.step_ended(
                message.dossier_id or event.dossier_id,
                message.step,
                message.agency,
                OUTCOMES.get(message.kind, "failed"),
                event.time,
                took_ms=took,
            )
        if isinstance(message, ev.DossierSettled):
            dossier = message.dossier
            return self._ended_steps(dossier) + self.live.settled(
                dossier.dossier_id or event.dossier_id,
                dossier_state(dossier.state),
                event.time,
                procedure=kind_name(dossier.kind),
                submitted_at=_stamp(dossier),
            )
        return []

    def _ended_steps(self, dossier: gw.Dossier) -> list[Change]:
        """The ends of steps seen started that the dossier's timeline says
        are over (each once: the live state skips those it already ended)."""
        changes: list[Change] = []
        for step in dossier.timeline:
            outcome = ENDED_STEPS.get(step.state)
            if outcome is None or step.agency not in self._lanes.values():
                continue  # still running, or the gateway's own step (never commanded)
            changes += self.live.step_ended(
                dossier.dossier_id,
                step.name,
                step.agency,
                outcome,
                step.finished_at.ToDatetime(tzinfo=dt.UTC),
                if_running=True,
            )
        return changes

    async def run(self) -> None:
        """Until cancelled; a broker that is away (restarted by a scenario) is
        waited for and read again from where this feed was."""
        while True:
            try:
                await self._consume()
            except asyncio.CancelledError:
                raise
            except KafkaError as error:
                log.info("console feed: Kafka not reachable; trying again", error=str(error))
            except Exception:
                # The page must not go dark for good over one bad turn: said, and retried.
                log.warning("console feed failed; reading again", exc_info=True)
            await asyncio.sleep(RETRY_SECONDS)

    async def _consume(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            # Tansu answers a fetch only when its wait is over: a short one keeps it live.
            fetch_max_wait_ms=100,
        )
        await consumer.start()
        try:
            partitions = await self._partitions(consumer)
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            for tp in partitions:
                # Back after a broker restart: on from where this feed was.
                if tp in self._positions:
                    consumer.seek(tp, self._positions[tp])
            while True:
                batches = await consumer.getmany(timeout_ms=1000, max_records=2000)
                for tp, records in batches.items():
                    for record in records:
                        self.records += 1
                        self.hub.publish(self.apply(record))
                    if records:
                        self._positions[tp] = records[-1].offset + 1
        finally:
            await consumer.stop()

    async def _partitions(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        # The gateway creates its topics when it starts: wait for them all.
        while True:
            await consumer.topics()
            if all(consumer.partitions_for_topic(t) for t in self.topic_names):
                return list(_assigned(consumer, self.topic_names))
            await asyncio.sleep(RETRY_SECONDS)


def _assigned(consumer: AIOKafkaConsumer, topics: Iterable[str]) -> Iterable[TopicPartition]:
    for topic in topics:
        for partition in sorted(consumer.partitions_for_topic(topic) or ()):
            yield TopicPartition(topic, partition)
