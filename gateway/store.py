"""The gateway's saga store: one async interface, two implementations.

A dossier is kept whole as its protobuf (the timeline, results, due dates),
with the columns queries need beside it. Each event is applied in one
transaction together with the record that it was processed and the events it
caused, so a redelivered event changes nothing and re-sends the same events.
Every gateway process of a deployment shares one store; partition ownership
keeps one dossier with one process at a time. It is enforced here: a process
claims each partition it is assigned (a larger epoch than any before), and a
batch is stored only under the latest claim of its partition, checked in the
batch's own transaction, so a process that lost a partition without noticing
yet (a zombie) cannot write. The version column catches a stale writer of one
dossier too.

The outbox: a submission or a supplement is stored together with the event
that announces it, in one transaction, and the event is marked published
only once the broker acknowledged it (gateway/outbox.py publishes). So a
stored dossier is never left unannounced, whatever fails in between.

Two implementations of `SagaStore`, chosen by the one setting
(LIENTHONG_GATEWAY_DB, see `open_saga_store`): SQLite (gateway/store_sqlite.py),
a file the gateways of one host share, the default; PostgreSQL
(gateway/store_postgres.py), a database the gateways of any number of hosts
share. Neither makes a database call on the event loop. What applying a batch
decides (`plan_batch`: a redelivery, a dossier recorded from its event, a
settled dossier announced) and what a repeated submission or supplement
means are decided here, once; the implementations only read, write and hold
the transaction. tests/gateway/test_saga_store_contract.py holds both to the
same contract.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from common.database_url import is_postgres
from common.errors import InvalidArgument, Unavailable
from gateway.config import SessionTimeouts
from gateway.events import EVENT_TYPES, Event
from gateway.leases import LeaseStore
from gateway.saga import TERMINAL
from lienthong.events.v1 import events_pb2
from lienthong.gateway.v1 import gateway_pb2 as pb

# States in which a dossier is announced as settled: its end, or waiting on
# the declarant (who is told what to supply).
SETTLED_STATES = frozenset({*TERMINAL, pb.DOSSIER_STATE_NEEDS_SUPPLEMENT})
Transition = Callable[[pb.Dossier | None], tuple[pb.Dossier | None, list[events_pb2.StepCommand]]]


# What announces a stored change: the topic and the event (its id fixed, so
# that every publication of it is the same event to the saga).
Announcement = tuple[str, Event]


@dataclass(frozen=True)
class OutboxRecord:
    """An event stored in the outbox and not yet acknowledged by the broker."""

    seq: int
    topic: str
    event: Event
    stored_at: float


@dataclass(frozen=True)
class PendingEvent:
    """An event to apply: its id (applied once), its dossier, what it does."""

    event_id: str
    dossier_id: str
    transition: Transition


@dataclass(frozen=True)
class Fence:
    """The claim a batch is stored under: refused unless still the latest."""

    topic: str
    partition: int
    epoch: int


@dataclass(frozen=True)
class Applied:
    # What the event caused, kept per event so that a redelivery re-sends it.
    caused: events_pb2.CausedCommands
    dossier: pb.Dossier | None


class StaleDossierError(Exception):
    """Another writer changed the dossier (or applied the event) first; the
    batch stores nothing and is retried, or redelivered."""


class StaleOwnerError(Exception):
    """The partition was claimed by a later owner: this batch is not stored."""


class StoreClosedError(Exception):
    """The store was closed (the process is stopping): nothing was done."""


class SagaStore(LeaseStore, Protocol):
    """What the gateway keeps: dossiers, the events applied and what they
    caused, the outbox, partition claims, consumer-group incarnations and
    (LeaseStore) the partition leases of store-coordinated gateways.
    Every method is one transaction (or one read) and never blocks the loop."""

    async def submit(
        self,
        idempotency_key: str,
        print_: bytes,
        dossier: pb.Dossier,
        announce: Callable[[pb.Dossier], Announcement],
    ) -> pb.Dossier:
        """Insert a new dossier and the event announcing it (`announce`), in one
        transaction; or return the one this key already made (then the
        announcement is stored again while it is RECEIVED: see
        `announce_again`). A key used for another declaration: InvalidArgument."""

    async def unpublished(
        self,
        *,
        event_ids: Sequence[str] | None = None,
        stored_before: float | None = None,
        limit: int = 1000,
    ) -> list[OutboxRecord]:
        """Events stored and not yet acknowledged, oldest first: these ids only,
        or those stored before a wall-clock time."""

    async def mark_published(self, seqs: Sequence[int]) -> None:
        """Record the broker's acknowledgement of these outbox events."""

    async def prune_published(self, before: float) -> int:
        """Forget events acknowledged before a wall-clock time; returns how many."""

    async def supplement_accepted(
        self, dossier_id: str, idempotency_key: str, print_: bytes
    ) -> bool:
        """Whether this very supplement was accepted before under this key.
        A key already used for a different supplement is refused."""

    async def accept_supplement(
        self, dossier_id: str, idempotency_key: str, print_: bytes, announcement: Announcement
    ) -> None:
        """Record a supplement as accepted and the event announcing it, in one
        transaction. Also on a repeat, the event is stored again if it is no
        longer there (see `submit`)."""

    async def load(self, dossier_id: str) -> pb.Dossier | None: ...

    async def version(self, dossier_id: str) -> int | None: ...

    async def claim(self, topic: str, partition: int, owner: str) -> int:
        """Claim a partition for `owner`; returns its epoch, larger than any
        earlier claim's, whose holders' batches are refused from now on."""

    async def remember_member(self, instance: str, group_id: str, member_id: str) -> None: ...

    async def previous_member(self, instance: str, group_id: str) -> str | None: ...

    async def apply_all(
        self, events: Sequence[PendingEvent], *, fence: Fence | None = None
    ) -> list[Applied]:
        """Apply a batch of events, each once, in one transaction: all of them
        or, on any error, none (the batch is then read again from Kafka).
        With a fence, only if its claim on the partition is still the latest
        (StaleOwnerError otherwise). A concurrent writer of the same dossier or
        event: StaleDossierError, nothing stored.

        For each event: the events it causes (the new ones, or on a redelivery
        the ones its first delivery caused) and the dossier as it now stands
        (None on a redelivery, which reads nothing)."""

    async def apply(self, event: PendingEvent) -> Applied:
        """Apply one event once (a batch of one)."""

    async def expired_supplements(self, now: dt.datetime) -> list[str]:
        """Dossiers waiting for a supplement whose window closed before `now`."""

    async def close(self) -> None: ...


async def open_saga_store(
    location: str | Path, *, timeouts: SessionTimeouts | None = None
) -> SagaStore:
    """The store a setting names: a `postgresql://` URL is a PostgreSQL
    database (any number of hosts, its sessions under `timeouts`), anything
    else a SQLite file (one host)."""
    # Imported here: each implementation imports this module's types (and
    # a SQLite gateway need not load psycopg).
    if is_postgres(location):
        from gateway.store_postgres import PostgresSagaStore  # noqa: PLC0415

        return await PostgresSagaStore.open(str(location), timeouts)
    from gateway.store_sqlite import SqliteSagaStore  # noqa: PLC0415

    return await SqliteSagaStore.open(location)


# --- what both implementations decide alike ------------------------------------------


def supplement_due(dossier: pb.Dossier) -> str | None:
    """The due_at column: ISO text in UTC, which sorts as time does (so
    `expired_supplements` compares text in either database)."""
    if dossier.state != pb.DOSSIER_STATE_NEEDS_SUPPLEMENT:
        return None
    return dossier.supplement.due_at.ToDatetime(dt.UTC).isoformat()


def fingerprint(kind: str, declaration: bytes) -> bytes:
    return hashlib.sha256(kind.encode() + declaration).digest()


def key_reused(what: str) -> InvalidArgument:
    return InvalidArgument.field(
        "idempotency_key",
        f"this key was already used for a different {what}; use a new key for a new {what}",
    )


def store_unavailable() -> Unavailable:
    """What a call gets when the store does not answer (down, or a lock held
    past the timeout): UNAVAILABLE, retryable, as every call here is idempotent."""
    return Unavailable(
        "the saga store did not answer in time; the same request may be sent again",
        reason="STORE_UNAVAILABLE",
    )


def repeated_submission(stored_print: bytes, body: bytes, print_: bytes) -> pb.Dossier:
    """The dossier a key already made, if the declaration is the same one."""
    if bytes(stored_print) != print_:
        raise key_reused("declaration")
    return pb.Dossier.FromString(bytes(body))


def announce_again(stored: pb.Dossier) -> bool:
    """Whether a repeated submission stores its announcement again: while the
    dossier is still RECEIVED its event may be gone (published and pruned, or
    stored by a gateway from before the outbox) without the saga having it;
    publishing twice is harmless, never publishing leaves it stranded."""
    return stored.state == pb.DOSSIER_STATE_RECEIVED


def repeated_supplement(stored_print: bytes | None, print_: bytes) -> bool:
    """Whether a supplement key was used before (for this very supplement);
    a key used for a different one is refused."""
    if stored_print is None:
        return False
    if bytes(stored_print) != print_:
        raise key_reused("supplement")
    return True


def check_owner(fence: Fence, stored: tuple[str, int] | None) -> None:
    """The fence: the batch's claim must be the partition's latest."""
    if stored is None or stored[1] != fence.epoch:
        raise StaleOwnerError(
            f"{fence.topic}/{fence.partition}: epoch {fence.epoch} is stale, "
            f"now {stored[1] if stored else None} ({stored[0] if stored else 'nobody'})"
        )


# The outbox's columns as `outbox_record` takes them, in a SELECT's order.
OUTBOX_COLUMNS = "seq, topic, event_id, dossier_id, ce_type, ce_time, body, stored_at"


def outbox_record(row: Sequence[Any]) -> OutboxRecord:
    """An outbox row, read as OUTBOX_COLUMNS."""
    seq, topic, event_id, dossier_id, ce_type, ce_time, body, stored_at = row
    message = EVENT_TYPES[ce_type].FromString(bytes(body))
    event = Event(str(event_id), str(dossier_id), message, dt.datetime.fromisoformat(ce_time))
    return OutboxRecord(int(seq), str(topic), event, float(stored_at))


def event_columns(topic: str, event: Event) -> tuple[str, str, str, str, str, bytes]:
    """An outbox row's columns but seq and the times, in table order."""
    return (
        event.event_id,
        topic,
        event.dossier_id,
        event.type,
        event.time.isoformat(),
        event.message.SerializeToString(),
    )


@dataclass
class BatchPlan:
    """What storing a batch writes, decided before anything is written."""

    results: list[Applied] = field(default_factory=list)
    # Dossiers not in the store, recorded from their event (the submitting
    # process died before it wrote them): dossier → (its final state in this
    # batch, the idempotency key it is recorded under).
    inserts: dict[str, tuple[pb.Dossier, str]] = field(default_factory=dict)
    # Dossiers changed: their final state in this batch and the version they
    # were read at (written only if it is still that one).
    saves: dict[str, tuple[pb.Dossier, int]] = field(default_factory=dict)
    # (event id, what it caused) for each event applied now.
    processed: list[tuple[str, bytes]] = field(default_factory=list)


def plan_batch(
    events: Sequence[PendingEvent],
    done: Mapping[str, bytes],
    stored: Mapping[str, pb.Dossier],
) -> BatchPlan:
    """Apply a batch in memory, in order: `done` holds what the store says the
    already-applied events among them caused, `stored` their dossiers as the
    store has them. A later event of the batch sees what an earlier one did,
    as if each were written at once; each dossier is written once, at the end.
    Raises whatever a transition raises: then nothing is written."""
    plan = BatchPlan()
    done = dict(done)
    current = dict(stored)
    for event in events:
        first = done.get(event.event_id)
        if first is not None:
            # A redelivery: what its first delivery caused, read nothing.
            plan.results.append(Applied(events_pb2.CausedCommands.FromString(first), None))
            continue
        before = current.get(event.dossier_id)
        updated, commands = event.transition(before)
        caused = events_pb2.CausedCommands(commands=commands)
        if updated is not None:
            dossier_id = updated.dossier_id
            if dossier_id in plan.inserts:
                plan.inserts[dossier_id] = (updated, plan.inserts[dossier_id][1])
            elif dossier_id in stored:
                plan.saves[dossier_id] = (updated, stored[dossier_id].version)
            else:
                # The submitting process died before recording it: the event
                # carries the whole dossier, so it is recorded from that.
                plan.inserts[dossier_id] = (updated, f"event:{event.event_id}")
            current[dossier_id] = updated
            if updated.state in SETTLED_STATES and (
                before is None or before.state != updated.state
            ):
                caused.settled.dossier.CopyFrom(updated)
        recorded = caused.SerializeToString()
        done[event.event_id] = recorded
        plan.processed.append((event.event_id, recorded))
        plan.results.append(Applied(caused, updated if updated is not None else before))
    return plan


def dossier_columns(dossier: pb.Dossier) -> tuple[int, str | None, int, bytes]:
    """state, supplement_due, version, body: what a change of a dossier writes."""
    return (
        dossier.state,
        supplement_due(dossier),
        dossier.version,
        dossier.SerializeToString(),
    )
