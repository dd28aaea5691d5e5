"""SQLite for the registries: one file per service, WAL, explicit transactions.

WAL lets readers proceed while the single writer commits. A committed
transaction is in the WAL file before COMMIT returns, so it survives the
process being killed (-9): the OS still holds and writes the pages.
synchronous=NORMAL gives up durability only on power loss, which a simulator
on one machine does not model; FULL would cost an fsync per call.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def open_database(path: Path | str, schema: str) -> sqlite3.Connection:
    if str(path) != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    # autocommit off at the driver level (isolation_level=None): we issue
    # BEGIN IMMEDIATE ourselves, so a transaction is exactly what `transaction`
    # encloses and nothing commits behind our back.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute("PRAGMA busy_timeout=5000")
    conn.executescript(schema)
    return conn


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """All or nothing: any exception rolls back everything written inside."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


SEQUENCES_SCHEMA = """
CREATE TABLE IF NOT EXISTS sequences (
    name TEXT PRIMARY KEY,
    next INTEGER NOT NULL
);
"""


def next_serial(conn: sqlite3.Connection, name: str) -> int:
    """A per-name counter for document numbers; call inside a transaction so a
    refused request gives its number back."""
    conn.execute(
        "INSERT INTO sequences (name, next) VALUES (?, 1) "
        "ON CONFLICT(name) DO UPDATE SET next = next + 1",
        (name,),
    )
    value: int = conn.execute("SELECT next FROM sequences WHERE name = ?", (name,)).fetchone()[0]
    return value
