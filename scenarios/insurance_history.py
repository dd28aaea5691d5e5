"""Each citizen's record at Vietnam Social Security, if any.

shared/domain.md: about 93-94 % of people hold health insurance (and so a
10-digit social insurance number: since 2021 the card shows only that number,
Decision 1666/QD-BHXH); about 20 million of 100 million pay social insurance,
2.3 million of them voluntarily; about 3.3 million receive a pension or a
monthly allowance. The shares below, by age group, reproduce those totals
over the age pyramid of scenarios.demography (worked out in
scenarios/README.md). Contribution months decide the funeral allowance
(services/insurance/funeral_allowance.py: 12 compulsory or 60 voluntary).
"""

from __future__ import annotations

import random
from typing import NamedTuple

COMPULSORY = "compulsory"  # paying now through an employer
VOLUNTARY = "voluntary"
PENSIONER = "pensioner"
OCCUPATIONAL_ALLOWANCE = "occupational_allowance"  # monthly work-accident/disease allowance
CARD_ONLY = "card_only"  # health insurance through another group: children, students, poor...
NONE = "none"  # no social insurance number at all

WORKING_AGE = 18
PENSION_AGE = 60  # roughly: 60-62 for men, 56-60 for women in 2025, rising
SOCIAL_ALLOWANCE_AGE = 75  # Law on Social Insurance 2024: the new monthly social allowance

# Shares within each age group: (category, share). Over the pyramid they give
# compulsory ≈ 17.5 %, voluntary ≈ 2.3 %, pension or monthly allowance ≈ 3.3 %,
# no record ≈ 6.6 % of the population.
SHARES_UNDER_WORKING_AGE = ((CARD_ONLY, 0.97), (NONE, 0.03))
SHARES_WORKING_AGE = ((COMPULSORY, 0.30), (VOLUNTARY, 0.04), (CARD_ONLY, 0.57), (NONE, 0.09))
SHARES_PENSION_AGE = (
    (PENSIONER, 0.215),
    (OCCUPATIONAL_ALLOWANCE, 0.005),
    (CARD_ONLY, 0.74),
    (NONE, 0.04),
)
# Old people without a pension who once paid for a while (too short for a
# pension, long enough for the funeral allowance), and the share of those of
# 75 and over who receive the monthly social allowance.
PAST_CONTRIBUTOR_SHARE = 0.12
SOCIAL_ALLOWANCE_SHARE = 0.5
VOLUNTARY_SCHEME_MAX_MONTHS = 216  # voluntary social insurance began in 2008
PENSION_MONTHS = (180, 420)  # 15 to 35 years of contributions
MAX_MONTHS = 1000  # the contract's limit


_no_flags = (False, False, False)  # pensioner, occupational allowance, social allowance


class History(NamedTuple):
    category: str
    compulsory_months: int
    voluntary_months: int
    pensioner: bool
    occupational_allowance: bool
    social_allowance: bool


def _draw(rng: random.Random, shares: tuple[tuple[str, float], ...]) -> str:
    roll = rng.random()
    for category, share in shares:
        roll -= share
        if roll < 0:
            return category
    return shares[-1][0]


def history(rng: random.Random, age: int) -> History | None:
    """The insurance record of a citizen of `age`; None for no record."""
    if age < WORKING_AGE:
        category = _draw(rng, SHARES_UNDER_WORKING_AGE)
    elif age < PENSION_AGE:
        category = _draw(rng, SHARES_WORKING_AGE)
    else:
        category = _draw(rng, SHARES_PENSION_AGE)
    if category == NONE:
        return None
    working_months = max(1, (min(age, PENSION_AGE) - WORKING_AGE) * 12)
    if category == COMPULSORY:
        return History(category, rng.randint(1, min(working_months, MAX_MONTHS)), 0, *_no_flags)
    if category == VOLUNTARY:
        months = rng.randint(1, min(working_months, VOLUNTARY_SCHEME_MAX_MONTHS))
        return History(category, 0, months, *_no_flags)
    if category == PENSIONER:
        return History(category, rng.randint(*PENSION_MONTHS), 0, True, False, False)
    if category == OCCUPATIONAL_ALLOWANCE:
        return History(category, rng.randint(1, working_months), 0, False, True, False)
    past = 0
    if age >= PENSION_AGE and rng.random() < PAST_CONTRIBUTOR_SHARE:
        past = rng.randint(12, PENSION_MONTHS[0] - 1)
    social = age >= SOCIAL_ALLOWANCE_AGE and rng.random() < SOCIAL_ALLOWANCE_SHARE
    return History(category, past, 0, False, False, social)
