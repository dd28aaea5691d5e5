"""The population registry's store: citizens, households, residence
history, death registrations and the personal ID serial counters, over SQLite
or PostgreSQL (common.database).

A PopulationStore reads and writes through the connection of one unit of work
(one transaction), so a refused request leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from common import idempotency
from common.database import (
    Connection,
    Database,
    LostRace,
    Row,
    Schema,
    SqliteDatabase,
    open_database,
)
from services.population.rules import FIRST_SERIAL, LAST_SERIAL, personal_id_number

SCHEMA = Schema.portable(
    """
CREATE TABLE IF NOT EXISTS households (
    household_id   TEXT PRIMARY KEY,
    address        TEXT NOT NULL,
    province_code  TEXT NOT NULL,
    head_id_number TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS citizens (
    personal_id_number         TEXT PRIMARY KEY,
    full_name                  TEXT NOT NULL,
    sex                        INTEGER NOT NULL,
    date_of_birth              TEXT NOT NULL,
    place_of_birth             TEXT NOT NULL,
    ethnicity                  TEXT NOT NULL,
    nationality                TEXT NOT NULL,
    mother_id_number           TEXT NOT NULL,
    father_id_number           TEXT NOT NULL,
    birth_certificate_number   TEXT NOT NULL,
    registration_province_code TEXT NOT NULL,
    -- The current permanent residence (NULL: none); residences keeps the history.
    household_id               TEXT REFERENCES households (household_id),
    date_of_death              TEXT,
    -- NULL for seeded citizens, whose registration predates this registry.
    birth_registered_on        TEXT
);
-- One registration per birth certificate; seeded citizens may have none ('').
CREATE UNIQUE INDEX IF NOT EXISTS citizens_by_birth_certificate
    ON citizens (birth_certificate_number) WHERE birth_certificate_number <> '';
-- Members of a household, already in the order GetHousehold lists them.
CREATE INDEX IF NOT EXISTS citizens_by_household
    ON citizens (household_id, personal_id_number);
-- Rows are closed (removed_on set), never deleted: the history is the record.
CREATE TABLE IF NOT EXISTS residences (
    residence_id       INTEGER PRIMARY KEY,
    personal_id_number TEXT NOT NULL REFERENCES citizens (personal_id_number),
    household_id       TEXT NOT NULL REFERENCES households (household_id),
    registered_on      TEXT,
    removed_on         TEXT,
    removal_reason     INTEGER
);
-- Law on Residence 2020: one permanent residence per person at a time.
CREATE UNIQUE INDEX IF NOT EXISTS current_residence
    ON residences (personal_id_number) WHERE removed_on IS NULL;
CREATE TABLE IF NOT EXISTS deaths (
    personal_id_number  TEXT PRIMARY KEY REFERENCES citizens (personal_id_number),
    date_of_death       TEXT NOT NULL,
    time_of_death       TEXT NOT NULL,
    place_of_death      TEXT NOT NULL,
    death_notice_number TEXT NOT NULL,
    declared_on         TEXT NOT NULL,
    days_after_death    INTEGER NOT NULL,
    declared_late       INTEGER NOT NULL
);
-- The next serial to try within each PPP G YY prefix.
CREATE TABLE IF NOT EXISTS id_serials (
    prefix      TEXT PRIMARY KEY,
    next_serial INTEGER NOT NULL
);
"""
    + idempotency.SCHEMA
)

HOUSEHOLD_COLUMNS = "household_id, address, province_code, head_id_number"
SEEDED_CITIZEN_COLUMNS = (
    "personal_id_number, full_name, sex, date_of_birth, place_of_birth, ethnicity, "
    "nationality, mother_id_number, father_id_number, birth_certificate_number, "
    "registration_province_code, household_id, date_of_death"
)
CITIZEN_COLUMNS = SEEDED_CITIZEN_COLUMNS + ", birth_registered_on"
DEATH_COLUMNS = (
    "personal_id_number, date_of_death, time_of_death, place_of_death, death_notice_number, "
    "declared_on, days_after_death, declared_late"
)

# A seed of a few hundred thousand citizens touches far more pages than
# SQLite's default 2 MiB cache holds; 64 MiB keeps the indexes it updates in
# memory until the commit (measured: the residence step ran twice as fast).
_CACHE_KIB = 64 * 1024

# Below SQLite's limit on bound parameters in one statement.
_IN_CHUNK = 500

# The first serial at or after a taken one whose successor is free: one range
# scan of the primary key, instead of a query per taken serial. The
# successor's number is spelled without printf (SQLite) or lpad (PostgreSQL),
# so one query serves both: the last six digits of 1000000 + serial + 1 are
# the serial zero-padded (and 000000, never taken, past the last serial).
_FIRST_GAP = """
SELECT CAST(substr(taken.personal_id_number, 7) AS INTEGER) + 1
FROM citizens AS taken
WHERE taken.personal_id_number BETWEEN ? AND ?
  AND NOT EXISTS (
      SELECT 1 FROM citizens AS following
      WHERE following.personal_id_number =
            substr(taken.personal_id_number, 1, 6)
            || substr(CAST(1000001 + CAST(substr(taken.personal_id_number, 7) AS INTEGER)
                           AS TEXT), 2))
ORDER BY taken.personal_id_number
LIMIT 1
"""


def open_store(location: Path | str) -> Database:
    """The registry's database (a SQLite path or a PostgreSQL URL), its schema created."""
    database = open_database(location, SCHEMA)
    if isinstance(database, SqliteDatabase):
        database.pragma(f"cache_size = -{_CACHE_KIB}")
    return database


class PopulationStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def citizen(self, personal_id: str) -> Row | None:
        row: Row | None = self.conn.execute(
            f"SELECT {CITIZEN_COLUMNS} FROM citizens WHERE personal_id_number = ?",
            (personal_id,),
        ).fetchone()
        return row

    def citizen_with_birth_certificate(self, number: str) -> str | None:
        row = self.conn.execute(
            # The repeated condition lets SQLite use the partial index.
            "SELECT personal_id_number FROM citizens "
            "WHERE birth_certificate_number = ? AND birth_certificate_number <> ''",
            (number,),
        ).fetchone()
        return None if row is None else str(row[0])

    def household(self, household_id: str) -> Row | None:
        row: Row | None = self.conn.execute(
            f"SELECT {HOUSEHOLD_COLUMNS} FROM households WHERE household_id = ?",
            (household_id,),
        ).fetchone()
        return row

    def household_members(self, household_id: str) -> list[str]:
        return [
            row[0]
            for row in self.conn.execute(
                "SELECT personal_id_number FROM citizens WHERE household_id = ? "
                "ORDER BY personal_id_number",
                (household_id,),
            )
        ]

    def _among(self, select: str, key: str, wanted: Iterable[str]) -> dict[str, Row]:
        """Rows of `select` whose `key` is one of `wanted`, by key: a query
        per chunk rather than per key (over PostgreSQL a query is a round
        trip, and a replayed seed asks about every record)."""
        keys = list(wanted)
        found: dict[str, Row] = {}
        for start in range(0, len(keys), _IN_CHUNK):
            chunk = keys[start : start + _IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            for row in self.conn.execute(f"{select} WHERE {key} IN ({marks})", chunk):
                found[row[key]] = row
        return found

    def existing_households(self, household_ids: Iterable[str]) -> set[str]:
        return set(
            self._among("SELECT household_id FROM households", "household_id", household_ids)
        )

    def citizen_lookup(self, personal_ids: Iterable[str]) -> Callable[[str], Row | None]:
        """A lookup of stored citizens, to be asked about each of
        `personal_ids`. SQLite answers a query per key in process, faster
        than chunked IN lists (measured: a replayed seed took twice as long);
        over PostgreSQL each query is a round trip, so the rows are read in
        chunks up front."""
        if self.conn.dialect == "sqlite":
            return self.citizen
        return self._among(
            f"SELECT {CITIZEN_COLUMNS} FROM citizens", "personal_id_number", personal_ids
        ).get

    def household_lookup(self, household_ids: Iterable[str]) -> Callable[[str], Row | None]:
        """As citizen_lookup, for households."""
        if self.conn.dialect == "sqlite":
            return self.household
        return self._among(
            f"SELECT {HOUSEHOLD_COLUMNS} FROM households", "household_id", household_ids
        ).get

    def current_residence(self, personal_id: str) -> Row | None:
        row: Row | None = self.conn.execute(
            "SELECT residence_id, household_id, registered_on FROM residences "
            "WHERE personal_id_number = ? AND removed_on IS NULL",
            (personal_id,),
        ).fetchone()
        return row

    def residence_history(self, personal_id: str) -> list[Row]:
        return list(
            self.conn.execute(
                "SELECT household_id, registered_on, removed_on, removal_reason FROM residences "
                "WHERE personal_id_number = ? ORDER BY residence_id",
                (personal_id,),
            )
        )

    def allocate_serial(self, prefix: str) -> int | None:
        """The lowest free serial from this prefix's counter on, or None when
        the prefix is used up; advances the counter. Serials taken by seeded
        citizens are skipped, so seeds and registrations never collide.

        The counter row is taken first with an upsert that changes nothing:
        under PostgreSQL that locks it until the transaction ends, so
        replicas allocating in one prefix take turns, and the next one reads
        the counter the previous one committed (READ COMMITTED re-reads a
        row it waited for). A refused request rolls the counter back."""
        row = self.conn.execute(
            "INSERT INTO id_serials (prefix, next_serial) VALUES (?, ?) "
            "ON CONFLICT (prefix) DO UPDATE SET next_serial = id_serials.next_serial "
            "RETURNING next_serial",
            (prefix, FIRST_SERIAL),
        ).fetchone()
        assert row is not None  # an upsert with RETURNING returns its row
        start: int = row[0]
        if start > LAST_SERIAL:
            return None
        serial = start
        if self.citizen(personal_id_number(prefix, start)) is not None:
            gap = self.conn.execute(
                _FIRST_GAP,
                (personal_id_number(prefix, start), personal_id_number(prefix, LAST_SERIAL)),
            ).fetchone()
            assert gap is not None  # the taken `start` is in the range
            serial = gap[0]
        if serial > LAST_SERIAL:
            return None
        self.conn.execute(
            "UPDATE id_serials SET next_serial = ? WHERE prefix = ?", (serial + 1, prefix)
        )
        return serial

    def insert_citizen(self, row: Sequence[Any]) -> None:
        self.conn.execute(
            f"INSERT INTO citizens ({CITIZEN_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", row
        )

    # The UPDATEs below are guarded by what the rules checked (no residence,
    # not dead, the residence still open). Under SQLite's single writer the
    # guard always holds. Between PostgreSQL replicas, READ COMMITTED lets a
    # transaction that waited for the row re-check the guard against what
    # the other committed: no row changed means the rules decided on a stale
    # read, and the unit of work is run again (LostRace) to decide afresh,
    # e.g. a second removal of one residence then answers
    # NO_PERMANENT_RESIDENCE instead of overwriting the first.

    def add_residence(self, personal_id: str, household_id: str, registered_on: str) -> None:
        self._guarded(
            "UPDATE citizens SET household_id = ? WHERE personal_id_number = ? "
            "AND household_id IS NULL AND date_of_death IS NULL",
            (household_id, personal_id),
        )
        self.conn.execute(
            "INSERT INTO residences (personal_id_number, household_id, registered_on) "
            "VALUES (?, ?, ?)",
            (personal_id, household_id, registered_on),
        )

    def end_residence(
        self, residence_id: int, personal_id: str, removed_on: str, reason: int
    ) -> None:
        self._guarded(
            "UPDATE residences SET removed_on = ?, removal_reason = ? "
            "WHERE residence_id = ? AND removed_on IS NULL",
            (removed_on, reason, residence_id),
        )
        self.conn.execute(
            "UPDATE citizens SET household_id = NULL WHERE personal_id_number = ?", (personal_id,)
        )

    def record_death(self, row: Sequence[Any]) -> None:
        self._guarded(
            "UPDATE citizens SET date_of_death = ? WHERE personal_id_number = ? "
            "AND date_of_death IS NULL",
            (row[1], row[0]),
        )
        self.conn.execute(f"INSERT INTO deaths ({DEATH_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)", row)

    def _guarded(self, sql: str, params: Sequence[Any]) -> None:
        if self.conn.execute(sql, params).rowcount == 0:
            raise LostRace(f"a concurrent transaction changed the row first: {sql[:60]}")

    def seed(
        self, households: Sequence[Sequence[Any]], citizens: Sequence[Sequence[Any]]
    ) -> tuple[int, int]:
        """Insert rows whose keys are new. Returns (households added,
        citizens added), and opens a residence for each citizen added with a
        household, and only for them: a replayed seed must not reopen a
        residence that was removed since.

        Citizens conflict only on their primary key: a birth certificate
        number that belongs to someone else raises IntegrityError rather than
        silently dropping the row, as a blanket OR IGNORE would. The rows go
        in under a savepoint, so after that error the transaction is usable
        (to find the culprit) with nothing of the seed in it.
        """
        with self.conn.savepoint():
            if self.conn.dialect == "postgres":
                return self._seed_by_copy(households, citizens)
            return self._seed_sqlite(households, citizens)

    def _seed_sqlite(
        self, households: Sequence[Sequence[Any]], citizens: Sequence[Sequence[Any]]
    ) -> tuple[int, int]:
        households_added = self.conn.executemany(
            f"INSERT OR IGNORE INTO households ({HOUSEHOLD_COLUMNS}) VALUES (?,?,?,?)", households
        )
        last = self.conn.execute("SELECT coalesce(max(rowid), 0) FROM citizens").fetchone()
        assert last is not None
        citizens_added = self.conn.executemany(
            f"INSERT INTO citizens ({SEEDED_CITIZEN_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) "
            "ON CONFLICT (personal_id_number) DO NOTHING",
            citizens,
        )
        # SQLite: the citizens just added are those with rowids above the old maximum.
        self.conn.execute(
            "INSERT INTO residences (personal_id_number, household_id) "
            "SELECT personal_id_number, household_id FROM citizens "
            "WHERE rowid > ? AND household_id IS NOT NULL",
            (last[0],),
        )
        return households_added, citizens_added

    def _seed_by_copy(
        self, households: Sequence[Sequence[Any]], citizens: Sequence[Sequence[Any]]
    ) -> tuple[int, int]:
        """PostgreSQL: COPY into temporary tables (one stream, no statement
        per row), then one INSERT ... SELECT each. Citizens added are told by
        RETURNING (PostgreSQL has no rowid), and their residences opened in
        the same statement."""
        self.conn.execute("CREATE TEMPORARY TABLE seed_households (LIKE households) ON COMMIT DROP")
        self.conn.copy_in("seed_households", HOUSEHOLD_COLUMNS.split(", "), households)
        households_added = self.conn.execute(
            f"INSERT INTO households ({HOUSEHOLD_COLUMNS}) "
            f"SELECT {HOUSEHOLD_COLUMNS} FROM seed_households ON CONFLICT DO NOTHING"
        ).rowcount
        self.conn.execute("CREATE TEMPORARY TABLE seed_citizens (LIKE citizens) ON COMMIT DROP")
        self.conn.copy_in("seed_citizens", SEEDED_CITIZEN_COLUMNS.split(", "), citizens)
        added = self.conn.execute(
            f"WITH added AS ("
            f"  INSERT INTO citizens ({SEEDED_CITIZEN_COLUMNS}) "
            f"  SELECT {SEEDED_CITIZEN_COLUMNS} FROM seed_citizens "
            f"  ON CONFLICT (personal_id_number) DO NOTHING "
            f"  RETURNING personal_id_number, household_id"
            f"), opened AS ("
            f"  INSERT INTO residences (personal_id_number, household_id) "
            f"  SELECT personal_id_number, household_id FROM added "
            f"  WHERE household_id IS NOT NULL"
            f") SELECT count(*) FROM added"
        ).fetchone()
        assert added is not None
        return households_added, int(added[0])
