"""The personal ID number structure (shared/domain.md) and the province table."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from common.identifiers import PersonalIdNumber, century_sex_digit, parse_personal_id
from common.logging import mask_id_number
from common.provinces import BUNDLED, provinces

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "provinces.csv"


def test_example_from_the_brief_a_girl_born_2024_in_hanoi() -> None:
    assert PersonalIdNumber.prefix_for("001", dt.date(2024, 5, 1), female=True) == "001324"


@pytest.mark.parametrize(
    ("year", "female", "digit"),
    [
        (1950, False, 0),
        (1999, True, 1),
        (2000, False, 2),
        (2024, True, 3),
        (2150, True, 5),
        (2399, False, 8),
    ],
)
def test_century_sex_digit(year: int, female: bool, digit: int) -> None:
    assert century_sex_digit(year, female=female) == digit


def test_structure_is_checked_and_there_is_no_check_digit() -> None:
    parsed = parse_personal_id("079185000321")
    assert (parsed.province_code, parsed.century_sex_digit, parsed.year_digits) == ("079", 1, "85")
    assert parsed.female
    for bad in ("12345", "999185000321", "07918500032a"):
        with pytest.raises(ValueError):
            parse_personal_id(bad)


def test_logs_never_show_a_full_id_number() -> None:
    assert mask_id_number("citizen 001324000001 born") == "citizen 0013******01 born"


def test_bundled_province_table_matches_the_shared_one() -> None:
    assert len(provinces()) == 63
    if SHARED.exists():
        assert BUNDLED.read_bytes() == SHARED.read_bytes()
