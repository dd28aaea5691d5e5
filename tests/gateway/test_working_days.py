from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from gateway.time_limits import BUNDLED as BUNDLED_LIMITS
from gateway.time_limits import read_limits
from gateway.working_days import add_working_days, due_by, is_working_day

HANOI = dt.timezone(dt.timedelta(hours=7))


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


def test_the_same_working_day_before_the_cut_off_the_next_one_after() -> None:
    # ../shared/domain.md: a dossier received after 15:00 counts from the next working day.
    before = dt.datetime(2026, 11, 23, 14, 59, tzinfo=HANOI)  # Monday
    after = dt.datetime(2026, 11, 23, 15, 0, tzinfo=HANOI)
    assert due_by(before, 0).astimezone(HANOI).date() == dt.date(2026, 11, 23)
    assert due_by(after, 0).astimezone(HANOI).date() == dt.date(2026, 11, 24)
    assert due_by(before, 3).astimezone(HANOI).date() == dt.date(2026, 11, 26)
    assert due_by(after, 3).astimezone(HANOI).date() == dt.date(2026, 11, 27)


def test_days_are_vietnam_days_and_a_day_off_counts_from_the_next_working_day() -> None:
    # 20:00 UTC on Sunday is 03:00 on Monday in Hà Nội: received Monday morning.
    sunday_night_utc = dt.datetime(2026, 11, 22, 20, 0, tzinfo=dt.UTC)
    assert due_by(sunday_night_utc, 0).astimezone(HANOI).date() == dt.date(2026, 11, 23)
    saturday_noon = dt.datetime(2026, 11, 28, 12, 0, tzinfo=HANOI)
    assert due_by(saturday_noon, 0).astimezone(HANOI).date() == dt.date(2026, 11, 30)
    end = due_by(saturday_noon, 1).astimezone(HANOI)
    assert (end.date(), end.time()) == (dt.date(2026, 12, 1), dt.time(23, 59, 59))


def test_the_time_limits_are_data_and_a_broken_table_is_named(tmp_path: Path) -> None:
    limits = read_limits(BUNDLED_LIMITS)
    assert (limits.group("birth"), limits.group("death"), limits.supplement_window) == (3, 10, 7)
    assert limits.step("register_birth") == 0
    assert limits.step("verify_birth_certificate") is None
    broken = tmp_path / "limits.csv"
    broken.write_text("limit,working_days\ngroup.birth,-1\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"negative: group.birth; missing: group.death"):
        read_limits(broken)
