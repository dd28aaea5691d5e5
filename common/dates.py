"""Calendar helpers shared by the registries. Dates travel as ISO strings."""

from __future__ import annotations

import datetime as dt
import re

from common.errors import InvalidArgument
from common.quoting import quote

_ISO_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def parse_date(field: str, value: str) -> dt.date:
    """Parse YYYY-MM-DD, naming the field when it is not a real calendar day.

    Only the YYYY-MM-DD form is accepted: date.fromisoformat would also take
    20240501 or 2024-W18-3, which no contract field means."""
    try:
        if not _ISO_DATE.match(value):
            raise ValueError(value)
        return dt.date.fromisoformat(value)
    except ValueError:
        raise InvalidArgument.field(
            field, f"{quote(repr(value))} is not a real date (YYYY-MM-DD)"
        ) from None


def past_day(field: str, value: str, latest: dt.date) -> dt.date:
    """A real calendar day that records the past (a birth, a death, a
    registration, a request): not after `latest`, which is today plus the
    configured clock tolerance (common.clock.latest_past_day)."""
    day = parse_date(field, value)
    if day > latest:
        raise InvalidArgument.field(field, f"{value} is in the future")
    return day


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
