"""common.database over PostgreSQL: psycopg 3's synchronous API with
psycopg_pool's ConnectionPool, the units of work on a small thread pool (the
module docstring of common.database says why, and what both engines share).
Imported only when a setting names a `postgresql://` URL."""

from __future__ import annotations

import asyncio
import re
import threading
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import lru_cache
from typing import Any, Literal

import psycopg
import structlog
from psycopg import errors as pg_errors
from psycopg.rows import RowMaker
from psycopg_pool import ConnectionPool, PoolTimeout

from common.database import (
    CONNECT_TIMEOUT_SECONDS,
    DEFAULT_ATTEMPTS,
    DEFAULT_POOL_SIZE,
    Connection,
    Cursor,
    DatabaseUnavailable,
    IntegrityError,
    LostRace,
    Schema,
    T,
    UniqueViolation,
)
from common.database_url import redacted
from common.errors import Unavailable

log = structlog.get_logger("database")

# A replica frozen mid-transaction (stopped, partitioned) must not hold its
# row locks for ever: PostgreSQL ends an idle transaction after this long. A
# unit of work never idles (it runs to its end on one thread), so only a
# stuck process hits it.
IDLE_IN_TRANSACTION_TIMEOUT = "10s"
# A lock not granted in this long fails the attempt (LockNotAvailable), which
# is retried like any lost race, instead of queueing behind a stuck holder.
LOCK_TIMEOUT = "5s"


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


# One advisory lock for creating any registry's schema: replicas creating the
# same tables at once would otherwise race in PostgreSQL's catalog (CREATE
# TABLE IF NOT EXISTS is not safe against a concurrent identical one). A
# constant, not derived from the DDL, so replicas of two versions also wait.
_SCHEMA_LOCK_KEY = zlib.crc32(b"lienthong registry schema")


class PostgresDatabase:
    dialect: Literal["postgres"] = "postgres"

    def __init__(
        self,
        url: str,
        schema: Schema,
        *,
        pool_size: int = DEFAULT_POOL_SIZE,
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
    ) -> None:
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
        try:
            self._pool.open(wait=True, timeout=connect_timeout)
        except PoolTimeout:
            self._pool.close()
            raise DatabaseUnavailable(
                f"cannot connect to {self.location} within {connect_timeout:g} s: "
                "is the server running, and does the database exist?"
            ) from None
        self._threads = ThreadPoolExecutor(max_workers=pool_size, thread_name_prefix="postgres")
        self._closed = threading.Event()

        def create(conn: Connection) -> None:
            conn.execute("SELECT pg_advisory_xact_lock(?)", (_SCHEMA_LOCK_KEY,))
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
                    if isinstance(error, IntegrityError):
                        # The same key refused every time: not contention
                        # but rules that did not check it (a bug: INTERNAL).
                        raise
                    raise self._unavailable(error) from error
                log.debug("retrying after a lost race", attempt=attempt, error=str(error)[:200])
                attempt += 1
            except (psycopg.OperationalError, PoolTimeout) as error:
                # The server went away, restarts, or every connection is
                # busy: not the request's fault, and nothing was committed.
                raise self._unavailable(error) from error

    def _unavailable(self, error: BaseException) -> Unavailable:
        """What the caller is told: UNAVAILABLE (retryable), not INTERNAL; the
        cause goes to the log, not to the client."""
        log.warning("database unavailable", database=self.location, error=str(error)[:300])
        return Unavailable(
            "the registry's database is unavailable or too contended just now; "
            "nothing was changed, send the request again",
            reason="DATABASE_UNAVAILABLE",
        )

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
