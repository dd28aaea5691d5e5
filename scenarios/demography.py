"""Ages, sexes, ethnicities, fertility and mortality of the synthetic population.

shared/domain.md gives only crude rates (about 14 births and 6.5 deaths per
1,000 a year). The shapes below are approximations of Vietnam around 2024,
rounded from the General Statistics Office's 2019 census and the UN World
Population Prospects; they are data, meant to be tuned, not authorities.
scenarios/README.md shows the crude rates they imply.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import random
from dataclasses import dataclass

from common.dates import age_in_years

BAND_YEARS = 5
# Share of the population in each five-year age band, 0-4 to 95-99 (percent).
AGE_PYRAMID = (
    7.0, 8.0, 7.9, 7.0, 6.6, 7.3, 8.0, 7.9, 7.3, 6.6,
    6.0, 5.4, 4.6, 3.7, 2.6, 1.6, 1.1, 0.7, 0.3, 0.1,
)  # fmt: skip
# Share of men in each band: about 112 boys are born per 100 girls (GSO 2023),
# and women outlive men, so the old bands are mostly women.
MALE_SHARE_BY_BAND = (
    0.53, 0.53, 0.52, 0.52, 0.51, 0.50, 0.50, 0.50, 0.50, 0.50,
    0.49, 0.48, 0.47, 0.46, 0.44, 0.42, 0.38, 0.35, 0.30, 0.25,
)  # fmt: skip
SEX_RATIO_AT_BIRTH = 1.12  # boys per girl
MALE_SHARE_AT_BIRTH = SEX_RATIO_AT_BIRTH / (1 + SEX_RATIO_AT_BIRTH)

# 2019 census, share of the population (percent); the 45 smallest groups are
# folded into the last few named ones. Ethnicity is not tied to a province here.
ETHNICITY_SHARES = (
    ("Kinh", 85.3),
    ("Tày", 1.9),
    ("Thái", 1.9),
    ("Mường", 1.5),
    ("H'Mông", 1.5),
    ("Khmer", 1.4),
    ("Nùng", 1.1),
    ("Dao", 0.9),
    ("Hoa", 0.8),
    ("Gia Rai", 0.8),
    ("Ê Đê", 0.8),
    ("Ba Na", 0.6),
    ("Sán Chay", 0.5),
    ("Chăm", 0.5),
)
NATIONALITY = "Việt Nam"

# Age-specific fertility, births per 1,000 women a year, bands 15-19 to 45-49
# (a total fertility rate of 1.96, GSO 2023).
# Only mothers of 18 to 45 are planned (the brief's limits), so these weigh
# which of them gives birth.
FERTILITY_BY_BAND = {15: 29.0, 20: 109.0, 25: 118.0, 30: 80.0, 35: 42.0, 40: 11.0, 45: 2.0}
MOTHER_MIN_AGE = 18
ADULT_AGE = 18  # of age: may head a household, declare, be paid
MOTHER_MAX_AGE = 45

# Annual probability of dying: a Gompertz curve (doubling about every 8 years)
# over a floor of accidents and illness, with infant mortality (about 12 per
# 1,000) at age 0.
INFANT_MORTALITY = 0.012
BACKGROUND_MORTALITY = 0.0005
GOMPERTZ_LEVEL = 0.000058
GOMPERTZ_SLOPE = 0.085

_DAYS_PER_YEAR = 365.2425
_CUMULATIVE_AGE = tuple(itertools.accumulate(AGE_PYRAMID))
_CUMULATIVE_ETHNICITY = tuple(itertools.accumulate(share for _, share in ETHNICITY_SHARES))


def mortality(age: int) -> float:
    if age == 0:
        return INFANT_MORTALITY
    return BACKGROUND_MORTALITY + GOMPERTZ_LEVEL * math.exp(GOMPERTZ_SLOPE * age)


def fertility(age: int) -> float:
    """Births per woman a year at `age` (0 outside 15-49)."""
    return FERTILITY_BY_BAND.get(age // BAND_YEARS * BAND_YEARS, 0.0) / 1000


@dataclass(frozen=True)
class People:
    """One entry per citizen, by index: what the rest of the generator builds on."""

    ages: list[int]
    born: list[dt.date]
    female: list[bool]
    ethnicity: list[str]


def sample_people(rng: random.Random, count: int, today: dt.date) -> People:
    bands = rng.choices(range(len(AGE_PYRAMID)), cum_weights=_CUMULATIVE_AGE, k=count)
    today_ordinal = today.toordinal()
    ages: list[int] = []
    born: list[dt.date] = []
    female: list[bool] = []
    random_ = rng.random
    for band in bands:
        years = band * BAND_YEARS + random_() * BAND_YEARS
        birthday = dt.date.fromordinal(today_ordinal - 1 - int(years * _DAYS_PER_YEAR))
        born.append(birthday)
        ages.append(age_in_years(birthday, today))
        female.append(random_() >= MALE_SHARE_BY_BAND[band])
    names = [name for name, _ in ETHNICITY_SHARES]
    ethnicity = rng.choices(names, cum_weights=_CUMULATIVE_ETHNICITY, k=count)
    return People(ages=ages, born=born, female=female, ethnicity=ethnicity)
