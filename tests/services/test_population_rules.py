"""The population registry's rules on their own: ID numbers, death-declaration
lateness, settings. Serial allocation is in test_population_store.py."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from lienthong.common.v1.common_pb2 import SEX_FEMALE, SEX_MALE
from services.population.config import load_config
from services.population.rules import id_mismatch, id_prefix, judge_death_declaration


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
