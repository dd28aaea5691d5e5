"""The saga store in a PostgreSQL database: for gateways on any number of hosts.

The same tables as gateway/store_sqlite.py in PostgreSQL's dialect, reached
through psycopg 3's async driver and a connection pool: every call awaits
the server, none blocks the event loop. Any number of gateways may open the
store at once: the schema is created under an advisory lock, since two
concurrent CREATE TABLE IF NOT EXISTS of one table can both pass the check
and one then fails on the catalog's unique index.

Each operation is one transaction at READ COMMITTED, PostgreSQL's default.
SQLite's single writer gave the invariants below for free; here each holds
as follows.

- The fence (a batch is stored only under the latest claim of its
  partition). The batch's transaction first reads its partition's claim FOR
  SHARE and holds that row lock to its commit; a claim is an UPDATE of that
  row, so it waits for every batch in flight under the old claim to commit
  (or roll back), and a batch that reads the claim after it sees the new
  epoch (a FOR SHARE read waiting on a claim re-reads the row once the claim
  commits) and stores nothing.
- The version check (a stale writer of one dossier changes nothing). Each
  dossier is written with UPDATE ... WHERE version = the version read; a
  concurrent writer's UPDATE waits for the first to commit, re-checks the
  condition on the new row, matches nothing, and its batch is rolled back
  (StaleDossierError).
- An event applied once across gateways. processed_events' primary key:
  two transactions applying one event both insert its row; the second waits
  for the first, then fails on the key and rolls back whole
  (StaleDossierError); retried, or redelivered, it finds the event processed
  and re-sends what the first caused. A dossier recorded from its event by
  two at once fails the same way on the dossiers' key.
- Submit's idempotency key under two concurrent submits. The insert is
  ON CONFLICT (idempotency_key) DO NOTHING: the second waits for the first
  to commit, inserts nothing, and then reads the winner's dossier (at READ
  COMMITTED each statement sees what committed before it), so both get one
  dossier; a different declaration under the key is refused as ever.

A gateway frozen inside a transaction holds its locks only for the session
timeouts of gateway/config.py's SessionTimeouts, set on every connection.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager

import psycopg
import psycopg_pool
import structlog
from psycopg import errors as pg_errors
from psycopg.rows import TupleRow

from common.database_url import redacted
from gateway.config import SessionTimeouts
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
    fingerprint     BYTEA NOT NULL,
    kind            INTEGER NOT NULL,
    state           INTEGER NOT NULL,
    supplement_due  TEXT,
    version         BIGINT NOT NULL,
    body            BYTEA NOT NULL
);
CREATE INDEX IF NOT EXISTS dossiers_waiting ON dossiers (state, supplement_due);
-- applied_at: when the event was applied, by the server's clock, which every
-- gateway shares; evidence of when work happened (a log line can be written
-- late: a gateway frozen after its commit logs the batch once it runs again).
CREATE TABLE IF NOT EXISTS processed_events (
    event_id   TEXT PRIMARY KEY,
    caused     BYTEA NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);
CREATE TABLE IF NOT EXISTS partition_owner (
    topic     TEXT NOT NULL,
    partition INTEGER NOT NULL,
    owner     TEXT NOT NULL,
    epoch     BIGINT NOT NULL,
    PRIMARY KEY (topic, partition)
);
CREATE TABLE IF NOT EXISTS group_member (
    instance  TEXT NOT NULL,
    group_id  TEXT NOT NULL,
    member_id TEXT NOT NULL,
    PRIMARY KEY (instance, group_id)
);
CREATE TABLE IF NOT EXISTS gateway_member (
    instance    TEXT PRIMARY KEY,
    seen        DOUBLE PRECISION NOT NULL,
    incarnation TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS partition_lease (
    topic       TEXT NOT NULL,
    partition   INTEGER NOT NULL,
    holder      TEXT,
    next_offset BIGINT,
    PRIMARY KEY (topic, partition)
);
CREATE TABLE IF NOT EXISTS supplements (
    dossier_id      TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    fingerprint     BYTEA NOT NULL,
    PRIMARY KEY (dossier_id, idempotency_key)
);
-- seq orders the relay's reads; two gateways' rows may commit out of seq
-- order, which is harmless: the relay reads every unpublished row each
-- pass, never "after the last seq seen".
CREATE TABLE IF NOT EXISTS outbox (
    seq          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id     TEXT NOT NULL UNIQUE,
    topic        TEXT NOT NULL,
    dossier_id   TEXT NOT NULL,
    ce_type      TEXT NOT NULL,
    ce_time      TEXT NOT NULL,
    body         BYTEA NOT NULL,
    stored_at    DOUBLE PRECISION NOT NULL,
    published_at DOUBLE PRECISION
);
CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_published ON outbox (published_at)
    WHERE published_at IS NOT NULL;
"""

# Any 64-bit number the gateways agree on: the advisory lock the schema is
# created under.
SCHEMA_LOCK = 0x6C69656E74686F6E  # "lienthon"

# Connections per store (per gateway process): the API's calls and a batch
# per partition held at once; more would only queue at the server's locks.
POOL_SIZE = 8
# How long an operation waits for a connection of the pool, and the pool's
# first connection at open (the server unreachable: the gateway exits, its
# supervisor starts it again).
POOL_TIMEOUT_SECONDS = 10.0


def session_options(timeouts: SessionTimeouts) -> str:
    """The libpq `options` that set the timeouts on each session (ms)."""

    def ms(seconds: float) -> int:
        return max(1, round(seconds * 1000))

    return (
        f"-c idle_in_transaction_session_timeout={ms(timeouts.idle_in_transaction_seconds)} "
        f"-c lock_timeout={ms(timeouts.lock_seconds)} "
        f"-c statement_timeout={ms(timeouts.statement_seconds)}"
    )


Connection = psycopg.AsyncConnection[TupleRow]


class PostgresSagaStore:
    """gateway.store.SagaStore on a PostgreSQL database; open with `await open(url)`."""

    def __init__(self, pool: psycopg_pool.AsyncConnectionPool[Connection]) -> None:
        self.pool = pool

    @classmethod
    async def open(
        cls,
        url: str,
        timeouts: SessionTimeouts | None = None,
        *,
        pool_size: int = POOL_SIZE,
        pool_timeout: float = POOL_TIMEOUT_SECONDS,
    ) -> PostgresSagaStore:
        pool: psycopg_pool.AsyncConnectionPool[Connection] = psycopg_pool.AsyncConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            # Autocommit: a read is one statement; a transaction is what
            # `conn.transaction()` encloses, and nothing else.
            kwargs={"autocommit": True, "options": session_options(timeouts or SessionTimeouts())},
            timeout=pool_timeout,
            open=False,
            name=f"saga store {redacted(url)}",
        )
        try:
            await pool.open(wait=True, timeout=pool_timeout)
            async with pool.connection() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                await conn.execute(SCHEMA.encode())
        except BaseException:
            await pool.close()
            raise
        return cls(pool)

    async def close(self) -> None:
        await self.pool.close()

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[Connection]:
        """A connection of the pool; the server away, or a lock or statement
        past its timeout, is UNAVAILABLE (see `store_unavailable`)."""
        if self.pool.closed:
            raise StoreClosedError("the saga store is closed")
        try:
            async with self.pool.connection() as conn:
                yield conn
        except pg_errors.TransactionRollback:
            raise  # a deadlock: a concurrent writer (apply_all says so)
        except (psycopg.OperationalError, psycopg_pool.PoolTimeout) as error:
            log.warning("saga store unavailable", error=str(error).splitlines()[0])
            raise store_unavailable() from error

    # --- dossiers and the outbox -----------------------------------------------------

    @staticmethod
    async def _store_event(conn: Connection, topic: str, event: Event) -> None:
        # An event id already there is the same event: keep the first, with its time.
        await conn.execute(
            "INSERT INTO outbox (event_id, topic, dossier_id, ce_type, ce_time, body, stored_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING",
            (*event_columns(topic, event), time.time()),
        )

    async def submit(
        self,
        idempotency_key: str,
        print_: bytes,
        dossier: pb.Dossier,
        announce: Callable[[pb.Dossier], Announcement],
    ) -> pb.Dossier:
        async with self._connection() as conn, conn.transaction():
            state, due, version, body = dossier_columns(dossier)
            inserted = await conn.execute(
                "INSERT INTO dossiers (dossier_id, idempotency_key, fingerprint, kind, state, "
                "supplement_due, version, body) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (idempotency_key) DO NOTHING",
                (
                    dossier.dossier_id,
                    idempotency_key,
                    print_,
                    dossier.kind,
                    state,
                    due,
                    version,
                    body,
                ),
            )
            if inserted.rowcount == 1:
                await self._store_event(conn, *announce(dossier))
                return dossier
            # The key's dossier, committed by an earlier (or concurrent) submit.
            row = await (
                await conn.execute(
                    "SELECT fingerprint, body FROM dossiers WHERE idempotency_key = %s",
                    (idempotency_key,),
                )
            ).fetchone()
            assert row is not None  # the conflict was on this key, and rows are never deleted
            stored = repeated_submission(row[0], row[1], print_)
            if announce_again(stored):
                await self._store_event(conn, *announce(stored))
            return stored

    async def unpublished(
        self,
        *,
        event_ids: Sequence[str] | None = None,
        stored_before: float | None = None,
        limit: int = 1000,
    ) -> list[OutboxRecord]:
        sql = f"SELECT {OUTBOX_COLUMNS} FROM outbox WHERE published_at IS NULL"
        args: list[object] = []
        if event_ids is not None:
            sql += " AND event_id = ANY(%s)"
            args.append(list(event_ids))
        if stored_before is not None:
            sql += " AND stored_at < %s"
            args.append(stored_before)
        sql += " ORDER BY seq LIMIT %s"
        args.append(limit)
        async with self._connection() as conn:
            rows = await (await conn.execute(sql.encode(), args)).fetchall()
        return [outbox_record(row) for row in rows]

    async def mark_published(self, seqs: Sequence[int]) -> None:
        if not seqs:
            return
        async with self._connection() as conn:
            await conn.execute(
                "UPDATE outbox SET published_at = %s WHERE seq = ANY(%s) AND published_at IS NULL",
                (time.time(), list(seqs)),
            )

    async def prune_published(self, before: float) -> int:
        async with self._connection() as conn:
            cursor = await conn.execute("DELETE FROM outbox WHERE published_at < %s", (before,))
        return int(cursor.rowcount)

    @staticmethod
    async def _supplement_print(
        conn: Connection, dossier_id: str, idempotency_key: str
    ) -> bytes | None:
        row = await (
            await conn.execute(
                "SELECT fingerprint FROM supplements "
                "WHERE dossier_id = %s AND idempotency_key = %s",
                (dossier_id, idempotency_key),
            )
        ).fetchone()
        return None if row is None else bytes(row[0])

    async def supplement_accepted(
        self, dossier_id: str, idempotency_key: str, print_: bytes
    ) -> bool:
        async with self._connection() as conn:
            stored = await self._supplement_print(conn, dossier_id, idempotency_key)
        return repeated_supplement(stored, print_)

    async def accept_supplement(
        self, dossier_id: str, idempotency_key: str, print_: bytes, announcement: Announcement
    ) -> None:
        async with self._connection() as conn, conn.transaction():
            # Two at once with one key: the second waits for the first's
            # commit, inserts nothing, then checks the first's print.
            inserted = await conn.execute(
                "INSERT INTO supplements (dossier_id, idempotency_key, fingerprint) "
                "VALUES (%s, %s, %s) ON CONFLICT (dossier_id, idempotency_key) DO NOTHING",
                (dossier_id, idempotency_key, print_),
            )
            if inserted.rowcount != 1:
                repeated_supplement(
                    await self._supplement_print(conn, dossier_id, idempotency_key), print_
                )
            await self._store_event(conn, *announcement)

    async def load(self, dossier_id: str) -> pb.Dossier | None:
        async with self._connection() as conn:
            row = await (
                await conn.execute("SELECT body FROM dossiers WHERE dossier_id = %s", (dossier_id,))
            ).fetchone()
        return None if row is None else pb.Dossier.FromString(row[0])

    async def version(self, dossier_id: str) -> int | None:
        async with self._connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT version FROM dossiers WHERE dossier_id = %s", (dossier_id,)
                )
            ).fetchone()
        return None if row is None else int(row[0])

    async def expired_supplements(self, now: dt.datetime) -> list[str]:
        async with self._connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT dossier_id FROM dossiers WHERE state = %s AND supplement_due < %s",
                    (pb.DOSSIER_STATE_NEEDS_SUPPLEMENT, now.isoformat()),
                )
            ).fetchall()
        return [str(r[0]) for r in rows]

    # --- partitions and group members ------------------------------------------------

    async def claim(self, topic: str, partition: int, owner: str) -> int:
        async with self._connection() as conn:
            # Waits for the batches in flight under the old claim (they hold
            # the row FOR SHARE) to end; two first claims at once both land,
            # the second as an update.
            row = await (
                await conn.execute(
                    "INSERT INTO partition_owner (topic, partition, owner, epoch) "
                    "VALUES (%s, %s, %s, 1) ON CONFLICT (topic, partition) DO UPDATE "
                    "SET owner = EXCLUDED.owner, epoch = partition_owner.epoch + 1 "
                    "RETURNING epoch",
                    (topic, partition, owner),
                )
            ).fetchone()
        assert row is not None
        return int(row[0])

    async def remember_member(self, instance: str, group_id: str, member_id: str) -> None:
        async with self._connection() as conn:
            await conn.execute(
                "INSERT INTO group_member (instance, group_id, member_id) VALUES (%s, %s, %s) "
                "ON CONFLICT (instance, group_id) DO UPDATE SET member_id = EXCLUDED.member_id",
                (instance, group_id, member_id),
            )

    async def previous_member(self, instance: str, group_id: str) -> str | None:
        async with self._connection() as conn:
            row = await (
                await conn.execute(
                    "SELECT member_id FROM group_member WHERE instance = %s AND group_id = %s",
                    (instance, group_id),
                )
            ).fetchone()
        return None if row is None else str(row[0])

    # --- partition leases (gateway/leases.py) -----------------------------------------
    # "Seen" is the server's clock, which every host shares.

    async def beat(
        self, instance: str, within: float, *, incarnation: str = "", joining: bool = True
    ) -> list[str]:
        async with self._connection() as conn, conn.transaction():
            row = await (
                await conn.execute(
                    "SELECT incarnation FROM gateway_member WHERE instance = %s FOR UPDATE",
                    (instance,),
                )
            ).fetchone()
            if row is not None and not joining and row[0] != incarnation:
                raise ReplacedError(instance)
            await conn.execute(
                "INSERT INTO gateway_member (instance, seen, incarnation) "
                "VALUES (%s, extract(epoch FROM clock_timestamp()), %s) "
                "ON CONFLICT (instance) DO UPDATE "
                "SET seen = EXCLUDED.seen, incarnation = EXCLUDED.incarnation",
                (instance, incarnation),
            )
            rows = await (
                await conn.execute(
                    "SELECT instance FROM gateway_member "
                    "WHERE seen >= extract(epoch FROM clock_timestamp()) - %s ORDER BY instance",
                    (within,),
                )
            ).fetchall()
        return [str(r[0]) for r in rows]

    async def take(self, topic: str, partition: int, instance: str, within: float) -> bool:
        async with self._connection() as conn:
            row = await (
                await conn.execute(
                    "INSERT INTO partition_lease AS l (topic, partition, holder) "
                    "VALUES (%s, %s, %s) ON CONFLICT (topic, partition) "
                    "DO UPDATE SET holder = EXCLUDED.holder "
                    "WHERE l.holder IS NULL OR l.holder = EXCLUDED.holder OR NOT EXISTS ("
                    "SELECT 1 FROM gateway_member m WHERE m.instance = l.holder "
                    "AND m.seen >= extract(epoch FROM clock_timestamp()) - %s) "
                    "RETURNING l.holder",
                    (topic, partition, instance, within),
                )
            ).fetchone()
        return row is not None

    async def held(self, instance: str) -> set[tuple[str, int]]:
        async with self._connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT topic, partition FROM partition_lease WHERE holder = %s", (instance,)
                )
            ).fetchall()
        return {(str(r[0]), int(r[1])) for r in rows}

    async def give_up(self, partitions: Iterable[tuple[str, int]], instance: str) -> None:
        async with self._connection() as conn, conn.cursor() as cursor:
            await cursor.executemany(
                "UPDATE partition_lease SET holder = NULL "
                "WHERE topic = %s AND partition = %s AND holder = %s",
                [(topic, partition, instance) for topic, partition in partitions],
            )

    async def leave(self, instance: str) -> None:
        async with self._connection() as conn:
            await conn.execute("DELETE FROM gateway_member WHERE instance = %s", (instance,))
            await conn.execute(
                "UPDATE partition_lease SET holder = NULL WHERE holder = %s", (instance,)
            )

    async def save_offsets(self, instance: str, offsets: Mapping[tuple[str, int], int]) -> bool:
        saved = 0
        async with self._connection() as conn:
            for (topic, partition), offset in offsets.items():
                cursor = await conn.execute(
                    "UPDATE partition_lease SET next_offset = %s "
                    "WHERE topic = %s AND partition = %s AND holder = %s",
                    (offset, topic, partition, instance),
                )
                saved += cursor.rowcount
        return saved == len(offsets)

    async def offsets(self, partitions: Iterable[tuple[str, int]]) -> dict[tuple[str, int], int]:
        wanted = set(partitions)
        async with self._connection() as conn:
            rows = await (
                await conn.execute(
                    "SELECT topic, partition, next_offset FROM partition_lease "
                    "WHERE next_offset IS NOT NULL"
                )
            ).fetchall()
        found = {(str(r[0]), int(r[1])): int(r[2]) for r in rows}
        return {p: o for p, o in found.items() if p in wanted}

    # --- applying events -------------------------------------------------------------

    async def apply_all(
        self, events: Sequence[PendingEvent], *, fence: Fence | None = None
    ) -> list[Applied]:
        if not events:
            return []
        try:
            async with self._connection() as conn, conn.transaction():
                return await self._apply_all(conn, events, fence)
        except (pg_errors.UniqueViolation, pg_errors.DeadlockDetected) as error:
            # Another gateway applied one of these events, or recorded one of
            # these dossiers, first: nothing of this batch is stored.
            raise StaleDossierError(str(error).splitlines()[0]) from error

    async def _apply_all(
        self, conn: Connection, events: Sequence[PendingEvent], fence: Fence | None
    ) -> list[Applied]:
        if fence is not None:
            # FOR SHARE, held to the commit: a claim of this partition waits
            # for this batch, and this batch never commits under a claim
            # that is no longer the latest.
            row = await (
                await conn.execute(
                    "SELECT owner, epoch FROM partition_owner "
                    "WHERE topic = %s AND partition = %s FOR SHARE",
                    (fence.topic, fence.partition),
                )
            ).fetchone()
            check_owner(fence, None if row is None else (str(row[0]), int(row[1])))
        event_ids = list(dict.fromkeys(e.event_id for e in events))
        done = {
            str(r[0]): bytes(r[1])
            for r in await (
                await conn.execute(
                    "SELECT event_id, caused FROM processed_events WHERE event_id = ANY(%s)",
                    (event_ids,),
                )
            ).fetchall()
        }
        dossier_ids = list(dict.fromkeys(e.dossier_id for e in events))
        stored = {
            str(r[0]): pb.Dossier.FromString(r[1])
            for r in await (
                await conn.execute(
                    "SELECT dossier_id, body FROM dossiers WHERE dossier_id = ANY(%s)",
                    (dossier_ids,),
                )
            ).fetchall()
        }
        plan = plan_batch(events, done, stored)
        # One statement per table, whatever the batch's size: arrays unnested.
        if plan.inserts:
            rows = [
                (dossier.dossier_id, key, b"", dossier.kind, *dossier_columns(dossier))
                for dossier, key in plan.inserts.values()
            ]
            await conn.execute(
                "INSERT INTO dossiers (dossier_id, idempotency_key, fingerprint, kind, state, "
                "supplement_due, version, body) SELECT * FROM unnest("
                "%s::text[], %s::text[], %s::bytea[], %s::int[], %s::int[], %s::text[], "
                "%s::bigint[], %s::bytea[])",
                [list(column) for column in zip(*rows, strict=True)],
            )
        if plan.saves:
            # In the dossiers' order, so that two writers of the same
            # dossiers lock them in the same order.
            changes = [
                (dossier_id, expected, *dossier_columns(dossier))
                for dossier_id, (dossier, expected) in sorted(plan.saves.items())
            ]
            updated = await conn.execute(
                "UPDATE dossiers AS d SET state = v.state, supplement_due = v.due, "
                "version = v.version, body = v.body FROM unnest("
                "%s::text[], %s::bigint[], %s::int[], %s::text[], %s::bigint[], %s::bytea[]"
                ") AS v(dossier_id, expected, state, due, version, body) "
                "WHERE d.dossier_id = v.dossier_id AND d.version = v.expected",
                [list(column) for column in zip(*changes, strict=True)],
            )
            if updated.rowcount != len(changes):
                raise StaleDossierError(", ".join(plan.saves))
        ids, caused = zip(*plan.processed, strict=True) if plan.processed else ((), ())
        if ids:
            await conn.execute(
                "INSERT INTO processed_events (event_id, caused) "
                "SELECT * FROM unnest(%s::text[], %s::bytea[])",
                (list(ids), list(caused)),
            )
        return plan.results

    async def apply(self, event: PendingEvent) -> Applied:
        return (await self.apply_all([event]))[0]
