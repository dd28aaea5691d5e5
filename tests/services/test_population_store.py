"""The population registry's store, the same contract on SQLite (a file under
tmp_path) and PostgreSQL (a fresh database): personal ID serials, seeding
(what is added, the residences it opens, a replay, a certificate conflict)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from common.database import Connection, Database, IntegrityError
from lienthong.common.v1.common_pb2 import SEX_FEMALE
from services.population.seed import CitizenRow
from services.population.store import PopulationStore, open_store


@pytest.fixture
def db(store_location: str) -> Iterator[Database]:
    opened = open_store(store_location)
    yield opened
    opened.close()


def person(pid: str, household: str | None = None, certificate: str = "") -> CitizenRow:
    return CitizenRow(
        pid,
        "Lan",
        SEX_FEMALE,
        "2024-01-01",
        "",
        "",
        "",
        "",
        "",
        certificate,
        pid[:3],
        household,
        None,
    )


def seeded(db: Database, *personal_ids: str) -> None:
    rows = [person(pid) for pid in personal_ids]
    db.run_sync(lambda conn: PopulationStore(conn).seed([], rows))


def allocate(db: Database, prefix: str) -> int | None:
    return db.run_sync(lambda conn: PopulationStore(conn).allocate_serial(prefix))


def test_serials_start_at_one_and_count_up_per_prefix(db: Database) -> None:
    assert [allocate(db, "001324") for _ in range(3)] == [1, 2, 3]
    assert allocate(db, "001224") == 1


def test_serials_skip_every_run_of_taken_numbers(db: Database) -> None:
    seeded(db, "001324000001", "001324000002", "001324000003", "001324000005")
    seeded(db, "001325000004")  # another prefix does not count
    assert [allocate(db, "001324") for _ in range(3)] == [4, 6, 7]
    # Seeded after the counter moved on: still skipped.
    seeded(db, "001324000008", "001324000009")
    assert allocate(db, "001324") == 10


def test_a_used_up_prefix_allocates_nothing_and_keeps_its_counter(db: Database) -> None:
    seeded(db, "001324999998", "001324999999")
    db.run_sync(lambda conn: conn.execute("INSERT INTO id_serials VALUES ('001324', 999997)"))
    assert allocate(db, "001324") == 999997
    assert allocate(db, "001324") is None
    assert allocate(db, "001324") is None


def test_a_refused_unit_of_work_gives_its_serial_back(db: Database) -> None:
    def allocate_then_refuse(conn: Connection) -> None:
        PopulationStore(conn).allocate_serial("001324")
        raise RuntimeError("refused after the number was drawn")

    assert allocate(db, "001324") == 1
    with pytest.raises(RuntimeError):
        db.run_sync(allocate_then_refuse)
    assert allocate(db, "001324") == 2


def test_the_counter_survives_reopening(store_location: str) -> None:
    first = open_store(store_location)
    assert allocate(first, "001324") == 1
    first.close()
    again = open_store(store_location)
    assert allocate(again, "001324") == 2
    again.close()


def households(db: Database) -> list[tuple[str, str]]:
    return db.run_sync(
        lambda conn: [
            (row["personal_id_number"], row["household_id"])
            for row in conn.execute(
                "SELECT personal_id_number, household_id FROM residences "
                "WHERE removed_on IS NULL ORDER BY personal_id_number"
            )
        ]
    )


def seed(
    db: Database, homes: list[tuple[str, str, str, str]], people: list[CitizenRow]
) -> tuple[int, int]:
    return db.run_sync(lambda conn: PopulationStore(conn).seed(homes, people))


HOMES = [("HK-1", "1 Phố Huế", "001", ""), ("HK-2", "2 Lê Lợi", "079", "")]


def test_a_seed_adds_new_rows_and_opens_their_residences(db: Database) -> None:
    people = [
        person("001324000001", "HK-1"),
        person("001324000002"),
        person("001324000003", "HK-2"),
    ]
    assert seed(db, HOMES, people) == (2, 3)
    assert households(db) == [("001324000001", "HK-1"), ("001324000003", "HK-2")]


def test_a_replayed_seed_adds_nothing_and_reopens_nothing(db: Database) -> None:
    people = [person("001324000001", "HK-1"), person("001324000002", "HK-2")]
    seed(db, HOMES, people)
    db.run_sync(
        lambda conn: conn.execute(
            "UPDATE residences SET removed_on = '2025-01-01' WHERE personal_id_number = ?",
            ("001324000001",),
        )
    )
    more = [*people, person("001324000003", "HK-1")]
    assert seed(db, HOMES, more) == (0, 1)
    assert households(db) == [("001324000002", "HK-2"), ("001324000003", "HK-1")]


def test_a_certificate_owned_by_another_citizen_is_an_integrity_error_leaving_nothing(
    db: Database,
) -> None:
    seed(db, [], [person("001324000001", certificate="GCS-1")])

    def clash(conn: Connection) -> int:
        store = PopulationStore(conn)
        with pytest.raises(IntegrityError):
            store.seed(HOMES, [person("001324000009", "HK-1", certificate="GCS-1")])
        # The savepoint undid the seed, and the transaction is still usable.
        return len(store.existing_households(["HK-1", "HK-2"]))

    assert db.run_sync(clash) == 0
    assert households(db) == []
