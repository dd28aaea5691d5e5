"""The saga store in one SQLite file: the default, for the gateways of one host.

Several gateway processes share the file (WAL, busy timeout); BEGIN
IMMEDIATE makes every write transaction the only writer, which is how the
fence, the version check and "each event once" hold here: a claim, a batch
and a submission never interleave. See gateway/store.py for what is stored.

No database call runs on the event loop: the connection lives on one
dedicated thread (a single-worker executor) and each operation, one
transaction, runs there whole. A writer lock held by another process (one
frozen mid-transaction, say) then blocks that thread for the busy timeout,
not the loop, so the process's heartbeats go on meanwhile.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ParamSpec, TypeVar

import structlog

from common.sqlite import open_database, transaction
from gateway.events import Event
from gateway.leases import ReplacedError
from gateway.store import (
    OUTBOX_COLUMNS,
    Announcement,
    Applied,
    Fence,
    OutboxRecord,
    PendingEvent,
    StaleDossierError,
    StoreClosedError,
    announce_again,
    check_owner,
    dossier_columns,
    event_columns,
    outbox_record,
    plan_batch,
    repeated_submission,
    repeated_supplement,
    store_unavailable,
)
from lienthong.gateway.v1 import gateway_pb2 as pb

log = structlog.get_logger("store")

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
-- Store-coordinated partitions (gateway/leases.py): the gateway processes
-- seen alive (seen: the host's wall clock), and who holds each partition's
-- lease with the next offset to read there.
CREATE TABLE IF NOT EXISTS gateway_member (
    instance    TEXT PRIMARY KEY,
    seen        REAL NOT NULL,
    incarnation TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS partition_lease (
    topic       TEXT NOT NULL,
    partition   INTEGER NOT NULL,
    holder      TEXT,
    next_offset INTEGER,
    PRIMARY KEY (topic, partition)
);
-- Supplements accepted, by the declarant's key (scoped to the dossier, as the
-- supplement's event id is): a repeat is answered again, a key reused for a
-- different supplement is refused, as for submissions.
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

P = ParamSpec("P")
T = TypeVar("T")


def _marks(count: int) -> str:
    return ",".join("?" * count)


class SqliteSagaStore:
    """gateway.store.SagaStore on a SQLite file; open with `await open(path)`."""

    def __init__(self, conn: sqlite3.Connection, thread: ThreadPoolExecutor) -> None:
        self.conn = conn
        self._thread = thread
        self._closed = False

    @classmethod
    async def open(cls, path: Path | str) -> SqliteSagaStore:
        thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="saga-store")
        loop = asyncio.get_running_loop()
        try:
            conn = await loop.run_in_executor(thread, open_database, path, SCHEMA)
        except BaseException:
            thread.shutdown(wait=False)
            raise
        return cls(conn, thread)

    async def _on_thread(self, work: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run one operation on the store's thread, the connection's only user."""
        if self._closed:
            raise StoreClosedError("the saga store is closed")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._thread, lambda: work(*args, **kwargs))
        except sqlite3.OperationalError as error:
            # The file locked past the busy timeout, or unreadable.
            log.warning("saga store unavailable", error=str(error))
            raise store_unavailable() from error

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # After whatever is queued on the thread: its transactions end first.
        await asyncio.get_running_loop().run_in_executor(self._thread, self.conn.close)
        self._thread.shutdown(wait=False)

    # --- dossiers and the outbox -----------------------------------------------------

    def _insert(self, dossier: pb.Dossier, idempotency_key: str, print_: bytes) -> None:
        state, due, version, body = dossier_columns(dossier)
        self.conn.execute(
            "INSERT INTO dossiers (dossier_id, idempotency_key, fingerprint, kind, state, "
            "supplement_due, version, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (dossier.dossier_id, idempotency_key, print_, dossier.kind, state, due, version, body),
        )

    def _store_event(self, topic: str, event: Event) -> None:
        # An event id already there is the same event (ids are derived from
        # what they announce): keep the first, with its time.
        self.conn.execute(
            "INSERT OR IGNORE INTO outbox (event_id, topic, dossier_id, ce_type, ce_time, "
            "body, stored_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (*event_columns(topic, event), time.time()),
        )

    def _submit(
        self,
        idempotency_key: str,
        print_: bytes,
        dossier: pb.Dossier,
        announce: Callable[[pb.Dossier], Announcement],
    ) -> pb.Dossier:
        with transaction(self.conn):
            row = self.conn.execute(
                "SELECT fingerprint, body FROM dossiers WHERE idempotency_key = ?",
                (idempotency_key,),
            ).fetchone()
            if row is not None:
                stored = repeated_submission(row["fingerprint"], row["body"], print_)
                if announce_again(stored):
                    self._store_event(*announce(stored))
                return stored
            self._insert(dossier, idempotency_key, print_)
            self._store_event(*announce(dossier))
            return dossier

    async def submit(
        self,
        idempotency_key: str,
        print_: bytes,
        dossier: pb.Dossier,
        announce: Callable[[pb.Dossier], Announcement],
    ) -> pb.Dossier:
        return await self._on_thread(self._submit, idempotency_key, print_, dossier, announce)

    def _unpublished(
        self, event_ids: Sequence[str] | None, stored_before: float | None, limit: int
    ) -> list[OutboxRecord]:
        sql = f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE published_at IS NULL"
        args: list[object] = []
        if event_ids is not None:
            sql += f" AND event_id IN ({_marks(len(event_ids))})"
            args.extend(event_ids)
        if stored_before is not None:
            sql += " AND stored_at < ?"
            args.append(stored_before)
        sql += " ORDER BY seq LIMIT ?"
        args.append(limit)
        return [outbox_record(row) for row in self.conn.execute(sql, args)]

    async def unpublished(
        self,
        *,
        event_ids: Sequence[str] | None = None,
        stored_before: float | None = None,
        limit: int = 1000,
    ) -> list[OutboxRecord]:
        return await self._on_thread(self._unpublished, event_ids, stored_before, limit)

    def _mark_published(self, seqs: Sequence[int]) -> None:
        with transaction(self.conn):
            self.conn.execute(
                f"UPDATE outbox SET published_at = ? WHERE seq IN ({_marks(len(seqs))}) "
                "AND published_at IS NULL",
                (time.time(), *seqs),
            )

    async def mark_published(self, seqs: Sequence[int]) -> None:
        if seqs:
            await self._on_thread(self._mark_published, list(seqs))

    def _prune_published(self, before: float) -> int:
        with transaction(self.conn):
            cursor = self.conn.execute("DELETE FROM outbox WHERE published_at < ?", (before,))
        return cursor.rowcount

    async def prune_published(self, before: float) -> int:
        return await self._on_thread(self._prune_published, before)

    def _supplement_accepted(self, dossier_id: str, idempotency_key: str, print_: bytes) -> bool:
        row = self.conn.execute(
            "SELECT fingerprint FROM supplements WHERE dossier_id = ? AND idempotency_key = ?",
            (dossier_id, idempotency_key),
        ).fetchone()
        return repeated_supplement(None if row is None else row["fingerprint"], print_)

    async def supplement_accepted(
        self, dossier_id: str, idempotency_key: str, print_: bytes
    ) -> bool:
        return await self._on_thread(self._supplement_accepted, dossier_id, idempotency_key, print_)

    def _accept_supplement(
        self, dossier_id: str, idempotency_key: str, print_: bytes, announcement: Announcement
    ) -> None:
        with transaction(self.conn):
            if not self._supplement_accepted(dossier_id, idempotency_key, print_):
                self.conn.execute(
                    "INSERT INTO supplements (dossier_id, idempotency_key, fingerprint) "
                    "VALUES (?, ?, ?)",
                    (dossier_id, idempotency_key, print_),
                )
            self._store_event(*announcement)

    async def accept_supplement(
        self, dossier_id: str, idempotency_key: str, print_: bytes, announcement: Announcement
    ) -> None:
        await self._on_thread(
            self._accept_supplement, dossier_id, idempotency_key, print_, announcement
        )

    def _load(self, dossier_id: str) -> pb.Dossier | None:
        row = self.conn.execute(
            "SELECT body FROM dossiers WHERE dossier_id = ?", (dossier_id,)
        ).fetchone()
        return None if row is None else pb.Dossier.FromString(row["body"])

    async def load(self, dossier_id: str) -> pb.Dossier | None:
        return await self._on_thread(self._load, dossier_id)

    def _version(self, dossier_id: str) -> int | None:
        row = self.conn.execute(
            "SELECT version FROM dossiers WHERE dossier_id = ?", (dossier_id,)
        ).fetchone()
        return None if row is None else int(row["version"])

    async def version(self, dossier_id: str) -> int | None:
        return await self._on_thread(self._version, dossier_id)

    def _expired_supplements(self, now: dt.datetime) -> list[str]:
        rows = self.conn.execute(
            "SELECT dossier_id FROM dossiers WHERE state = ? AND supplement_due < ?",
            (pb.DOSSIER_STATE_NEEDS_SUPPLEMENT, now.isoformat()),
        ).fetchall()
        return [str(r["dossier_id"]) for r in rows]

    async def expired_supplements(self, now: dt.datetime) -> list[str]:
        return await self._on_thread(self._expired_supplements, now)

    # --- partitions and group members ------------------------------------------------

    def _claim(self, topic: str, partition: int, owner: str) -> int:
        with transaction(self.conn):
            row = self.conn.execute(
                "INSERT INTO partition_owner (topic, partition, owner, epoch) VALUES (?, ?, ?, 1) "
                "ON CONFLICT (topic, partition) DO UPDATE SET owner = excluded.owner, "
                "epoch = epoch + 1 RETURNING epoch",
                (topic, partition, owner),
            ).fetchone()
        return int(row["epoch"])

    async def claim(self, topic: str, partition: int, owner: str) -> int:
        return await self._on_thread(self._claim, topic, partition, owner)

    def _remember_member(self, instance: str, group_id: str, member_id: str) -> None:
        with transaction(self.conn):
            self.conn.execute(
                "INSERT INTO group_member (instance, group_id, member_id) VALUES (?, ?, ?) "
                "ON CONFLICT (instance, group_id) DO UPDATE SET member_id = excluded.member_id",
                (instance, group_id, member_id),
            )

    async def remember_member(self, instance: str, group_id: str, member_id: str) -> None:
        await self._on_thread(self._remember_member, instance, group_id, member_id)

    def _previous_member(self, instance: str, group_id: str) -> str | None:
        row = self.conn.execute(
            "SELECT member_id FROM group_member WHERE instance = ? AND group_id = ?",
            (instance, group_id),
        ).fetchone()
        return None if row is None else str(row["member_id"])

    async def previous_member(self, instance: str, group_id: str) -> str | None:
        return await self._on_thread(self._previous_member, instance, group_id)

    # --- partition leases (gateway/leases.py) -----------------------------------------

    def _beat(self, instance: str, within: float, incarnation: str, joining: bool) -> list[str]:
        now = time.time()
        with transaction(self.conn):
            row = self.conn.execute(
                "SELECT incarnation FROM gateway_member WHERE instance = ?", (instance,)
            ).fetchone()
            if row is not None and not joining and row["incarnation"] != incarnation:
                raise ReplacedError(instance)
            self.conn.execute(
                "INSERT INTO gateway_member (instance, seen, incarnation) VALUES (?, ?, ?) "
                "ON CONFLICT (instance) DO UPDATE SET seen = excluded.seen, "
                "incarnation = excluded.incarnation",
                (instance, now, incarnation),
            )
        rows = self.conn.execute(
            "SELECT instance FROM gateway_member WHERE seen >= ? ORDER BY instance",
            (now - within,),
        ).fetchall()
        return [str(r["instance"]) for r in rows]

    async def beat(
        self, instance: str, within: float, *, incarnation: str = "", joining: bool = True
    ) -> list[str]:
        return await self._on_thread(self._beat, instance, within, incarnation, joining)

    def _take(self, topic: str, partition: int, instance: str, within: float) -> bool:
        with transaction(self.conn):
            row = self.conn.execute(
                "INSERT INTO partition_lease (topic, partition, holder) VALUES (?, ?, ?) "
                "ON CONFLICT (topic, partition) DO UPDATE SET holder = excluded.holder "
                "WHERE partition_lease.holder IS NULL OR partition_lease.holder = excluded.holder "
                "OR NOT EXISTS (SELECT 1 FROM gateway_member m "
                "WHERE m.instance = partition_lease.holder AND m.seen >= ?) "
                "RETURNING holder",
                (topic, partition, instance, time.time() - within),
            ).fetchone()
        return row is not None

    async def take(self, topic: str, partition: int, instance: str, within: float) -> bool:
        return await self._on_thread(self._take, topic, partition, instance, within)

    def _held(self, instance: str) -> set[tuple[str, int]]:
        rows = self.conn.execute(
            "SELECT topic, partition FROM partition_lease WHERE holder = ?", (instance,)
        ).fetchall()
        return {(str(r["topic"]), int(r["partition"])) for r in rows}

    async def held(self, instance: str) -> set[tuple[str, int]]:
        return await self._on_thread(self._held, instance)

    def _give_up(self, partitions: list[tuple[str, int]], instance: str) -> None:
        with transaction(self.conn):
            self.conn.executemany(
                "UPDATE partition_lease SET holder = NULL "
                "WHERE topic = ? AND partition = ? AND holder = ?",
                [(topic, partition, instance) for topic, partition in partitions],
            )

    async def give_up(self, partitions: Iterable[tuple[str, int]], instance: str) -> None:
        await self._on_thread(self._give_up, list(partitions), instance)

    def _leave(self, instance: str) -> None:
        with transaction(self.conn):
            self.conn.execute("DELETE FROM gateway_member WHERE instance = ?", (instance,))
            self.conn.execute(
                "UPDATE partition_lease SET holder = NULL WHERE holder = ?", (instance,)
            )

    async def leave(self, instance: str) -> None:
        await self._on_thread(self._leave, instance)

    def _save_offsets(self, instance: str, offsets: dict[tuple[str, int], int]) -> bool:
        saved = 0
        with transaction(self.conn):
            for (topic, partition), offset in offsets.items():
                saved += self.conn.execute(
                    "UPDATE partition_lease SET next_offset = ? "
                    "WHERE topic = ? AND partition = ? AND holder = ?",
                    (offset, topic, partition, instance),
                ).rowcount
        return saved == len(offsets)

    async def save_offsets(self, instance: str, offsets: Mapping[tuple[str, int], int]) -> bool:
        return await self._on_thread(self._save_offsets, instance, dict(offsets))

    def _offsets(self, partitions: set[tuple[str, int]]) -> dict[tuple[str, int], int]:
        rows = self.conn.execute(
            "SELECT topic, partition, next_offset FROM partition_lease "
            "WHERE next_offset IS NOT NULL"
        ).fetchall()
        found = {(str(r["topic"]), int(r["partition"])): int(r["next_offset"]) for r in rows}
        return {p: o for p, o in found.items() if p in partitions}

    async def offsets(self, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        return await self._on_thread(self._offsets, set(partitions))

    # --- applying events -------------------------------------------------------------

    def _apply_all(self, events: Sequence[PendingEvent], fence: Fence | None) -> list[Applied]:
        # BEGIN IMMEDIATE: the only writer from here to the commit, so the
        # claim read below stays the latest until then.
        with transaction(self.conn):
            if fence is not None:
                row = self.conn.execute(
                    "SELECT owner, epoch FROM partition_owner WHERE topic = ? AND partition = ?",
                    (fence.topic, fence.partition),
                ).fetchone()
                check_owner(fence, None if row is None else (row["owner"], int(row["epoch"])))
            event_ids = list(dict.fromkeys(e.event_id for e in events))
            done = {
                str(r["event_id"]): bytes(r["caused"])
                for r in self.conn.execute(
                    "SELECT event_id, caused FROM processed_events "
                    f"WHERE event_id IN ({_marks(len(event_ids))})",
                    event_ids,
                )
            }
            dossier_ids = list(dict.fromkeys(e.dossier_id for e in events))
            stored = {
                str(r["dossier_id"]): pb.Dossier.FromString(r["body"])
                for r in self.conn.execute(
                    f"SELECT dossier_id, body FROM dossiers "
                    f"WHERE dossier_id IN ({_marks(len(dossier_ids))})",
                    dossier_ids,
                )
            }
            plan = plan_batch(events, done, stored)
            for dossier, key in plan.inserts.values():
                self._insert(dossier, key, b"")
            if plan.saves:
                cursor = self.conn.executemany(
                    "UPDATE dossiers SET state = ?, supplement_due = ?, version = ?, body = ? "
                    "WHERE dossier_id = ? AND version = ?",
                    [
                        (*dossier_columns(dossier), dossier_id, expected)
                        for dossier_id, (dossier, expected) in plan.saves.items()
                    ],
                )
                if cursor.rowcount != len(plan.saves):
                    raise StaleDossierError(", ".join(plan.saves))
            self.conn.executemany(
                "INSERT INTO processed_events (event_id, caused) VALUES (?, ?)", plan.processed
            )
            return plan.results

    async def apply_all(
        self, events: Sequence[PendingEvent], *, fence: Fence | None = None
    ) -> list[Applied]:
        if not events:
            return []
        return await self._on_thread(self._apply_all, list(events), fence)

    async def apply(self, event: PendingEvent) -> Applied:
        return (await self.apply_all([event]))[0]
