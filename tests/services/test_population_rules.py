"""The population registry's rules on their own: ID numbers, serial
allocation against a real SQLite file, death-declaration lateness, settings."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.sqlite import transaction
from lienthong.common.v1.common_pb2 import SEX_FEMALE, SEX_MALE
from services.population.config import load_config
from services.population.rules import id_mismatch, id_prefix, judge_death_declaration
from services.population.seed import CitizenRow
from services.population.store import PopulationStore


@pytest.mark.parametrize(
    ("province", "born", "sex", "prefix"),
    [
        ("001", dt.date(2024, 5, 1), SEX_FEMALE, "001324"),
        ("001", dt.date(2024, 5, 1), SEX_MALE, "001224"),
        ("079", dt.date(1985, 1, 31), SEX_MALE, "079085"),
        ("079", dt.date(1900, 1, 1), SEX_FEMALE, "079100"),
        ("048", dt.date(2100, 6, 1), SEX_FEMALE, "048500"),
    ],
)
def test_id_prefix_is_province_century_sex_and_year(
    province: str, born: dt.date, sex: int, prefix: str
) -> None:
    assert id_prefix(province, born, sex) == prefix


def test_id_prefix_refuses_a_year_outside_the_encoded_centuries() -> None:
    with pytest.raises(ValueError, match="outside the centuries"):
        id_prefix("001", dt.date(1899, 12, 31), SEX_MALE)


@pytest.mark.parametrize(
    ("value", "sex", "problem"),
    [
        ("001324000017", SEX_FEMALE, None),
        ("001224000017", SEX_MALE, None),
        ("00132400001", SEX_FEMALE, "must be exactly 12 digits"),
        ("003324000017", SEX_FEMALE, "starts with 003, which is not a province code"),
        ("001224000017", SEX_FEMALE, "century/sex digit is 2, but a female born in 2024 has 3"),
        ("001124000017", SEX_FEMALE, "century/sex digit is 1, but a female born in 2024 has 3"),
        ("001323000017", SEX_FEMALE, "year digits are 23, but the date of birth is in 2024"),
    ],
)
def test_id_mismatch_explains_a_number_that_cannot_be_this_persons(
    value: str, sex: int, problem: str | None
) -> None:
    assert id_mismatch(value, dt.date(2024, 3, 3), sex) == problem


@pytest.mark.parametrize(
    ("declared_on", "limit", "days", "late"),
    [
        (dt.date(2025, 1, 10), 15, 0, False),
        (dt.date(2025, 1, 25), 15, 15, False),
        (dt.date(2025, 1, 26), 15, 16, True),
        (dt.date(2025, 2, 9), 30, 30, False),
        (dt.date(2025, 2, 10), 30, 31, True),
    ],
)
def test_death_declared_more_than_the_limit_after_is_late(
    declared_on: dt.date, limit: int, days: int, late: bool
) -> None:
    judged = judge_death_declaration(dt.date(2025, 1, 10), declared_on, limit)
    assert (judged.days_after_death, judged.declared_late) == (days, late)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[PopulationStore]:
    opened = PopulationStore(tmp_path / "population.sqlite3")
    yield opened
    opened.close()


def seeded(store: PopulationStore, *personal_ids: str) -> None:
    rows = [
        CitizenRow(
            pid, "Lan", SEX_FEMALE, "2024-01-01", "", "", "", "", "", "", pid[:3], None, None
        )
        for pid in personal_ids
    ]
    with transaction(store.conn):
        store.seed([], rows)


def allocate(store: PopulationStore, prefix: str) -> int | None:
    with transaction(store.conn):
        return store.allocate_serial(prefix)


def test_serials_start_at_one_and_count_up_per_prefix(store: PopulationStore) -> None:
    assert [allocate(store, "001324") for _ in range(3)] == [1, 2, 3]
    assert allocate(store, "001224") == 1


def test_serials_skip_every_run_of_taken_numbers(store: PopulationStore) -> None:
    seeded(store, "001324000001", "001324000002", "001324000003", "001324000005")
    seeded(store, "001325000004")  # another prefix does not count
    assert [allocate(store, "001324") for _ in range(3)] == [4, 6, 7]
    # Seeded after the counter moved on: still skipped.
    seeded(store, "001324000008", "001324000009")
    assert allocate(store, "001324") == 10


def test_a_used_up_prefix_allocates_nothing_and_keeps_its_counter(
    store: PopulationStore,
) -> None:
    seeded(store, "001324999998", "001324999999")
    with transaction(store.conn):
        store.conn.execute("INSERT INTO id_serials VALUES ('001324', 999997)")
    assert allocate(store, "001324") == 999997
    assert allocate(store, "001324") is None
    assert allocate(store, "001324") is None


def test_the_counter_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "population.sqlite3"
    first = PopulationStore(path)
    assert allocate(first, "001324") == 1
    first.close()
    again = PopulationStore(path)
    assert allocate(again, "001324") == 2
    again.close()


def test_settings_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("LIENTHONG_DEATH_DECLARATION_DAYS", raising=False)
    monkeypatch.delenv("LIENTHONG_POPULATION_PORT", raising=False)
    monkeypatch.setenv("LIENTHONG_POPULATION_DB", str(tmp_path / "p.sqlite3"))
    config = load_config()
    assert config.death_declaration_days == 15
    assert config.registry.port == 50051
    assert config.registry.database == str(tmp_path / "p.sqlite3")
    monkeypatch.setenv("LIENTHONG_DEATH_DECLARATION_DAYS", "30")
    assert load_config().death_declaration_days == 30
    monkeypatch.setenv("LIENTHONG_DEATH_DECLARATION_DAYS", "-1")
    with pytest.raises(SystemExit, match="must not be negative"):
        load_config()
