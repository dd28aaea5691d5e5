"""SQLite connections handed out bare, with explicit transactions: what the
gateway's SQLite store uses (the registries are on common.database). The
pragmas and their reasons live in common.database.connect_sqlite."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from common.database import connect_sqlite

__all__ = ["open_database", "transaction"]


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
