from __future__ import annotations

import datetime as dt

from gateway.working_days import add_working_days, is_working_day


def test_weekends_and_holidays_are_not_working_days() -> None:
    assert not is_working_day(dt.date(2026, 11, 28))  # Saturday
    assert not is_working_day(dt.date(2026, 9, 2))  # National Day
    assert is_working_day(dt.date(2026, 11, 27))


def test_working_days_skip_weekends_and_tet() -> None:
    friday = dt.datetime(2026, 11, 27, 10, tzinfo=dt.UTC)
    assert add_working_days(friday, 1).date() == dt.date(2026, 11, 30)
    # Tết 2026: 16-20 February are holidays.
    before_tet = dt.datetime(2026, 2, 13, 10, tzinfo=dt.UTC)
    assert add_working_days(before_tet, 1).date() == dt.date(2026, 2, 23)
