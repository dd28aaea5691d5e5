"""Administration over a superuser's URL, the same for every server we run
(ours or a container): database names, creating and dropping databases,
waiting until a server accepts sessions."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable

import psycopg
from psycopg import sql

from databases.binaries import PostgresError

# PostgreSQL truncates longer identifiers silently; a database named by a
# truncated name would answer to a URL naming the long one nowhere.
MAX_NAME_BYTES = 63
_POLL_SECONDS = 0.05
_PROBE_CONNECT_SECONDS = 2


def check_database_name(name: str) -> None:
    if not name:
        raise ValueError("a database name must not be empty")
    if len(name.encode("utf-8")) > MAX_NAME_BYTES:
        raise ValueError(
            f"database name {name[:100]!r} is longer than PostgreSQL's {MAX_NAME_BYTES} bytes"
        )


def database_name_for(text: str, *, prefix: str = "") -> str:
    """A valid database name made from any text (a test's name): lower case,
    [a-z0-9_] only, at most MAX_NAME_BYTES bytes."""
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "db"
    return (prefix + slug)[:MAX_NAME_BYTES]


def create_database(admin_url: str, name: str) -> None:
    """Create it unless it exists; creators racing for one name all succeed."""
    check_database_name(name)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
        if exists.fetchone() is None:
            # Two creators at once: the loser sees a duplicate, which is fine.
            with contextlib.suppress(
                psycopg.errors.DuplicateDatabase, psycopg.errors.UniqueViolation
            ):
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(admin_url: str, name: str) -> None:
    """Drop it if it exists, ending its sessions first (no-op otherwise)."""
    check_database_name(name)
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def wait_until_accepting(
    url: str,
    *,
    timeout: float,
    what: str,
    exited: Callable[[], str | None] = lambda: None,
    details: Callable[[], str] = lambda: "",
) -> None:
    """Until a real session on `url` runs a query: the port opens before the
    server accepts sessions ("the database system is starting up").

    `exited()` says how the server ended if it did (then fail at once, not at
    the deadline); `details()` is appended to an error (a log's tail).
    """
    deadline = time.monotonic() + timeout
    last_error = "no attempt yet"
    while True:
        ended = exited()
        if ended is not None:
            raise PostgresError(f"{what} {ended} before it accepted connections" + details())
        try:
            with psycopg.connect(url, connect_timeout=_PROBE_CONNECT_SECONDS) as conn:
                conn.execute("SELECT 1")
            return
        except psycopg.OperationalError as exc:
            text = str(exc).strip()
            last_error = text.splitlines()[-1] if text else repr(exc)
        if time.monotonic() >= deadline:
            raise PostgresError(
                f"{what} did not accept connections within {timeout:g} s "
                f"(last: {last_error})" + details()
            )
        time.sleep(_POLL_SECONDS)
