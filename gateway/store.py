"""The gateway's saga store: one SQLite file shared by every gateway process.

A dossier is kept whole as its protobuf (the timeline, results, due dates),
with the columns queries need beside it. Each event is applied in one
transaction together with the record that it was processed and the events it
caused, so a redelivered event changes nothing and re-sends the same events.
Several gateway processes on one host share the file (WAL, busy timeout);
partition ownership keeps one dossier with one process at a time. It is
enforced here: a process claims each partition it is assigned (a larger epoch
than any before), and a batch is stored only under the latest claim of its
partition, checked in the batch's own transaction, so a process that lost a
partition without noticing yet (a zombie) cannot write. The version column
catches a stale writer of one dossier too.

The outbox: a submission or a supplement is stored together with the event
that announces it, in one transaction, and the event is marked published
only once the broker acknowledged it (gateway/outbox.py publishes). So a
stored dossier is never left unannounced, whatever fails in between.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from common.errors import InvalidArgument
from common.sqlite import open_database, transaction
from gateway.events import EVENT_TYPES, Event
from gateway.saga import TERMINAL
from lienthong.events.v1 import events_pb2
from lienthong.gateway.v1 import gateway_pb2 as pb

SCHEMA = """
CREATE TABLE IF NOT EXISTS dossiers (
    dossier_id      TEXT PRIMARY KEY,
    idempotency_key TEXT NOT NULL UNIQUE,
    fingerprint     BLOB NOT NULL,
    kind            INTEGER NOT NULL,
    state           INTEGER NOT NULL,
    supplement_due  TEXT,
    version         INTEGER NOT NULL,
    body            BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS dossiers_waiting ON dossiers (state, supplement_due);
CREATE TABLE IF NOT EXISTS processed_events (
    event_id TEXT PRIMARY KEY,
    caused   BLOB NOT NULL
);
-- Supplements accepted, by the declarant's key (scoped to the dossier, as the
-- supplement's event id is): a repeat is answered again, a key reused for a
-- different supplement is refused, as for submissions.
-- Who owns each partition of the topics the saga consumes: a claim on
-- assignment raises the epoch; a batch is stored only under the latest.
CREATE TABLE IF NOT EXISTS partition_owner (
    topic     TEXT NOT NULL,
    partition INTEGER NOT NULL,
    owner     TEXT NOT NULL,
    epoch     INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
-- The member id each gateway (by its configured instance id) last had in
-- each consumer group under dynamic membership: restarted, it asks the group
-- to drop its previous incarnation at once rather than wait out its session.
CREATE TABLE IF NOT EXISTS group_member (
    instance  TEXT NOT NULL,
    group_id  TEXT NOT NULL,
    member_id TEXT NOT NULL,
    PRIMARY KEY (instance, group_id)
);
CREATE TABLE IF NOT EXISTS supplements (
    dossier_id      TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    fingerprint     BLOB NOT NULL,
    PRIMARY KEY (dossier_id, idempotency_key)
);
-- The transactional outbox: events written with the change they announce,
-- published by the gateway after the commit. stored_at and published_at are
-- the host's wall clock (time.time()), not the scenario clock: they measure
-- how long an event waited, and every gateway of the host shares them.
CREATE TABLE IF NOT EXISTS outbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id     TEXT NOT NULL UNIQUE,
    topic        TEXT NOT NULL,
    dossier_id   TEXT NOT NULL,
    ce_type      TEXT NOT NULL,
    ce_time      TEXT NOT NULL,
    body         BLOB NOT NULL,
    stored_at    REAL NOT NULL,
    published_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_published ON outbox (published_at)
    WHERE published_at IS NOT NULL;
"""

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


def _supplement_due(dossier: pb.Dossier) -> str | None:
    if dossier.state != pb.DOSSIER_STATE_NEEDS_SUPPLEMENT:
        return None
    return dossier.supplement.due_at.ToDatetime(dt.UTC).isoformat()


def fingerprint(kind: str, declaration: bytes) -> bytes:
    return hashlib.sha256(kind.encode() + declaration).digest()


def _key_reused(what: str) -> InvalidArgument:
    return InvalidArgument.field(
        "idempotency_key",
        f"this key was already used for a different {what}; use a new key for a new {what}",
    )


class DossierStore:
    def __init__(self, path: Path | str) -> None:
        self.conn = open_database(path, SCHEMA)

    def close(self) -> None:
        self.conn.close()

    def _save(self, dossier: pb.Dossier, *, expected_version: int) -> None:
        cursor = self.conn.execute(
            "UPDATE dossiers SET state = ?, supplement_due = ?, version = ?, body = ? "
            "WHERE dossier_id = ? AND version = ?",
            (
                dossier.state,
                _supplement_due(dossier),
                dossier.version,
                dossier.SerializeToString(),
                dossier.dossier_id,
                expected_version,
            ),
        )
        if cursor.rowcount != 1:
            raise StaleDossierError(dossier.dossier_id)

    def _insert(self, dossier: pb.Dossier, idempotency_key: str, print_: bytes) -> None:
        self.conn.execute(
            "INSERT INTO dossiers (dossier_id, idempotency_key, fingerprint, kind, state, "
            "supplement_due, version, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                dossier.dossier_id,
                idempotency_key,
                print_,
                dossier.kind,
                dossier.state,
                _supplement_due(dossier),
                dossier.version,
                dossier.SerializeToString(),
            ),
        )

    def submit(
        self,
        idempotency_key: str,
        print_: bytes,
        dossier: pb.Dossier,
        announce: Callable[[pb.Dossier], Announcement],
    ) -> pb.Dossier:
        """Insert a new dossier and the event announcing it (`announce`), in one
        transaction; or return the one this key already made.

        A repeat for a dossier still RECEIVED stores its announcement again if
        it is no longer there (published and pruned, or stored by a gateway
        from before the outbox): publishing twice is harmless, never
        publishing leaves the dossier stranded."""
        with transaction(self.conn):
            row = self.conn.execute(
                "SELECT fingerprint, body FROM dossiers WHERE idempotency_key = ?",
                (idempotency_key,),
            ).fetchone()
            if row is not None:
                if row["fingerprint"] != print_:
                    raise _key_reused("declaration")
                stored = pb.Dossier.FromString(row["body"])
                if stored.state == pb.DOSSIER_STATE_RECEIVED:
                    self._store_event(*announce(stored))
                return stored
            self._insert(dossier, idempotency_key, print_)
            self._store_event(*announce(dossier))
            return dossier

    def _store_event(self, topic: str, event: Event) -> None:
        # An event id already there is the same event (ids are derived from
        # what they announce): keep the first, with its time.
        self.conn.execute(
            "INSERT OR IGNORE INTO outbox (event_id, topic, dossier_id, ce_type, ce_time, "
            "body, stored_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                event.event_id,
                topic,
                event.dossier_id,
                event.type,
                event.time.isoformat(),
                event.message.SerializeToString(),
                time.time(),
            ),
        )

    @staticmethod
    def _outbox_record(row: sqlite3.Row) -> OutboxRecord:
        message = EVENT_TYPES[row["ce_type"]].FromString(row["body"])
        event = Event(
            row["event_id"], row["dossier_id"], message, dt.datetime.fromisoformat(row["ce_time"])
        )
        return OutboxRecord(int(row["seq"]), str(row["topic"]), event, float(row["stored_at"]))

    def unpublished(
        self,
        *,
        event_ids: Sequence[str] | None = None,
        stored_before: float | None = None,
        limit: int = 1000,
    ) -> list[OutboxRecord]:
        """Events stored and not yet acknowledged, oldest first: these ids only,
        or those stored before a wall-clock time."""
        sql = "SELECT * FROM outbox WHERE published_at IS NULL"
        args: list[object] = []
        if event_ids is not None:
            sql += f" AND event_id IN ({','.join('?' * len(event_ids))})"
            args.extend(event_ids)
        if stored_before is not None:
            sql += " AND stored_at < ?"
            args.append(stored_before)
        sql += " ORDER BY seq LIMIT ?"
        args.append(limit)
        return [self._outbox_record(r) for r in self.conn.execute(sql, args)]

    def mark_published(self, seqs: Sequence[int]) -> None:
        """Record the broker's acknowledgement of these outbox events."""
        if not seqs:
            return
        with transaction(self.conn):
            self.conn.execute(
                f"UPDATE outbox SET published_at = ? WHERE seq IN ({','.join('?' * len(seqs))}) "
                "AND published_at IS NULL",
                (time.time(), *seqs),
            )

    def prune_published(self, before: float) -> int:
        """Forget events acknowledged before a wall-clock time; returns how many."""
        with transaction(self.conn):
            cursor = self.conn.execute("DELETE FROM outbox WHERE published_at < ?", (before,))
        return cursor.rowcount

    def supplement_accepted(self, dossier_id: str, idempotency_key: str, print_: bytes) -> bool:
        """Whether this very supplement was accepted before under this key.
        A key already used for a different supplement is refused."""
        row = self.conn.execute(
            "SELECT fingerprint FROM supplements WHERE dossier_id = ? AND idempotency_key = ?",
            (dossier_id, idempotency_key),
        ).fetchone()
        if row is None:
            return False
        if row["fingerprint"] != print_:
            raise _key_reused("supplement")
        return True

    def accept_supplement(
        self, dossier_id: str, idempotency_key: str, print_: bytes, announcement: Announcement
    ) -> None:
        """Record a supplement as accepted and the event announcing it, in one
        transaction. Also on a repeat, the event is stored again if it is no
        longer there (see `submit`)."""
        with transaction(self.conn):
            if not self.supplement_accepted(dossier_id, idempotency_key, print_):
                self.conn.execute(
                    "INSERT INTO supplements (dossier_id, idempotency_key, fingerprint) "
                    "VALUES (?, ?, ?)",
                    (dossier_id, idempotency_key, print_),
                )
            self._store_event(*announcement)

    def load(self, dossier_id: str) -> pb.Dossier | None:
        row = self.conn.execute(
            "SELECT body FROM dossiers WHERE dossier_id = ?", (dossier_id,)
        ).fetchone()
        return None if row is None else pb.Dossier.FromString(row["body"])

    def version(self, dossier_id: str) -> int | None:
        row = self.conn.execute(
            "SELECT version FROM dossiers WHERE dossier_id = ?", (dossier_id,)
        ).fetchone()
        return None if row is None else int(row["version"])

    def claim(self, topic: str, partition: int, owner: str) -> int:
        """Claim a partition for `owner`; returns its epoch, larger than any
        earlier claim's, whose holders' batches are refused from now on."""
        with transaction(self.conn):
            row = self.conn.execute(
                "INSERT INTO partition_owner (topic, partition, owner, epoch) VALUES (?, ?, ?, 1) "
                "ON CONFLICT (topic, partition) DO UPDATE SET owner = excluded.owner, "
                "epoch = epoch + 1 RETURNING epoch",
                (topic, partition, owner),
            ).fetchone()
        return int(row["epoch"])

    def remember_member(self, instance: str, group_id: str, member_id: str) -> None:
        with transaction(self.conn):
            self.conn.execute(
                "INSERT INTO group_member (instance, group_id, member_id) VALUES (?, ?, ?) "
                "ON CONFLICT (instance, group_id) DO UPDATE SET member_id = excluded.member_id",
                (instance, group_id, member_id),
            )

    def previous_member(self, instance: str, group_id: str) -> str | None:
        row = self.conn.execute(
            "SELECT member_id FROM group_member WHERE instance = ? AND group_id = ?",
            (instance, group_id),
        ).fetchone()
        return None if row is None else str(row["member_id"])

    def _check_owner(self, fence: Fence) -> None:
        row = self.conn.execute(
            "SELECT owner, epoch FROM partition_owner WHERE topic = ? AND partition = ?",
            (fence.topic, fence.partition),
        ).fetchone()
        if row is None or int(row["epoch"]) != fence.epoch:
            raise StaleOwnerError(
                f"{fence.topic}/{fence.partition}: epoch {fence.epoch} is stale, "
                f"now {row['epoch'] if row else None} ({row['owner'] if row else 'nobody'})"
            )

    def apply_all(
        self, events: Sequence[PendingEvent], *, fence: Fence | None = None
    ) -> list[Applied]:
        """Apply a batch of events, each once, in one transaction: all of them
        or, on any error, none (the batch is then read again from Kafka).
        With a fence, only if its claim on the partition is still the latest
        (StaleOwnerError otherwise).

        For each event: the events it causes (the new ones, or on a redelivery
        the ones its first delivery caused) and the dossier as it now stands
        (None on a redelivery, which reads nothing)."""
        with transaction(self.conn):
            if fence is not None:
                self._check_owner(fence)
            return [self._apply(event) for event in events]

    def apply(self, event: PendingEvent) -> Applied:
        """Apply one event once (a batch of one)."""
        return self.apply_all([event])[0]

    def _apply(self, event: PendingEvent) -> Applied:
        done = self.conn.execute(
            "SELECT caused FROM processed_events WHERE event_id = ?", (event.event_id,)
        ).fetchone()
        if done is not None:
            return Applied(events_pb2.CausedCommands.FromString(done["caused"]), None)
        current = self.load(event.dossier_id)
        updated, commands = event.transition(current)
        caused = events_pb2.CausedCommands(commands=commands)
        if updated is not None:
            if current is None:
                # The submitting process died before recording it: the event
                # carries the whole dossier, so it is recorded from that.
                self._insert(updated, f"event:{event.event_id}", b"")
            else:
                self._save(updated, expected_version=current.version)
            if updated.state in SETTLED_STATES and (
                current is None or current.state != updated.state
            ):
                caused.settled.dossier.CopyFrom(updated)
        self.conn.execute(
            "INSERT INTO processed_events (event_id, caused) VALUES (?, ?)",
            (event.event_id, caused.SerializeToString()),
        )
        return Applied(caused, updated if updated is not None else current)

    def expired_supplements(self, now: dt.datetime) -> list[str]:
        rows = self.conn.execute(
            "SELECT dossier_id FROM dossiers WHERE state = ? AND supplement_due < ?",
            (pb.DOSSIER_STATE_NEEDS_SUPPLEMENT, now.isoformat()),
        ).fetchall()
        return [str(r["dossier_id"]) for r in rows]


class StaleDossierError(Exception):
    """Another writer changed the dossier first; the event will be redelivered."""


class StaleOwnerError(Exception):
    """The partition was claimed by a later owner: this batch is not stored."""
