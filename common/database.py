"""A registry's store over SQLite or PostgreSQL: one transaction per unit of work.

A registry's rules are synchronous functions of ONE transaction (read, decide,
write, record the idempotent answer). That unit of work is handed to a
`Database`, which runs it on a worker thread, never on the event loop, inside
one transaction: committed if the work returns, rolled back if it raises.

- SQLite (a path, the default): one connection on one dedicated thread, WAL,
  BEGIN IMMEDIATE, so units of work run one at a time, as before.
- PostgreSQL (a `postgresql://` URL, common.database_url): psycopg 3's
  synchronous API with psycopg_pool's ConnectionPool, the units of work on a
  small thread pool. Sync and not psycopg's async API because the unit of
  work is synchronous rule code; the event loop only awaits its result. Any
  number of replicas may share one database: READ COMMITTED, so a transaction
  that loses a race to a concurrent one fails on a unique constraint (or as a
  deadlock or serialization failure), and is then run again as a whole: the
  second run sees what the first committed, so the rules answer it as they
  would have in sequence (a repeated request id finds the first answer).

SQL is written once with `?` placeholders and syntax both engines accept
(INSERT ... ON CONFLICT ... RETURNING, partial unique indexes, CAST, substr,
||); the PostgreSQL connection turns `?` into psycopg's `%s`. Where the
dialects truly differ, the store picks by `conn.dialect`, with a comment.
DDL is written for SQLite and translated (`Schema.portable`).
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

import psycopg
import structlog
from psycopg import errors as pg_errors
from psycopg.rows import RowMaker
from psycopg_pool import ConnectionPool

from common.database_url import is_postgres, redacted

log = structlog.get_logger("database")

T = TypeVar("T")
Dialect = Literal["sqlite", "postgres"]

# How often a unit of work that lost a race is run again before its error is
# let through. A race lost twice in a row is rare; five is generous.
DEFAULT_ATTEMPTS = 5

# A replica frozen mid-transaction (stopped, partitioned) must not hold its
# row locks for ever: PostgreSQL ends an idle transaction after this long. A
# unit of work never idles (it runs to its end on one thread), so only a
# stuck process hits it.
IDLE_IN_TRANSACTION_TIMEOUT = "10s"
# A lock not granted in this long fails the attempt (LockNotAvailable), which
# is retried like any lost race, instead of queueing behind a stuck holder.
LOCK_TIMEOUT = "5s"
# Units of work a PostgreSQL-backed registry runs at once (threads and pooled
# connections). A handful saturates 2 cores; more only queue on row locks.
DEFAULT_POOL_SIZE = 8


class Row(Protocol):
    """A result row, addressable by column name and by index (sqlite3.Row
    under SQLite, `PgRow` under PostgreSQL)."""

    def __getitem__(self, key: int | str, /) -> Any: ...
    def __iter__(self) -> Iterator[Any]: ...
    def __len__(self) -> int: ...
    def keys(self) -> list[str]: ...


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Row | None: ...
    def fetchall(self) -> Sequence[Row]: ...
    def __iter__(self) -> Iterator[Row]: ...


class Connection(Protocol):
    """The one transaction a unit of work runs in."""

    @property
    def dialect(self) -> Dialect: ...
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor: ...
    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        """Run `sql` once per row; returns the rows changed in all."""
        ...

    def copy_in(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """Bulk-load rows into `table` (PostgreSQL's COPY; inserts under SQLite)."""
        ...

    def savepoint(self) -> AbstractContextManager[None]:
        """A nested transaction: if its block raises, what the block wrote is
        undone and the unit of work may go on (PostgreSQL refuses every
        statement after an error until it is rolled back to a savepoint)."""
        ...


class Database(Protocol):
    @property
    def dialect(self) -> Dialect: ...
    async def run(self, work: Callable[[Connection], T], *, attempts: int = DEFAULT_ATTEMPTS) -> T:
        """`work` in one transaction on a worker thread; its result, or its error."""
        ...

    def run_sync(self, work: Callable[[Connection], T], *, attempts: int = DEFAULT_ATTEMPTS) -> T:
        """The same, for scripts and benchmarks that have no event loop."""
        ...

    def close(self) -> None: ...


class IntegrityError(Exception):
    """A constraint refused a write (either driver). `constraint` names it
    when the driver says (PostgreSQL does; SQLite does not)."""

    def __init__(self, message: str, constraint: str | None = None) -> None:
        super().__init__(message)
        self.constraint = constraint


class UniqueViolation(IntegrityError):
    """A unique or primary key already holds the value."""


class LostRace(Exception):
    """Raised by a store inside a unit of work when a write found the row no
    longer as the rules read it (a guarded UPDATE changed nothing): a
    concurrent transaction on another replica got there first. The unit of
    work is run again, and its rules then see what that one committed."""


@dataclass(frozen=True)
class Schema:
    """A store's DDL for each engine; every statement idempotent (IF NOT EXISTS)."""

    sqlite: str
    postgres: str

    @classmethod
    def portable(cls, ddl: str) -> Schema:
        """SQLite DDL and its PostgreSQL translation: a rowid alias (INTEGER
        PRIMARY KEY) becomes an identity column, INTEGER a BIGINT (SQLite's
        integers are 64-bit), BLOB a BYTEA, and TEXT compares byte by byte
        (COLLATE "C") as SQLite's does, so ORDER BY and BETWEEN agree."""
        postgres = re.sub(
            r"\bINTEGER PRIMARY KEY\b", "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", ddl
        )
        postgres = re.sub(r"\bINTEGER\b", "BIGINT", postgres)
        postgres = re.sub(r"\bBLOB\b", "BYTEA", postgres)
        postgres = re.sub(r"\bTEXT\b", 'TEXT COLLATE "C"', postgres)
        return cls(sqlite=ddl, postgres=postgres)

    def __add__(self, other: Schema) -> Schema:
        return Schema(self.sqlite + other.sqlite, self.postgres + other.postgres)


def open_database(
    location: str | Path, schema: Schema, *, pool_size: int = DEFAULT_POOL_SIZE
) -> Database:
    """The store a setting names (common.database_url), its schema created."""
    if is_postgres(location):
        return PostgresDatabase(str(location), schema, pool_size=pool_size)
    return SqliteDatabase(location, schema)


# --- SQLite -----------------------------------------------------------------
#
# WAL lets readers proceed while the single writer commits. A committed
# transaction is in the WAL file before COMMIT returns, so it survives the
# process being killed (-9): the OS still holds and writes the pages.
# synchronous=NORMAL gives up durability only on power loss, which a simulator
# on one machine does not model; FULL would cost an fsync per call.


def connect_sqlite(path: Path | str, ddl: str) -> sqlite3.Connection:
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    # autocommit off at the driver level (isolation_level=None): we issue
    # BEGIN IMMEDIATE ourselves, so a transaction is exactly the unit of work
    # and nothing commits behind our back.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.executescript(ddl)
    return conn


class SqliteConnection:
    dialect: Literal["sqlite"] = "sqlite"

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.raw = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        try:
            return self.raw.execute(sql, params)
        except sqlite3.IntegrityError as error:
            raise _sqlite_integrity(error) from error

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        try:
            # sqlite3 sums the rows each execution changed.
            return self.raw.executemany(sql, rows).rowcount
        except sqlite3.IntegrityError as error:
            raise _sqlite_integrity(error) from error

    def copy_in(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        marks = ",".join("?" * len(columns))
        self.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        self.raw.execute("SAVEPOINT nested")
        try:
            yield
        except BaseException:
            self.raw.execute("ROLLBACK TO nested")
            self.raw.execute("RELEASE nested")
            raise
        self.raw.execute("RELEASE nested")


def _sqlite_integrity(error: sqlite3.IntegrityError) -> IntegrityError:
    text = str(error)
    if text.startswith("UNIQUE constraint failed"):
        return UniqueViolation(text)
    return IntegrityError(text)


class SqliteDatabase:
    """One connection on one dedicated thread: units of work run one at a
    time, in the order they arrive, as SQLite has one writer anyway."""

    dialect: Literal["sqlite"] = "sqlite"

    def __init__(self, path: Path | str, schema: Schema) -> None:
        self.location = str(path)
        self._closed = False
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        self._conn = SqliteConnection(
            self._thread.submit(connect_sqlite, path, schema.sqlite).result()
        )

    def pragma(self, statement: str) -> None:
        """A connection setting (e.g. the page cache) outside any transaction."""
        self._thread.submit(self._conn.raw.execute, f"PRAGMA {statement}").result()

    def _transaction(self, work: Callable[[Connection], T]) -> T:
        raw = self._conn.raw
        raw.execute("BEGIN IMMEDIATE")
        try:
            result = work(self._conn)
        except BaseException:
            raw.execute("ROLLBACK")
            raise
        raw.execute("COMMIT")
        return result

    async def run(self, work: Callable[[Connection], T], *, attempts: int = DEFAULT_ATTEMPTS) -> T:
        # One writer: a unit of work cannot lose a race, so nothing is retried.
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._thread, self._transaction, work)

    def run_sync(self, work: Callable[[Connection], T], *, attempts: int = DEFAULT_ATTEMPTS) -> T:
        return self._thread.submit(self._transaction, work).result()

    def close(self) -> None:
        """Idempotent: a test may close what its fixture closes again."""
        if self._closed:
            return
        self._closed = True
        self._thread.submit(self._conn.raw.close).result()
        self._thread.shutdown()


# --- PostgreSQL -------------------------------------------------------------


class PgRow:
    """A PostgreSQL row addressable by name and index, as sqlite3.Row is."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: tuple[Any, ...], index: dict[str, int]) -> None:
        self._values = values
        self._index = index

    def __getitem__(self, key: int | str, /) -> Any:
        if isinstance(key, str):
            return self._values[self._index[key]]
        return self._values[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PgRow) and self._values == other._values

    def __hash__(self) -> int:
        return hash(self._values)

    def __repr__(self) -> str:
        return f"PgRow{self._values!r}"

    def keys(self) -> list[str]:
        return list(self._index)


def _pg_row_factory(cursor: psycopg.Cursor[Any]) -> RowMaker[PgRow]:
    index = {column.name: i for i, column in enumerate(cursor.description or ())}

    def make(values: Sequence[Any]) -> PgRow:
        return PgRow(tuple(values), index)

    return make


_PLACEHOLDER = re.compile(r"'[^']*'|\?|%")


@lru_cache(maxsize=2048)
def to_pyformat(sql: str) -> str:
    """`?` placeholders as psycopg's `%s`, a literal `%` doubled (psycopg
    reads `%` anywhere in a query with parameters); `?` in a string literal
    is left alone."""

    def replace(match: re.Match[str]) -> str:
        text = match.group(0)
        if text == "?":
            return "%s"
        return text.replace("%", "%%")

    return _PLACEHOLDER.sub(replace, sql)


class PgConnection:
    dialect: Literal["postgres"] = "postgres"

    def __init__(self, conn: psycopg.Connection[PgRow]) -> None:
        self.raw = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        # Always with a params tuple, even empty, so `%%` means `%` everywhere.
        try:
            return self.raw.execute(to_pyformat(sql), tuple(params))
        except pg_errors.IntegrityError as error:
            raise _pg_integrity(error) from error

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> int:
        # psycopg pipelines executemany (one round trip per batch, not per
        # row) and sums rowcount over the rows.
        try:
            with self.raw.cursor() as cursor:
                cursor.executemany(to_pyformat(sql), rows)
                return cursor.rowcount
        except pg_errors.IntegrityError as error:
            raise _pg_integrity(error) from error

    def copy_in(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        try:
            with (
                self.raw.cursor() as cursor,
                cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy,
            ):
                for row in rows:
                    copy.write_row(row)
        except pg_errors.IntegrityError as error:
            raise _pg_integrity(error) from error

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        # Inside the unit of work's transaction, psycopg's transaction() is a savepoint.
        with self.raw.transaction():
            yield


def _pg_integrity(error: pg_errors.IntegrityError) -> IntegrityError:
    kind = UniqueViolation if isinstance(error, pg_errors.UniqueViolation) else IntegrityError
    return kind(str(error).strip(), constraint=error.diag.constraint_name)


# Lost races: run the whole unit of work again. A unique violation under READ
# COMMITTED means a concurrent transaction committed a row this one's reads
# did not see; deadlocks and lock timeouts abort one of the contenders.
_LOST_RACE: tuple[type[BaseException], ...] = (
    LostRace,
    UniqueViolation,
    pg_errors.SerializationFailure,
    pg_errors.DeadlockDetected,
    pg_errors.LockNotAvailable,
)


def _read_committed(conn: psycopg.Connection[PgRow]) -> None:
    # PostgreSQL's default, said here because the retry above relies on it:
    # each statement sees what committed before it, so a rerun sees the winner.
    conn.isolation_level = psycopg.IsolationLevel.READ_COMMITTED


def _schema_lock_key(ddl: str) -> int:
    """One advisory lock per schema: replicas creating the same tables at
    once would otherwise race in PostgreSQL's catalog (CREATE TABLE IF NOT
    EXISTS is not safe against a concurrent identical one)."""
    return zlib.crc32(ddl.encode())


class PostgresDatabase:
    dialect: Literal["postgres"] = "postgres"

    def __init__(self, url: str, schema: Schema, *, pool_size: int = DEFAULT_POOL_SIZE) -> None:
        self.location = redacted(url)
        self._pool: ConnectionPool[psycopg.Connection[PgRow]] = ConnectionPool(
            url,
            min_size=1,
            max_size=pool_size,
            kwargs={
                # Transactions are opened explicitly (conn.transaction()).
                "autocommit": True,
                "row_factory": _pg_row_factory,
                "options": (
                    f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_TIMEOUT} "
                    f"-c lock_timeout={LOCK_TIMEOUT}"
                ),
            },
            configure=_read_committed,
            name=f"db-{self.location}",
            open=False,
        )
        self._pool.open(wait=True, timeout=30)
        self._threads = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="postgres")
        self._closed = threading.Event()
        key = _schema_lock_key(schema.postgres)

        def create(conn: Connection) -> None:
            conn.execute("SELECT pg_advisory_xact_lock(?)", (key,))
            assert isinstance(conn, PgConnection)
            # No parameters: psycopg may send several statements at once.
            conn.raw.execute(schema.postgres.encode())

        self.run_sync(create, attempts=1)

    def _transaction(self, work: Callable[[Connection], T], attempts: int) -> T:
        attempt = 1
        while True:
            try:
                with self._pool.connection() as raw, raw.transaction():
                    return work(PgConnection(raw))
            except _LOST_RACE as error:
                if attempt >= attempts:
                    raise
                log.debug("retrying after a lost race", attempt=attempt, error=str(error)[:200])
                attempt += 1

    async def run(self, work: Callable[[Connection], T], *, attempts: int = DEFAULT_ATTEMPTS) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._threads, self._transaction, work, attempts)

    def run_sync(self, work: Callable[[Connection], T], *, attempts: int = DEFAULT_ATTEMPTS) -> T:
        return self._transaction(work, attempts)

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._threads.shutdown()
        self._pool.close()
