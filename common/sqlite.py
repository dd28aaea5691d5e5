"""SQLite connections handed out bare: what the registries not yet on
common.database (insurance, health) still use. The pragmas and their reasons
live in common.database.connect_sqlite; new code uses common.database."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from common.database import connect_sqlite
from common.sequences import SCHEMA as SEQUENCES_SCHEMA

__all__ = ["SEQUENCES_SCHEMA", "next_serial", "open_database", "transaction"]


def open_database(path: Path | str, schema: str) -> sqlite3.Connection:
    return connect_sqlite(path, schema)


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
