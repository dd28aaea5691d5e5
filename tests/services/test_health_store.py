"""The hospital registry's store, the same contract on SQLite (a file under
tmp_path) and PostgreSQL (a fresh database): document counters per name,
seeding that keeps what is stored (one death notice per person), rows that
read back equal to what was written (the seed's replay check compares them
whole)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from common.database import Connection, Database
from services.health.store import HospitalStore, open_store


@pytest.fixture
def db(store_location: str) -> Iterator[Database]:
    opened = open_store(store_location)
    yield opened
    opened.close()


BIRTH = (
    "GCS-01001-0000001",
    "01001",
    "001190123456",
    "Lan",
    2,
    "2024-05-01",
    "08:30",
    3100,
    "2024-05-02",
)
DEATH = (
    "GBT-01001-0000001", "01001", "001150000123", "2025-01-02", "23:10", "stroke", 1, "2025-01-03",
)  # fmt: skip


def seed(
    db: Database,
    facilities: list[tuple[Any, ...]] = [],  # noqa: B006 - never mutated
    births: list[tuple[Any, ...]] = [],  # noqa: B006
    deaths: list[tuple[Any, ...]] = [],  # noqa: B006
) -> tuple[int, int, int]:
    def work(conn: Connection) -> tuple[int, int, int]:
        store = HospitalStore(conn)
        return (
            store.seed_facilities(facilities),
            store.seed_birth_certificates(births),
            store.seed_death_notices(deaths),
        )

    return db.run_sync(work)


def test_counters_count_up_per_name(db: Database) -> None:
    def draw(name: str) -> int:
        return db.run_sync(lambda conn: HospitalStore(conn).next_serial(name))

    assert [draw("birth:01001") for _ in range(3)] == [1, 2, 3]
    assert draw("death:01001") == 1


def test_seeded_records_read_back_as_written(db: Database) -> None:
    assert seed(db, [("01001", "Bệnh viện", "001")], [BIRTH], [DEATH]) == (1, 1, 1)

    def read(conn: Connection) -> tuple[Any, ...]:
        store = HospitalStore(conn)
        return (
            store.facility("01001"),
            store.birth_certificate(BIRTH[0]),
            store.death_notice(DEATH[0]),
            store.death_notice_for(DEATH[2]),
        )

    facility, birth, death, death_for = db.run_sync(read)
    assert tuple(facility) == ("01001", "Bệnh viện", "001")
    assert facility["province_code"] == "001"
    assert tuple(birth) == BIRTH
    assert tuple(death) == DEATH == tuple(death_for)
    assert death["work_accident"] == 1


def test_a_replayed_seed_adds_nothing_and_keeps_what_is_stored(db: Database) -> None:
    seed(db, [("01001", "Bệnh viện", "001")], [BIRTH], [DEATH])
    other_name = ("01001", "Tên khác", "001")
    # Another notice number for a person who has one: one death notice a person.
    second_notice = ("GBT-01001-0000002", *DEATH[1:])
    new_birth = ("GCS-01001-0000002", *BIRTH[1:])
    assert seed(db, [other_name], [BIRTH, new_birth], [second_notice]) == (0, 1, 0)
    facility = db.run_sync(lambda conn: HospitalStore(conn).facility("01001"))
    assert facility is not None and facility["name"] == "Bệnh viện"
    assert db.run_sync(lambda conn: HospitalStore(conn).death_notice(second_notice[0])) is None


def test_a_refused_unit_of_work_leaves_no_record(db: Database) -> None:
    def issue_then_refuse(conn: Connection) -> None:
        store = HospitalStore(conn)
        store.next_serial("birth:01001")
        store.insert_birth_certificate(BIRTH)
        raise RuntimeError("refused")

    with pytest.raises(RuntimeError):
        db.run_sync(issue_then_refuse)
    assert db.run_sync(lambda conn: HospitalStore(conn).birth_certificate(BIRTH[0])) is None
    assert db.run_sync(lambda conn: HospitalStore(conn).next_serial("birth:01001")) == 1


def test_stored_records_are_read_for_many_keys_at_once(db: Database) -> None:
    births = [(f"GCS-{n:05d}", *BIRTH[1:]) for n in range(1200)]
    deaths = [(f"GBT-{n:05d}", "01001", f"001150{n:06d}", *DEATH[3:]) for n in range(0, 1200, 3)]
    seed(db, [("01001", "Bệnh viện", "001")], births, deaths)
    wanted = [f"GCS-{n:05d}" for n in range(0, 1300, 2)]  # past the last one stored too

    def read(conn: Connection) -> tuple[dict[str, Any], ...]:
        store = HospitalStore(conn)
        return (
            store.birth_certificates(wanted),
            store.death_notices([f"GBT-{n:05d}" for n in range(1300)]),
            store.death_notices_for([f"001150{n:06d}" for n in range(1300)]),
            store.facilities(["01001", "99999"]),
        )

    by_number, notices, notices_of, facilities = db.run_sync(read)
    assert {n: tuple(r) for n, r in by_number.items()} == {
        b[0]: b for b in births if int(str(b[0])[4:]) % 2 == 0
    }
    assert sorted(notices) == [d[0] for d in deaths]
    assert {p: r["notice_number"] for p, r in notices_of.items()} == {d[2]: d[0] for d in deaths}
    assert list(facilities) == ["01001"]
