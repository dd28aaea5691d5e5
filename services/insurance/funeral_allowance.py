"""Who receives the funeral allowance (trợ cấp mai táng), and how much.

Law on Social Insurance 2014 (58/2014/QH13) art. 66 (compulsory insurance)
and art. 80 (voluntary insurance); from 1 July 2025 the Law on Social
Insurance 2024 (41/2024/QH15), which keeps the same bases, measures the amount
in a "reference level" equal to the base salary until changed, and adds the
recipients of the new monthly social allowance.

Not being eligible is an answer, not an error: the dossier still completes and
the declarant is told why.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

# Art. 66(2) / art. 80(2): ten times the base salary in force in the month of death.
MULTIPLIER = 10
# Art. 66(1)(a): a compulsory participant with at least 12 months of contributions.
COMPULSORY_MONTHS = 12
# Art. 80(1): a voluntary participant with at least 60 months of contributions.
VOLUNTARY_MONTHS = 60
# Law 41/2024/QH15 takes effect: recipients of the monthly social allowance
# with enough contributions become a basis of their own.
SOCIAL_ALLOWANCE_BASIS_FROM = dt.date(2025, 7, 1)


@dataclass(frozen=True)
class InsuranceHistory:
    """What the registry knows of the deceased's insurance."""

    compulsory_contribution_months: int
    voluntary_contribution_months: int
    pensioner: bool
    receives_monthly_occupational_allowance: bool
    receives_monthly_social_allowance: bool


@dataclass(frozen=True)
class Eligibility:
    eligible: bool
    # The basis when eligible, what is missing when not; read by a person.
    reason: str


def _contributions(history: InsuranceHistory) -> str:
    return (
        f"compulsory contributions {history.compulsory_contribution_months} months "
        f"and voluntary {history.voluntary_contribution_months} months"
    )


def _basis(
    history: InsuranceHistory, date_of_death: dt.date, work_accident_or_occupational_disease: bool
) -> str | None:
    """The first basis that applies, or None. Art. 66(1), art. 80(1)."""
    enough_compulsory = history.compulsory_contribution_months >= COMPULSORY_MONTHS
    enough_voluntary = history.voluntary_contribution_months >= VOLUNTARY_MONTHS
    if history.pensioner:
        return "pensioner"
    if history.receives_monthly_occupational_allowance:
        return "receives a monthly work-accident or occupational-disease allowance"
    if (
        date_of_death >= SOCIAL_ALLOWANCE_BASIS_FROM
        and history.receives_monthly_social_allowance
        and (enough_compulsory or enough_voluntary)
    ):
        return f"receives the monthly social allowance, with {_contributions(history)}"
    if work_accident_or_occupational_disease:
        return "died of a work accident or occupational disease"
    if enough_compulsory:
        return f"compulsory contributions: {history.compulsory_contribution_months} months"
    if enough_voluntary:
        return f"voluntary contributions: {history.voluntary_contribution_months} months"
    return None


def eligibility(
    history: InsuranceHistory | None,
    *,
    date_of_death: dt.date,
    work_accident_or_occupational_disease: bool,
) -> Eligibility:
    if history is None:
        return Eligibility(False, "no social insurance record")
    basis = _basis(history, date_of_death, work_accident_or_occupational_disease)
    if basis is not None:
        return Eligibility(True, basis)
    return Eligibility(
        False,
        f"compulsory contributions {history.compulsory_contribution_months} months "
        f"(needs {COMPULSORY_MONTHS}) and voluntary "
        f"{history.voluntary_contribution_months} months (needs {VOLUNTARY_MONTHS})",
    )


def amount_vnd(base_salary_vnd: int) -> int:
    return MULTIPLIER * base_salary_vnd
