"""The hospital registry's store: facilities, birth certificates, death notices
and the counters behind their numbers, over SQLite or PostgreSQL
(common.database).

A HospitalStore reads and writes through the connection of one unit of work
(one transaction), so a refused request leaves nothing behind.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from common import idempotency, sequences
from common.bulk import insert_new
from common.database import Connection, Database, Row, Schema, open_database

SCHEMA = Schema.portable(
    """
CREATE TABLE IF NOT EXISTS facilities (
    code          TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    province_code TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS birth_certificates (
    certificate_number TEXT PRIMARY KEY,
    facility_code      TEXT NOT NULL,
    mother_id_number   TEXT NOT NULL,
    mother_full_name   TEXT NOT NULL,
    child_sex          INTEGER NOT NULL,
    date_of_birth      TEXT NOT NULL,
    time_of_birth      TEXT NOT NULL,
    birth_weight_grams INTEGER NOT NULL,
    issued_on          TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS death_notices (
    notice_number      TEXT PRIMARY KEY,
    facility_code      TEXT NOT NULL,
    deceased_id_number TEXT NOT NULL UNIQUE,
    date_of_death      TEXT NOT NULL,
    time_of_death      TEXT NOT NULL,
    cause              TEXT NOT NULL,
    work_accident      INTEGER NOT NULL,
    issued_on          TEXT NOT NULL
);
"""
    + sequences.SCHEMA
    + idempotency.SCHEMA
)

BIRTH_COLUMNS = (
    "certificate_number, facility_code, mother_id_number, mother_full_name, child_sex, "
    "date_of_birth, time_of_birth, birth_weight_grams, issued_on"
)
DEATH_COLUMNS = (
    "notice_number, facility_code, deceased_id_number, date_of_death, time_of_death, cause, "
    "work_accident, issued_on"
)


FACILITY_COLUMNS = "code, name, province_code"
# Keys per IN (...) list: well under SQLite's 32,766 bound parameters.
IN_CHUNK = 500


def open_store(location: Path | str) -> Database:
    """The registry's database (a SQLite path or a PostgreSQL URL), its schema created."""
    return open_database(location, SCHEMA)


class HospitalStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def facility(self, code: str) -> Row | None:
        row: Row | None = self.conn.execute(
            f"SELECT {FACILITY_COLUMNS} FROM facilities WHERE code = ?", (code,)
        ).fetchone()
        return row

    def birth_certificate(self, number: str) -> Row | None:
        row: Row | None = self.conn.execute(
            f"SELECT {BIRTH_COLUMNS} FROM birth_certificates WHERE certificate_number = ?",
            (number,),
        ).fetchone()
        return row

    def death_notice(self, number: str) -> Row | None:
        row: Row | None = self.conn.execute(
            f"SELECT {DEATH_COLUMNS} FROM death_notices WHERE notice_number = ?", (number,)
        ).fetchone()
        return row

    def death_notice_for(self, deceased_id_number: str) -> Row | None:
        row: Row | None = self.conn.execute(
            f"SELECT {DEATH_COLUMNS} FROM death_notices WHERE deceased_id_number = ?",
            (deceased_id_number,),
        ).fetchone()
        return row

    def facilities(self, codes: Sequence[str]) -> dict[str, Row]:
        """The stored facilities among `codes`, by code."""
        return self._rows("facilities", FACILITY_COLUMNS, "code", codes)

    def birth_certificates(self, numbers: Sequence[str]) -> dict[str, Row]:
        """The stored birth certificates among `numbers`, by number."""
        return self._rows("birth_certificates", BIRTH_COLUMNS, "certificate_number", numbers)

    def death_notices(self, numbers: Sequence[str]) -> dict[str, Row]:
        """The stored death notices among `numbers`, by notice number."""
        return self._rows("death_notices", DEATH_COLUMNS, "notice_number", numbers)

    def death_notices_for(self, deceased_id_numbers: Sequence[str]) -> dict[str, Row]:
        """The stored death notices of these people, by the deceased's ID number."""
        return self._rows("death_notices", DEATH_COLUMNS, "deceased_id_number", deceased_id_numbers)

    def _rows(self, table: str, columns: str, key: str, keys: Sequence[str]) -> dict[str, Row]:
        # A query per chunk, not per key: a replayed seed would otherwise
        # cost a round trip per record to a PostgreSQL server.
        found: dict[str, Row] = {}
        for start in range(0, len(keys), IN_CHUNK):
            chunk = keys[start : start + IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            for row in self.conn.execute(
                f"SELECT {columns} FROM {table} WHERE {key} IN ({marks})", chunk
            ):
                found[row[key]] = row
        return found

    def next_serial(self, name: str) -> int:
        return sequences.next_serial(self.conn, name)

    def insert_birth_certificate(self, row: Sequence[Any]) -> None:
        self.conn.execute(
            f"INSERT INTO birth_certificates ({BIRTH_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)", row
        )

    def insert_death_notice(self, row: Sequence[Any]) -> None:
        self.conn.execute(
            f"INSERT INTO death_notices ({DEATH_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)", row
        )

    # Seeding: insert the rows whose keys are new (a key already stored
    # keeps its row); each returns the rows added. Call in the unit of work.

    def seed_facilities(self, rows: Iterable[Sequence[Any]]) -> int:
        return insert_new(self.conn, "facilities", FACILITY_COLUMNS.split(", "), rows)

    def seed_birth_certificates(self, rows: Iterable[Sequence[Any]]) -> int:
        return insert_new(self.conn, "birth_certificates", BIRTH_COLUMNS.split(", "), rows)

    def seed_death_notices(self, rows: Iterable[Sequence[Any]]) -> int:
        # A notice number or a deceased already stored keeps its notice.
        return insert_new(self.conn, "death_notices", DEATH_COLUMNS.split(", "), rows)
