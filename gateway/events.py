"""Kafka records of the sagas: topics, CloudEvents headers, protobuf bodies.

Every record is keyed by dossier id, so the default partitioner keeps one
dossier's events in order on one partition. Headers follow the CloudEvents
Kafka protocol binding in binary mode (ce_id, ce_type, ce_source, ce_time,
ce_specversion; content-type for the body).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from google.protobuf.message import DecodeError, Message

from common.agencies import AGENCY_NAMES
from lienthong.events.v1 import events_pb2

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/protobuf"
SOURCE = "/lienthong/gateway"

# ce_type → message class. The type names the schema version, so a consumer
# can refuse what it does not understand instead of misreading it.
EVENT_TYPES: dict[str, type[Message]] = {
    "vn.lienthong.dossier.submitted.v1": events_pb2.DossierSubmitted,
    "vn.lienthong.dossier.supplemented.v1": events_pb2.DossierSupplemented,
    "vn.lienthong.dossier.supplement_window_expired.v1": events_pb2.SupplementWindowExpired,
    "vn.lienthong.step.command.v1": events_pb2.StepCommand,
    "vn.lienthong.step.outcome.v1": events_pb2.StepOutcome,
    "vn.lienthong.dossier.settled.v1": events_pb2.DossierSettled,
}
TYPE_OF = {cls: name for name, cls in EVENT_TYPES.items()}


# The agencies whose steps have a command topic (a lane) of their own, so a
# batch of steps waiting out one agency's outage holds up only that agency's
# steps; the saga sends a dossier's next command only after the previous
# outcome, so a dossier's steps stay in order across lanes.
STEP_LANES = AGENCY_NAMES


@dataclass(frozen=True)
class Topics:
    dossiers: str
    # The step commands of a step whose agency has no lane, and those an older
    # gateway (before the lanes) sent: the executor still consumes it.
    step_commands: str
    step_outcomes: str
    deadletter: str
    # Dossiers that reached an end (or wait for the declarant), for listeners
    # outside the gateway; nothing in the gateway consumes it.
    settled: str
    # Agency → its step-command topic, one per STEP_LANES.
    step_lanes: dict[str, str] = field(default_factory=dict, hash=False)
    # What the topic names and the consumer groups begin with.
    prefix: str = "lienthong"

    @classmethod
    def with_prefix(cls, prefix: str) -> Topics:
        return cls(
            dossiers=f"{prefix}.dossiers",
            step_commands=f"{prefix}.step-commands",
            step_outcomes=f"{prefix}.step-outcomes",
            deadletter=f"{prefix}.deadletter",
            settled=f"{prefix}.dossier-settled",
            step_lanes={agency: f"{prefix}.step-commands.{agency}" for agency in STEP_LANES},
            prefix=prefix,
        )

    @property
    def saga_group(self) -> str:
        """The saga's consumer group: it reads the dossiers and the outcomes."""
        return f"{self.prefix}-saga"

    def lane_group(self, agency: str) -> str:
        """The consumer group of an agency's lane: each lane commits its own offsets."""
        return f"{self.prefix}-steps-{agency}"

    @property
    def legacy_steps_group(self) -> str:
        """The group of the topic before the lanes: its old name, so offsets
        committed before an upgrade still count."""
        return f"{self.prefix}-steps"

    def consumer_groups(self) -> dict[str, list[str]]:
        """Every group the gateway runs → the topics it reads."""
        return {
            self.saga_group: [self.dossiers, self.step_outcomes],
            **{self.lane_group(agency): [topic] for agency, topic in self.step_lanes.items()},
            self.legacy_steps_group: [self.step_commands],
        }

    def step_commands_for(self, agency: str) -> str:
        """The topic a command for a step of this agency goes to."""
        return self.step_lanes.get(agency, self.step_commands)

    def all(self) -> list[str]:
        return [
            self.dossiers,
            self.step_commands,
            *self.step_lanes.values(),
            self.step_outcomes,
            self.deadletter,
            self.settled,
        ]


@dataclass(frozen=True)
class Event:
    """One event to send or one received: its id, the dossier key, the body."""

    event_id: str
    dossier_id: str
    message: Message
    time: dt.datetime

    @property
    def type(self) -> str:
        return TYPE_OF[type(self.message)]


class PoisonEventError(Exception):
    """A record that can never be processed: it goes to the dead-letter topic."""


def event_key(event: Event) -> bytes:
    """The record key: the dossier, so that a dossier's events share a
    partition in each topic, and keep their order there."""
    return event.dossier_id.encode()


def encode(event: Event) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    headers = [
        ("ce_id", event.event_id.encode()),
        ("ce_type", event.type.encode()),
        ("ce_source", SOURCE.encode()),
        ("ce_time", event.time.isoformat().encode()),
        ("ce_specversion", SPEC_VERSION.encode()),
        ("ce_subject", event.dossier_id.encode()),
        ("content-type", CONTENT_TYPE.encode()),
    ]
    return event_key(event), event.message.SerializeToString(), headers


def decode(key: bytes | None, value: bytes | None, headers: tuple[tuple[str, bytes], ...]) -> Event:
    found = {name: raw.decode(errors="replace") for name, raw in headers}
    missing = [h for h in ("ce_id", "ce_type", "ce_time", "ce_specversion") if h not in found]
    if missing:
        raise PoisonEventError(f"missing CloudEvents headers: {', '.join(missing)}")
    if found["ce_specversion"] != SPEC_VERSION:
        raise PoisonEventError(f"unsupported ce_specversion {found['ce_specversion']}")
    cls = EVENT_TYPES.get(found["ce_type"])
    if cls is None:
        raise PoisonEventError(f"unknown ce_type {found['ce_type']}")
    if key is None or value is None:
        raise PoisonEventError("record without key or value")
    try:
        message = cls.FromString(value)
        time = dt.datetime.fromisoformat(found["ce_time"])
    except (DecodeError, ValueError) as error:
        raise PoisonEventError(f"undecodable {found['ce_type']}: {error}") from None
    return Event(found["ce_id"], key.decode(), message, time)
