"""Calendar helpers shared by the registries. Dates travel as ISO strings."""

from __future__ import annotations

import datetime as dt

from common.errors import InvalidArgument
from common.quoting import quote


def parse_date(field: str, value: str) -> dt.date:
    """Parse YYYY-MM-DD, naming the field when it is not a real calendar day."""
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidArgument.field(
            field, f"{quote(repr(value))} is not a real date (YYYY-MM-DD)"
        ) from None


def parse_optional_date(field: str, value: str, default: dt.date) -> dt.date:
    return parse_date(field, value) if value else default


def add_years(day: dt.date, years: int) -> dt.date:
    """The same calendar day `years` later; 29 February becomes 1 March."""
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        return day.replace(year=day.year + years, month=3, day=1)


def age_in_years(born: dt.date, on: dt.date) -> int:
    before_birthday = (on.month, on.day) < (born.month, born.day)
    return on.year - born.year - (1 if before_birthday else 0)


def first_day_of_next_month(day: dt.date) -> dt.date:
    return dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)
