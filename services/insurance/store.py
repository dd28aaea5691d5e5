"""The insurance registry's store: participants, cards, funeral allowances and
the counters behind their numbers, over SQLite or PostgreSQL (common.database).

An InsuranceStore reads and writes through the connection of one unit of work
(one transaction), so a refused request leaves nothing behind, and replicas
over one PostgreSQL database see each other's committed rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from common import idempotency, sequences
from common.bulk import insert_new
from common.database import Connection, Database, LostRace, Row, Schema, open_database

SCHEMA = Schema.portable(
    """
CREATE TABLE IF NOT EXISTS participants (
    social_insurance_number                 TEXT PRIMARY KEY,
    personal_id_number                      TEXT NOT NULL UNIQUE,
    full_name                               TEXT NOT NULL,
    date_of_birth                           TEXT NOT NULL,
    compulsory_contribution_months          INTEGER NOT NULL,
    voluntary_contribution_months           INTEGER NOT NULL,
    pensioner                               INTEGER NOT NULL,
    receives_monthly_occupational_allowance INTEGER NOT NULL,
    receives_monthly_social_allowance       INTEGER NOT NULL,
    pension_stopped_from                    TEXT NOT NULL,
    date_of_death                           TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cards (
    social_insurance_number TEXT PRIMARY KEY
        REFERENCES participants (social_insurance_number),
    card_code               TEXT NOT NULL,
    beneficiary_group       TEXT NOT NULL,
    benefit_level           INTEGER NOT NULL,
    valid_from              TEXT NOT NULL,
    valid_to                TEXT NOT NULL,
    initial_facility_code   TEXT NOT NULL,
    status                  INTEGER NOT NULL,
    ended_on                TEXT NOT NULL,
    issued_on               TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS funeral_allowances (
    personal_id_number       TEXT PRIMARY KEY,
    date_of_death            TEXT NOT NULL,
    amount_vnd               INTEGER NOT NULL,
    base_salary_vnd          INTEGER NOT NULL,
    reason                   TEXT NOT NULL,
    payment_reference        TEXT NOT NULL UNIQUE,
    settled_on               TEXT NOT NULL,
    payee_full_name          TEXT NOT NULL,
    payee_personal_id_number TEXT NOT NULL,
    payment_method           INTEGER NOT NULL,
    bank_account             TEXT NOT NULL,
    bank_name                TEXT NOT NULL
);
"""
    + sequences.SCHEMA
    + idempotency.SCHEMA
)

PARTICIPANT_COLUMNS = (
    "social_insurance_number, personal_id_number, full_name, date_of_birth, "
    "compulsory_contribution_months, voluntary_contribution_months, pensioner, "
    "receives_monthly_occupational_allowance, receives_monthly_social_allowance, "
    "pension_stopped_from, date_of_death"
)
CARD_COLUMNS = (
    "social_insurance_number, card_code, beneficiary_group, benefit_level, valid_from, "
    "valid_to, initial_facility_code, status, ended_on, issued_on"
)
ALLOWANCE_COLUMNS = (
    "personal_id_number, date_of_death, amount_vnd, base_salary_vnd, reason, "
    "payment_reference, settled_on, payee_full_name, payee_personal_id_number, "
    "payment_method, bank_account, bank_name"
)
SERIAL_DIGITS = 8
# Taken social insurance numbers read per query while looking for a free one:
# a long run of seeded numbers is walked a chunk at a time, not loaded whole
# (psycopg fetches a whole result at once; SQLite's cursor would be lazy).
TAKEN_CHUNK = 1000
# The first read is short: usually the counter's candidate is free, and a
# read of TAKEN_CHUNK rows every time cost a replay ~300 rows a card (measured
# with pg_stat_statements). A run of taken numbers doubles it up to TAKEN_CHUNK.
FIRST_TAKEN_READ = 8
# Keys per IN (...) list: well under SQLite's 32,766 bound parameters.
IN_CHUNK = 500


def open_store(location: Path | str) -> Database:
    """The registry's database (a SQLite path or a PostgreSQL URL), its schema created."""
    return open_database(location, SCHEMA)


class InsuranceStore:
    def __init__(self, conn: Connection) -> None:
        self.conn = conn

    def participant(self, personal_id_number: str) -> Row | None:
        row: Row | None = self.conn.execute(
            f"SELECT {PARTICIPANT_COLUMNS} FROM participants WHERE personal_id_number = ?",
            (personal_id_number,),
        ).fetchone()
        return row

    def holder_of(self, social_insurance_number: str) -> str | None:
        """The personal ID number of whoever holds this social insurance number."""
        row = self.conn.execute(
            "SELECT personal_id_number FROM participants WHERE social_insurance_number = ?",
            (social_insurance_number,),
        ).fetchone()
        return None if row is None else str(row[0])

    def holders(self, numbers: Sequence[str]) -> dict[str, str]:
        """Social insurance number -> the personal ID number holding it, for
        those of `numbers` that are stored."""
        return self._pairs("social_insurance_number", numbers)

    def numbers_held(self, personal_ids: Sequence[str]) -> dict[str, str]:
        """Personal ID number -> the social insurance number it holds, for
        those of `personal_ids` that are stored."""
        return {
            person: number
            for number, person in self._pairs("personal_id_number", personal_ids).items()
        }

    def _pairs(self, column: str, keys: Sequence[str]) -> dict[str, str]:
        # A query per chunk, not per key: a replayed seed of 200,000 people
        # would otherwise cost 400,000 round trips to a PostgreSQL server.
        found: dict[str, str] = {}
        for start in range(0, len(keys), IN_CHUNK):
            chunk = keys[start : start + IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            for number, person in self.conn.execute(
                "SELECT social_insurance_number, personal_id_number FROM participants "
                f"WHERE {column} IN ({marks})",
                chunk,
            ):
                found[number] = person
        return found

    def card(self, social_insurance_number: str) -> Row | None:
        row: Row | None = self.conn.execute(
            f"SELECT {CARD_COLUMNS} FROM cards WHERE social_insurance_number = ?",
            (social_insurance_number,),
        ).fetchone()
        return row

    def funeral_allowance(self, personal_id_number: str) -> Row | None:
        row: Row | None = self.conn.execute(
            f"SELECT {ALLOWANCE_COLUMNS} FROM funeral_allowances WHERE personal_id_number = ?",
            (personal_id_number,),
        ).fetchone()
        return row

    def next_serial(self, name: str) -> int:
        return sequences.next_serial(self.conn, name)

    def new_social_insurance_number(self, prefix: str) -> str:
        """The next free `prefix` + 8-digit serial; call inside a transaction.

        Seeded participants already hold numbers the counter knows nothing of.
        One ordered scan of the primary key from the candidate on finds the
        first gap, however long the run of taken numbers, and the counter
        moves past it so the next call starts there.
        """
        name = f"social_insurance_number:{prefix}"
        # Under PostgreSQL the counter row stays locked until the transaction
        # ends, so replicas numbering under one prefix take turns, and each
        # scans the participants its predecessor committed.
        serial = self.next_serial(name)
        last = f"{prefix}{'9' * SERIAL_DIGITS}"
        chunk = min(FIRST_TAKEN_READ, TAKEN_CHUNK)
        while True:
            candidate = f"{prefix}{serial:0{SERIAL_DIGITS}d}"
            taken = self.conn.execute(
                "SELECT social_insurance_number FROM participants "
                "WHERE social_insurance_number >= ? AND social_insurance_number <= ? "
                "ORDER BY social_insurance_number LIMIT ?",
                (candidate, last, chunk),
            ).fetchall()
            for (number,) in taken:
                if number != f"{prefix}{serial:0{SERIAL_DIGITS}d}":
                    break
                serial += 1
            else:
                if len(taken) == chunk:
                    # The whole chunk was one run of taken numbers: read on, more at once.
                    chunk = min(2 * chunk, TAKEN_CHUNK)
                    continue
            break
        if serial >= 10**SERIAL_DIGITS:
            raise RuntimeError(f"no social insurance number left with prefix {prefix}")
        self.conn.execute("UPDATE sequences SET next = ? WHERE name = ?", (serial, name))
        return f"{prefix}{serial:0{SERIAL_DIGITS}d}"

    def insert_child(
        self,
        social_insurance_number: str,
        personal_id_number: str,
        full_name: str,
        date_of_birth: str,
    ) -> None:
        """A child new to social insurance: no contributions, no pension, no allowance."""
        self.conn.execute(
            f"INSERT INTO participants ({PARTICIPANT_COLUMNS}) "
            "VALUES (?, ?, ?, ?, 0, 0, 0, 0, 0, '', '')",
            (social_insurance_number, personal_id_number, full_name, date_of_birth),
        )

    def insert_card(self, row: Sequence[Any]) -> None:
        self.conn.execute(f"INSERT INTO cards ({CARD_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?)", row)

    def insert_funeral_allowance(self, row: Sequence[Any]) -> None:
        self.conn.execute(
            f"INSERT INTO funeral_allowances ({ALLOWANCE_COLUMNS}) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            row,
        )

    def record_death(
        self, social_insurance_number: str, date_of_death: str, pension_stopped_from: str
    ) -> None:
        """Record the death the rules found not yet recorded (or recorded on
        this same day). Guarded by that finding: if a replica recorded
        another date since the rules read the row (READ COMMITTED), nothing
        changes and the unit of work runs again, its rules then refusing the
        second date."""
        changed = self.conn.execute(
            "UPDATE participants SET date_of_death = ?, pension_stopped_from = ? "
            "WHERE social_insurance_number = ? AND date_of_death IN ('', ?)",
            (date_of_death, pension_stopped_from, social_insurance_number, date_of_death),
        ).rowcount
        if changed == 0:
            raise LostRace(f"the death of {social_insurance_number} was recorded meanwhile")

    def hold_living(self, social_insurance_number: str) -> None:
        """Keep this participant from being recorded dead until the unit of
        work ends, or find that they were meanwhile. A card issued on one
        replica while another records the child's death would otherwise stay
        ACTIVE: each transaction reads the other's row as it was (READ
        COMMITTED), the death finds no card to end and the card finds no
        death. FOR SHARE waits for a death being recorded, then re-reads the
        row: if it no longer qualifies, the unit of work runs again and its
        rules refuse the card; and a death recorded after this waits for the
        card's commit, then ends it."""
        if self.conn.dialect == "sqlite":
            return  # BEGIN IMMEDIATE: one writer at a time already
        held = self.conn.execute(
            "SELECT 1 FROM participants "
            "WHERE social_insurance_number = ? AND date_of_death = '' FOR SHARE",
            (social_insurance_number,),
        ).fetchone()
        if held is None:
            raise LostRace(f"the death of {social_insurance_number} was recorded meanwhile")

    def end_card(self, social_insurance_number: str, status: int, ended_on: str) -> None:
        self.conn.execute(
            "UPDATE cards SET status = ?, ended_on = ? WHERE social_insurance_number = ?",
            (status, ended_on, social_insurance_number),
        )

    def seed(self, participants: Iterable[Sequence[Any]]) -> int:
        """Insert participants whose numbers are new (a number or a personal ID
        number already stored keeps its row). Returns rows added."""
        return insert_new(self.conn, "participants", PARTICIPANT_COLUMNS.split(", "), participants)
