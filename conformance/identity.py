"""Personal ID numbers and dates for the kit's own people, written by hand
from shared/domain.md (never from the project's implementation).

Personal identification number (Law on Identification 2023, Decree 70/2024):
12 digits PPP G YY NNNNNN, the province of birth registration, the
century/sex digit, the last two digits of the birth year, a serial.
"""

from __future__ import annotations

import datetime as dt
import secrets

from conformance.kit import Context
from lienthong.common.v1.common_pb2 import SEX_FEMALE

# A few province codes of shared/data/provinces.csv (Hà Nội, Hải Phòng, Đà
# Nẵng, Hồ Chí Minh City, Cần Thơ), and one that is no province.
PROVINCES = ("001", "031", "048", "079", "092")
NOT_A_PROVINCE = "999"
# G by the first two digits of the birth year: (male, female).
CENTURY_SEX_DIGITS = {
    19: ("0", "1"),
    20: ("2", "3"),
    21: ("4", "5"),
    22: ("6", "7"),
    23: ("8", "9"),
}


def century_sex_digit(year: int, sex: int) -> str:
    male, female = CENTURY_SEX_DIGITS[year // 100]
    return female if sex == SEX_FEMALE else male


def id_number(ctx: Context, province: str, born: dt.date, sex: int) -> str:
    """A well-formed number nobody holds yet (a random serial)."""
    digit = century_sex_digit(born.year, sex)
    return f"{province}{digit}{born.year % 100:02d}{ctx.fresh.digits(6)}"


def adult_birthday(first_year: int = 1960, last_year: int = 1999) -> dt.date:
    """A random day in those years: spreads the kit's people over many ID
    prefixes, so runs against one long-lived server rarely meet."""
    start = dt.date(first_year, 1, 1)
    days = (dt.date(last_year, 12, 31) - start).days
    return start + dt.timedelta(days=secrets.randbelow(days + 1))
