"""National identifiers, as the rules in shared/domain.md describe them.

Personal identification number (số định danh cá nhân, Law on Identification
2023, Decree 70/2024): 12 digits PPP G YY NNNNNN — province of birth
registration, century/sex digit, last two digits of the birth year, a six-digit
serial unique within the prefix. There is no check digit.

Social insurance number (mã số BHXH): 10 digits, one per person for life.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from common.provinces import is_province

_PERSONAL_ID = re.compile(r"^[0-9]{12}$")
_SOCIAL_INSURANCE = re.compile(r"^[0-9]{10}$")
FIRST_CENTURY = 20  # G = 0/1 for the 20th century (1900-1999), 2/3 for the 21st...
LAST_CENTURY = 24


def century_sex_digit(year: int, *, female: bool) -> int:
    """G: 0 male / 1 female for 1900-1999, 2/3 for 2000-2099, ... up to 8/9."""
    century = year // 100 + 1
    if not FIRST_CENTURY <= century <= LAST_CENTURY:
        raise ValueError(f"year {year} is outside the centuries the ID number encodes")
    return (century - FIRST_CENTURY) * 2 + (1 if female else 0)


@dataclass(frozen=True)
class PersonalIdNumber:
    province_code: str
    century_sex_digit: int
    year_digits: str
    serial: str

    @property
    def value(self) -> str:
        return f"{self.province_code}{self.century_sex_digit}{self.year_digits}{self.serial}"

    @property
    def female(self) -> bool:
        return self.century_sex_digit % 2 == 1

    @property
    def birth_century_start(self) -> int:
        return 1900 + 100 * (self.century_sex_digit // 2)

    def matches_birth(self, born: dt.date, *, female: bool) -> bool:
        return (
            self.century_sex_digit == century_sex_digit(born.year, female=female)
            and self.year_digits == f"{born.year % 100:02d}"
        )

    @staticmethod
    def prefix_for(province_code: str, born: dt.date, *, female: bool) -> str:
        return f"{province_code}{century_sex_digit(born.year, female=female)}{born.year % 100:02d}"


def parse_personal_id(value: str) -> PersonalIdNumber:
    """Parse and check the structure; ValueError says what is wrong."""
    if not _PERSONAL_ID.match(value):
        raise ValueError("must be exactly 12 digits")
    province = value[:3]
    if not is_province(province):
        raise ValueError(f"starts with {province}, which is not a province code")
    return PersonalIdNumber(province, int(value[3]), value[4:6], value[6:])


def is_valid_personal_id(value: str) -> bool:
    try:
        parse_personal_id(value)
    except ValueError:
        return False
    return True


def is_valid_social_insurance_number(value: str) -> bool:
    return bool(_SOCIAL_INSURANCE.match(value))
