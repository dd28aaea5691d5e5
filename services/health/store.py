"""The hospital registry's SQLite store: facilities, birth certificates, death notices."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common import idempotency
from common.sqlite import SEQUENCES_SCHEMA, next_serial, open_database

SCHEMA = (
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
    + SEQUENCES_SCHEMA
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


class HospitalStore:
    def __init__(self, path: Path | str) -> None:
        self.conn = open_database(path, SCHEMA)

    def close(self) -> None:
        self.conn.close()

    def facility(self, code: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.conn.execute(
            "SELECT code, name, province_code FROM facilities WHERE code = ?", (code,)
        ).fetchone()
        return row

    def birth_certificate(self, number: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.conn.execute(
            f"SELECT {BIRTH_COLUMNS} FROM birth_certificates WHERE certificate_number = ?",
            (number,),
        ).fetchone()
        return row

    def death_notice(self, number: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.conn.execute(
            f"SELECT {DEATH_COLUMNS} FROM death_notices WHERE notice_number = ?", (number,)
        ).fetchone()
        return row

    def death_notice_for(self, deceased_id_number: str) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self.conn.execute(
            f"SELECT {DEATH_COLUMNS} FROM death_notices WHERE deceased_id_number = ?",
            (deceased_id_number,),
        ).fetchone()
        return row

    def next_serial(self, name: str) -> int:
        return next_serial(self.conn, name)

    def insert_birth_certificate(self, row: Sequence[Any]) -> None:
        self.conn.execute(
            f"INSERT INTO birth_certificates ({BIRTH_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)", row
        )

    def insert_death_notice(self, row: Sequence[Any]) -> None:
        self.conn.execute(
            f"INSERT INTO death_notices ({DEATH_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)", row
        )

    def seed(
        self,
        facilities: Sequence[Sequence[Any]],
        births: Sequence[Sequence[Any]],
        deaths: Sequence[Sequence[Any]],
    ) -> tuple[int, int, int]:
        """Insert rows whose keys are new; call inside a transaction. Returns rows added."""
        counts = []
        for sql, rows in (
            (
                "INSERT OR IGNORE INTO facilities (code, name, province_code) VALUES (?,?,?)",
                facilities,
            ),
            (
                f"INSERT OR IGNORE INTO birth_certificates ({BIRTH_COLUMNS}) "
                "VALUES (?,?,?,?,?,?,?,?,?)",
                births,
            ),
            (
                f"INSERT OR IGNORE INTO death_notices ({DEATH_COLUMNS}) VALUES (?,?,?,?,?,?,?,?)",
                deaths,
            ),
        ):
            before = self.conn.total_changes
            self.conn.executemany(sql, rows)
            counts.append(self.conn.total_changes - before)
        return counts[0], counts[1], counts[2]
