"""A registry's store over SQLite or PostgreSQL: one transaction per unit of work.

A registry's rules are synchronous functions of ONE transaction (read, decide,
write, record the idempotent answer). That unit of work is handed to a
`Database`, which runs it on a worker thread, never on the event loop, inside
one transaction: committed if the work returns, rolled back if it raises.

- SQLite (a path, the default): one connection on one dedicated thread, WAL,
  BEGIN IMMEDIATE, so units of work run one at a time, as before.
- PostgreSQL (a `postgresql://` URL, common.database_url;
  common/database_postgres.py, imported only then): psycopg 3's
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
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

from common.database_url import is_postgres

T = TypeVar("T")
Dialect = Literal["sqlite", "postgres"]

# How often a unit of work that lost a race is run again before its error is
# let through. A race lost twice in a row is rare; five is generous.
DEFAULT_ATTEMPTS = 5

# Units of work a PostgreSQL-backed registry runs at once (threads and pooled
# connections). A handful saturates 2 cores; more only queue on row locks.
DEFAULT_POOL_SIZE = 8
# How long opening waits for a first connection before saying it cannot.
CONNECT_TIMEOUT_SECONDS = 30.0


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


class DatabaseUnavailable(Exception):
    """The database a setting names cannot be reached (said for a person)."""


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
    location: str | Path,
    schema: Schema,
    *,
    pool_size: int = DEFAULT_POOL_SIZE,
    connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
) -> Database:
    """The store a setting names (common.database_url), its schema created.
    DatabaseUnavailable if a PostgreSQL server does not answer in time."""
    if is_postgres(location):
        # Imported here: psycopg and its pool take ~0.2 s to import, which
        # every process on SQLite (the default) would pay at each start.
        from common.database_postgres import PostgresDatabase  # noqa: PLC0415

        return PostgresDatabase(
            str(location), schema, pool_size=pool_size, connect_timeout=connect_timeout
        )
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
