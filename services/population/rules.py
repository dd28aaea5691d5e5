"""Civil-status and identification rules that need no database.

Kept apart from the registry so each rule can be checked on its own
(tests/services/test_population_rules.py) and read without the SQL around it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from common.identifiers import PersonalIdNumber, century_sex_digit, parse_personal_id
from lienthong.common.v1 import common_pb2

# Law on Civil Status 2014 art. 33(1): relatives declare a death within 15 days
# of it; a later declaration is still registered but flagged late. The limit is
# configuration (LIENTHONG_DEATH_DECLARATION_DAYS) in case the law changes.
DEFAULT_DEATH_DECLARATION_DAYS = 15

# Law on Identification 2023, Decree 70/2024: PPP G YY NNNNNN, the last six
# digits a serial unique within the six-digit prefix. There is no check digit.
FIRST_SERIAL = 1
LAST_SERIAL = 999_999


def is_female(sex: int) -> bool:
    return sex == common_pb2.SEX_FEMALE


def id_prefix(province_code: str, born: dt.date, sex: int) -> str:
    """PPP G YY: registration province, century/sex digit, last two digits of
    the birth year. ValueError when the year lies outside the centuries G encodes."""
    return PersonalIdNumber.prefix_for(province_code, born, female=is_female(sex))


def personal_id_number(prefix: str, serial: int) -> str:
    return f"{prefix}{serial:06d}"


def id_mismatch(value: str, born: dt.date, sex: int) -> str | None:
    """Why `value` cannot be the number of a person born on `born` of `sex`;
    None when it can. Seeded records arrive with their numbers already
    assigned, so the structure is all that can be checked."""
    try:
        parsed = parse_personal_id(value)
        expected = century_sex_digit(born.year, female=is_female(sex))
    except ValueError as error:
        return str(error)
    if parsed.century_sex_digit != expected:
        person = "a female" if is_female(sex) else "a male"
        return (
            f"century/sex digit is {parsed.century_sex_digit}, but {person} "
            f"born in {born.year} has {expected}"
        )
    if parsed.year_digits != f"{born.year % 100:02d}":
        return f"year digits are {parsed.year_digits}, but the date of birth is in {born.year}"
    return None


@dataclass(frozen=True)
class DeathDeclaration:
    days_after_death: int
    declared_late: bool


def judge_death_declaration(
    died: dt.date, declared_on: dt.date, limit_days: int
) -> DeathDeclaration:
    """Law on Civil Status 2014 art. 33(1): on day `limit_days` after the death
    the declaration is still on time; from the day after it is late."""
    days = (declared_on - died).days
    return DeathDeclaration(days_after_death=days, declared_late=days > limit_days)
