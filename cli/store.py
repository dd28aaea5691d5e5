"""Where a stack's processes keep their records: `--store sqlite|postgres|URL`.

- `sqlite` (the default): a SQLite file per process kind in the data
  directory, as on one host.
- `postgres`: a PostgreSQL server of the stack's own, started in
  DATA_DIR/postgres the way brokers/ starts Kafka (databases/postgres.py),
  first of all components and stopped last.
- `postgresql://user[:password]@host:port/db`: a server we do not own. The
  stack creates its databases there if they are missing and never drops one.

Either way PostgreSQL holds one database per kind of process (the gateways'
saga store, each registry's records), named `<prefix>_<kind>` (the prefix
is the stack's topic prefix, `lienthong`), so a shared server is not
clobbered; every process of a kind (N gateways, M replicas of a registry) is
given the same URL in its LIENTHONG_<KIND>_DB.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from common.database_url import is_postgres, redacted

if TYPE_CHECKING:
    from databases.postgres import PostgresServer

SQLITE = "sqlite"
POSTGRES = "postgres"
STORE_CHOICES = (SQLITE, POSTGRES)
# The gateway's saga store and each registry's records: one database each.
GATEWAY_KIND = "gateway"
# Where the server of `--store postgres` keeps its files, in the data directory.
POSTGRES_DIR = "postgres"


class StoreError(ValueError):
    """A --store value that names no store, or a server that would not serve."""


def check_store(value: str) -> str:
    """The --store value if it is one (sqlite, postgres or a postgresql:// URL)."""
    if value in STORE_CHOICES or is_postgres(value):
        return value
    raise StoreError(
        f"--store: expected sqlite, postgres or a postgresql://user@host:port/db URL, "
        f"got {value[:100]!r}"
    )


def with_database(url: str, name: str) -> str:
    """The same server, user and options, another database."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def create_database_at(url: str, name: str) -> str:
    """Create database `name` on the server `url` names unless it exists
    (several stacks or processes may race: the loser's error is ignored);
    never drops anything. Returns the new database's URL."""
    import psycopg  # noqa: PLC0415  (only a PostgreSQL store needs the driver)
    from psycopg import errors, sql  # noqa: PLC0415

    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=10) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if exists is None:
                with contextlib.suppress(errors.DuplicateDatabase, errors.UniqueViolation):
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise StoreError(f"PostgreSQL at {redacted(url)}: {first}") from None
    return with_database(url, name)


class StackStore:
    """The store of one stack: SQLite files, or PostgreSQL databases (ours or a given server's)."""

    def __init__(self, choice: str, *, data_dir: Path, prefix: str) -> None:
        self.choice = check_store(choice)
        self.data_dir = data_dir
        self.prefix = prefix
        self.server: PostgresServer | None = None
        self._urls: dict[str, str] = {}

    @property
    def server_dir(self) -> Path:
        """Where our server (`postgres`) keeps its files and its log."""
        return self.data_dir / POSTGRES_DIR

    @property
    def shared(self) -> bool:
        """Whether processes on many hosts can share it (PostgreSQL)."""
        return self.choice != SQLITE

    def describe(self) -> str:
        """For stack.json and people: sqlite, postgres (ours) or the given URL, redacted."""
        if self.choice == SQLITE:
            return SQLITE
        if self.server is not None:
            return f"postgres (ours: {redacted(self.server.url('postgres'))})"
        return redacted(self.choice)

    def start(self, kinds: tuple[str, ...]) -> None:
        """Start our server (`postgres`) and make sure every kind's database exists."""
        if self.choice == SQLITE:
            return
        if self.choice == POSTGRES:
            from databases.postgres import PostgresServer  # noqa: PLC0415

            self.server = PostgresServer(self.server_dir)
            try:
                self.server.start()
            except Exception as exc:  # the launcher's errors are meant for a person
                raise StoreError(f"the PostgreSQL server did not start: {exc}") from exc
            for kind in kinds:
                self._urls[kind] = self.server.create_database(self.database_name(kind))
            return
        for kind in kinds:
            self._urls[kind] = create_database_at(self.choice, self.database_name(kind))

    @property
    def log_file(self) -> Path | None:
        """Our server's own log (None: no server of ours)."""
        return self.server.log_file if self.server is not None else None

    @property
    def pid(self) -> int | None:
        return self.server.pid if self.server is not None else None

    def stop(self, *, remove: bool = False) -> None:
        """Stop our server; `remove` also deletes its files (as root they may
        live outside the data directory: databases/unprivileged.py)."""
        if self.server is None:
            return
        if remove:
            self.server.remove()
        else:
            self.server.stop()

    def database_name(self, kind: str) -> str:
        return f"{self.prefix}_{kind}"

    def location(self, kind: str, sqlite_file: Path) -> str:
        """What LIENTHONG_<KIND>_DB says: the kind's database URL, or `sqlite_file`."""
        if self.choice == SQLITE:
            return str(sqlite_file)
        try:
            return self._urls[kind]
        except KeyError:
            raise StoreError(f"no database for {kind!r}: the store was not started") from None
