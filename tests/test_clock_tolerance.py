"""The clock tolerance: how far past now a date recording the past may reach."""

from __future__ import annotations

import datetime as dt

import pytest

from common.clock import latest_past_day
from common.config import RegistryConfig
from gateway.config import GatewayConfig

# 23:57 in Vietnam (UTC+7): tomorrow there begins in 180 seconds.
BEFORE_MIDNIGHT = dt.datetime(2025, 9, 15, 16, 57, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("seconds", "latest"),
    [(0, dt.date(2025, 9, 15)), (179, dt.date(2025, 9, 15)), (180, dt.date(2025, 9, 16))],
)
def test_tomorrow_may_be_named_once_it_is_within_the_tolerance(
    seconds: int, latest: dt.date
) -> None:
    assert latest_past_day(BEFORE_MIDNIGHT, dt.timedelta(seconds=seconds)) == latest


def test_the_day_is_the_vietnamese_one() -> None:
    # 18:00 UTC is already 01:00 the next day in Vietnam.
    at = dt.datetime(2025, 9, 15, 18, 0, tzinfo=dt.UTC)
    assert latest_past_day(at, dt.timedelta(0)) == dt.date(2025, 9, 16)


def test_every_process_reads_the_tolerance_with_a_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LIENTHONG_CLOCK_TOLERANCE_SECONDS", raising=False)
    assert RegistryConfig.from_env("health", 1).clock_tolerance == dt.timedelta(seconds=300)
    monkeypatch.setenv("LIENTHONG_CLOCK_TOLERANCE_SECONDS", "30")
    assert RegistryConfig.from_env("health", 1).clock_tolerance == dt.timedelta(seconds=30)
    assert GatewayConfig.from_env().clock_tolerance == dt.timedelta(seconds=30)


@pytest.mark.parametrize("value", ["-1", "soon"])
def test_a_bad_tolerance_stops_the_start(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("LIENTHONG_CLOCK_TOLERANCE_SECONDS", value)
    with pytest.raises(SystemExit, match="LIENTHONG_CLOCK_TOLERANCE_SECONDS"):
        RegistryConfig.from_env("health", 1)
