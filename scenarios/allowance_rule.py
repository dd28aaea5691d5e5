"""The funeral allowance as the scenarios expect it, written from the domain
brief (../shared/domain.md) on its own, not imported from services/insurance:
the generator plans with it and the replay's audit judges the registry by it,
so a wrong rule in the service is caught rather than copied.

Law on Social Insurance 2014 art. 66 and 80 (from 1 July 2025 the 2024 Law,
same bases, plus the monthly social allowance): the deceased had a social
insurance record and is a pensioner, receives a monthly work-accident or
occupational-disease allowance, died of a work accident or occupational
disease, has 12 months of compulsory or 60 of voluntary contributions, or
(from 2025-07-01) receives the monthly social allowance with either of those.
The amount is 10 × the base salary in force in the month of death.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

# (first day in force, VND), ../shared/domain.md; Decrees 66/2013, 47/2016,
# 47/2017, 72/2018, 38/2019, 24/2023, 73/2024. The unconfirmed 2026 rise is out.
BASE_SALARY_FROM = (
    (dt.date(2013, 7, 1), 1_150_000),
    (dt.date(2016, 5, 1), 1_210_000),
    (dt.date(2017, 7, 1), 1_300_000),
    (dt.date(2018, 7, 1), 1_390_000),
    (dt.date(2019, 7, 1), 1_490_000),
    (dt.date(2023, 7, 1), 1_800_000),
    (dt.date(2024, 7, 1), 2_340_000),
)
SOCIAL_ALLOWANCE_FROM = dt.date(2025, 7, 1)


@dataclass(frozen=True)
class SeededHistory:
    """A deceased's insurance record as the scenario seeded it."""

    compulsory_months: int
    voluntary_months: int
    pensioner: bool
    monthly_occupational_allowance: bool
    monthly_social_allowance: bool


def allowance_due(history: SeededHistory | None, died: dt.date, work_accident: bool) -> bool:
    """Whether VSS owes the allowance (no record, nothing to pay from)."""
    if history is None:
        return False
    contributed = history.compulsory_months >= 12 or history.voluntary_months >= 60
    social = history.monthly_social_allowance and died >= SOCIAL_ALLOWANCE_FROM and contributed
    return (
        history.pensioner
        or history.monthly_occupational_allowance
        or work_accident
        or contributed
        or social
    )


def allowance_vnd(died: dt.date) -> int | None:
    """10 × the base salary of the month of death; None before the table."""
    month = died.replace(day=1)
    amounts = [amount for since, amount in BASE_SALARY_FROM if since <= month]
    return 10 * amounts[-1] if amounts else None
