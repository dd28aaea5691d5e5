"""The insurance registry's store, the same contract on SQLite (a file under
tmp_path) and PostgreSQL (a fresh database): social insurance numbers from a
counter that steps over seeded ones, seeding that keeps what is stored, rows
read back by name with their types, one allowance per person and per payment
reference.

The expected numbers are written out by hand."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from common.database import Connection, Database, UniqueViolation
from services.insurance import store as insurance_store
from services.insurance.store import InsuranceStore, open_store


@pytest.fixture
def db(store_location: str) -> Iterator[Database]:
    opened = open_store(store_location)
    yield opened
    opened.close()


def person(number: str, personal_id: str, name: str = "Trần Văn Bình") -> tuple[Any, ...]:
    return (number, personal_id, name, "1950-04-02", 120, 0, 1, 0, 0, "", "")


def seed(db: Database, rows: Sequence[tuple[Any, ...]]) -> int:
    return db.run_sync(lambda conn: InsuranceStore(conn).seed(rows))


def seeded_numbers(db: Database, *numbers: str) -> None:
    """Participants holding these numbers, each a different person."""
    rows = [person(n, f"00{n}") for n in numbers]
    assert seed(db, rows) == len(rows)


def new_number(db: Database, prefix: str = "01") -> str:
    return db.run_sync(lambda conn: InsuranceStore(conn).new_social_insurance_number(prefix))


def test_numbers_start_at_one_and_count_up_per_prefix(db: Database) -> None:
    assert [new_number(db) for _ in range(3)] == ["0100000001", "0100000002", "0100000003"]
    assert new_number(db, "79") == "7900000001"


def test_numbers_step_over_every_run_of_seeded_ones(db: Database) -> None:
    seeded_numbers(db, "0100000001", "0100000002", "0100000003", "0100000005", "7900000004")
    assert [new_number(db) for _ in range(3)] == ["0100000004", "0100000006", "0100000007"]
    # Seeded after the counter moved on: still stepped over.
    seeded_numbers(db, "0100000008", "0100000009")
    assert new_number(db) == "0100000010"


def test_a_run_longer_than_one_read_is_walked_to_its_end(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(insurance_store, "TAKEN_CHUNK", 3)
    seeded_numbers(db, *(f"01{n:08d}" for n in range(1, 11)), "0100000012")
    assert new_number(db) == "0100000011"
    assert new_number(db) == "0100000013"


def test_a_run_longer_than_the_growing_reads_is_walked_to_its_end(db: Database) -> None:
    # 40 taken in a row: more than the first short read and its doublings.
    seeded_numbers(db, *(f"01{n:08d}" for n in range(1, 41)), "0100000042")
    assert new_number(db) == "0100000041"
    assert new_number(db) == "0100000043"


def test_a_refused_unit_of_work_gives_its_number_back(db: Database) -> None:
    def draw_then_refuse(conn: Connection) -> None:
        InsuranceStore(conn).new_social_insurance_number("01")
        raise RuntimeError("refused after the number was drawn")

    assert new_number(db) == "0100000001"
    with pytest.raises(RuntimeError):
        db.run_sync(draw_then_refuse)
    assert new_number(db) == "0100000002"


def test_a_seed_adds_only_new_people_and_keeps_the_stored_row(db: Database) -> None:
    first = person("0100000001", "001150000001", "Tên cũ")
    assert seed(db, [first, person("0100000002", "001150000002")]) == 2
    replay = [
        person("0100000001", "001150000001", "Tên mới"),  # a stored number
        person("0100000009", "001150000002"),  # a stored person, another number
        person("0100000003", "001150000003"),  # new
    ]
    assert seed(db, replay) == 1
    row = db.run_sync(lambda conn: InsuranceStore(conn).participant("001150000001"))
    assert row is not None and row["full_name"] == "Tên cũ"
    holder = db.run_sync(lambda conn: InsuranceStore(conn).holder_of("0100000009"))
    assert holder is None


def test_a_big_seed_is_counted_exactly(db: Database) -> None:
    rows = [person(f"02{n:08d}", f"001150{n:06d}") for n in range(5000)]
    assert seed(db, rows) == 5000
    assert seed(db, [*rows[4000:], person("0300000001", "002150000001")]) == 1


def test_holders_and_numbers_held_are_read_for_many_keys_at_once(db: Database) -> None:
    rows = [person(f"02{n:08d}", f"001150{n:06d}") for n in range(1200)]
    seed(db, rows)
    numbers = [f"02{n:08d}" for n in range(0, 1300, 2)]  # past the last one stored too
    people = [f"001150{n:06d}" for n in range(1, 1300, 2)]

    def read(conn: Connection) -> tuple[dict[str, str], dict[str, str]]:
        store = InsuranceStore(conn)
        return store.holders(numbers), store.numbers_held(people)

    holders, held = db.run_sync(read)
    assert holders == {f"02{n:08d}": f"001150{n:06d}" for n in range(0, 1200, 2)}
    assert held == {f"001150{n:06d}": f"02{n:08d}" for n in range(1, 1200, 2)}


def test_a_participant_reads_back_by_name_with_its_types(db: Database) -> None:
    seed(db, [("0100000001", "001150000001", "Bình", "1950-04-02", 250, 61, 1, 0, 1, "", "")])
    row = db.run_sync(lambda conn: InsuranceStore(conn).participant("001150000001"))
    assert row is not None
    assert row["social_insurance_number"] == "0100000001"
    assert row["compulsory_contribution_months"] == 250
    assert row["voluntary_contribution_months"] == 61
    assert (row["pensioner"], row["receives_monthly_social_allowance"]) == (1, 1)
    assert row["date_of_death"] == ""
    assert db.run_sync(lambda conn: InsuranceStore(conn).participant("001150000002")) is None


def card(number: str) -> tuple[Any, ...]:
    return (
        number,
        f"TE101{number}",
        "TE",
        1,
        "2024-03-10",
        "2030-09-30",
        "01001",
        1,
        "",
        "2024-04-01",
    )


def test_a_card_ends_and_a_death_is_recorded(db: Database) -> None:
    def issue(conn: Connection) -> None:
        store = InsuranceStore(conn)
        store.insert_child("0100000001", "001324000001", "Mai", "2024-03-10")
        store.insert_card(card("0100000001"))

    db.run_sync(issue)

    def end(conn: Connection) -> None:
        store = InsuranceStore(conn)
        store.record_death("0100000001", "2025-01-02", "")
        store.end_card("0100000001", 2, "2025-01-02")

    db.run_sync(end)
    stored = db.run_sync(lambda conn: InsuranceStore(conn).card("0100000001"))
    assert stored is not None
    assert (stored["status"], stored["ended_on"], stored["valid_to"]) == (
        2,
        "2025-01-02",
        "2030-09-30",
    )
    child = db.run_sync(lambda conn: InsuranceStore(conn).participant("001324000001"))
    assert child is not None and child["date_of_death"] == "2025-01-02"


def allowance(personal_id: str, reference: str) -> tuple[Any, ...]:
    return (
        personal_id, "2024-05-01", 18_000_000, 1_800_000, "pensioner", reference,
        "2024-05-10", "Trần Thị Hoa", "001185004321", 1, "", "",
    )  # fmt: skip


def test_one_allowance_per_person_and_per_payment_reference(db: Database) -> None:
    def insert(row: tuple[Any, ...]) -> None:
        db.run_sync(lambda conn: InsuranceStore(conn).insert_funeral_allowance(row), attempts=1)

    insert(allowance("001150000001", "MT-2024-00000001"))
    with pytest.raises(UniqueViolation):
        insert(allowance("001150000001", "MT-2024-00000002"))
    with pytest.raises(UniqueViolation):
        insert(allowance("001150000002", "MT-2024-00000001"))
    row = db.run_sync(lambda conn: InsuranceStore(conn).funeral_allowance("001150000001"))
    assert row is not None
    assert (row["amount_vnd"], row["payment_reference"]) == (18_000_000, "MT-2024-00000001")
