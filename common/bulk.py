"""Bulk loads that keep what is stored: insert the rows whose keys are new.

A seed stream may be replayed, so a row whose primary or unique key is
already stored is left as it is and not counted; the caller compares the
count with what it sent and only then looks for real conflicts.

- SQLite: one prepared INSERT ... ON CONFLICT DO NOTHING run per row; the
  single local writer makes that fast already.
- PostgreSQL: a statement per row costs a round trip's worth of work each,
  even pipelined. The rows are streamed with COPY into a temporary table
  (no keys, no indexes), then moved with one INSERT ... SELECT ... ON
  CONFLICT DO NOTHING, whose row count is the rows added.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from common.database import Connection


def insert_new(
    conn: Connection, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> int:
    """Insert `rows` into `table`, skipping those whose keys are stored
    (or repeated earlier in `rows`); returns the rows added. Call inside the
    unit of work: on an error nothing of it stays."""
    names = ", ".join(columns)
    if conn.dialect == "sqlite":
        marks = ",".join("?" * len(columns))
        return conn.executemany(
            f"INSERT INTO {table} ({names}) VALUES ({marks}) ON CONFLICT DO NOTHING", rows
        )
    staging = f"incoming_{table}"
    # The staging table has the columns' types (and collation) but none of the
    # table's constraints, so COPY never stops on a key; dropped at the end,
    # or with the transaction if anything fails.
    conn.execute(f"CREATE TEMPORARY TABLE {staging} AS SELECT {names} FROM {table} WITH NO DATA")
    conn.copy_in(staging, columns, rows)
    added = conn.execute(
        f"INSERT INTO {table} ({names}) SELECT {names} FROM {staging} ON CONFLICT DO NOTHING"
    ).rowcount
    conn.execute(f"DROP TABLE {staging}")
    return added
