"""Per-name counters for document numbers, on either engine.

The counter row is taken with an upsert that returns the new value: under
PostgreSQL the row's lock is held until the transaction ends, so replicas
numbering under one name take turns and never hand out the same number;
under SQLite the single writer already does. Call inside the unit of work, so
a refused request gives its number back.
"""

from __future__ import annotations

from common.database import Connection

SCHEMA = """
CREATE TABLE IF NOT EXISTS sequences (
    name TEXT PRIMARY KEY,
    next INTEGER NOT NULL
);
"""


def next_serial(conn: Connection, name: str) -> int:
    row = conn.execute(
        "INSERT INTO sequences (name, next) VALUES (?, 1) "
        "ON CONFLICT (name) DO UPDATE SET next = sequences.next + 1 "
        "RETURNING next",
        (name,),
    ).fetchone()
    assert row is not None  # an upsert with RETURNING returns its row
    value: int = row[0]
    return value
