"""Planned births: the hospital's electronic birth certificate (seeded into the
health registry before anything is declared, Decree 63/2024 art. 5(2)) and
the parents' Form 01 a few days later."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Sequence, Set
from dataclasses import dataclass

from common.dates import age_in_years
from lienthong.common.v1.common_pb2 import SEX_FEMALE, SEX_MALE
from lienthong.gateway.v1 import gateway_pb2 as gw
from lienthong.health.v1 import health_pb2 as hl
from scenarios import form_parts
from scenarios.demography import (
    MALE_SHARE_AT_BIRTH,
    MOTHER_MAX_AGE,
    MOTHER_MIN_AGE,
    NATIONALITY,
    fertility,
)
from scenarios.facilities import GENERAL, MATERNITY
from scenarios.faults import (
    LATE_BIRTH_DECLARATION,
    MISSING_FIELDS,
    MOTHER_ID_MISMATCH,
    UNKNOWN_BIRTH_CERTIFICATE,
)
from scenarios.households import NOBODY
from scenarios.plan_context import PlanContext
from scenarios.population import SyntheticPopulation

# Born 1 to this many days before the declaration. The law allows 60 days
# (Law on Civil Status art. 15); online, families declare within days.
DECLARED_WITHIN_DAYS = 10
# A late declaration: the child is 7 to 9 years old, past any card entitlement
# (to the 6th birthday, or 30 September of that year).
LATE_DECLARATION_AGE_DAYS = (7 * 366, 9 * 365)
AT_MATERNITY_HOSPITAL_SHARE = 0.75  # else the general hospital
FATHER_DECLARES_SHARE = 0.3  # when the father is on record
DECLARE_HOUSEHOLD_SHARE = 0.5  # else leave it empty: the mother's household is used
BIRTH_WEIGHT_GRAMS = (3100, 450, 1200, 5000)  # mean, deviation, floor, ceiling
# Form 01 fields a faulty declaration leaves empty (gateway/procedures.py).
BLANKABLE_FIELDS = (
    "child_full_name",
    "place_of_birth",
    "ethnicity",
    "nationality",
    "initial_facility_code",
)


@dataclass(frozen=True)
class PlannedBirth:
    fault: str | None
    mother: int  # citizen index
    certificate: hl.BirthCertificate
    form: gw.BirthDeclaration
    seeded: bool  # whether the certificate goes into the health seed
    missing_fields: tuple[str, ...]


def choose_mothers(
    rng: random.Random,
    population: SyntheticPopulation,
    count: int,
    excluded: Set[int],
    today: dt.date,
) -> list[int]:
    """Women with a household who are 18 to 45 on every day a birth may fall,
    weighted by fertility at their age, each once.

    A load test may ask for more births than the population has such women
    (a peak hour replayed against a small population): then the women are
    drawn again, round after round, and some give birth more than once in the
    plan. No registry checks the spacing of births, so every one still completes.
    """
    earliest = today - dt.timedelta(days=DECLARED_WITHIN_DAYS)
    people = population.people
    candidates = [
        person
        for person, (female, born) in enumerate(zip(people.female, people.born, strict=True))
        if female
        and person not in excluded
        and age_in_years(born, earliest) >= MOTHER_MIN_AGE
        and age_in_years(born, today) <= MOTHER_MAX_AGE
    ]
    if count and not candidates:
        raise ValueError(f"{count} births asked, but the population has no women of 18-45")
    weights = [fertility(people.ages[person]) for person in candidates]
    mothers: list[int] = []
    while len(mothers) < count:
        wanted = min(count - len(mothers), len(candidates))
        mothers += form_parts.weighted_sample(rng, candidates, weights, wanted)
    return mothers


def plan_birth(context: PlanContext, mother: int, fault: str | None) -> PlannedBirth:
    rng, population, excluded, today = (
        context.rng,
        context.population,
        context.excluded,
        context.today,
    )
    mother_record = population.citizens[mother]
    household = population.household_of(mother)
    province = household.province_code
    partner = population.families.partner_of[mother]
    father = partner if partner != NOBODY and partner not in excluded else NOBODY
    born = today - dt.timedelta(days=rng.randint(1, DECLARED_WITHIN_DAYS))
    if fault == LATE_BIRTH_DECLARATION:
        born = today - dt.timedelta(days=rng.randint(*LATE_DECLARATION_AGE_DAYS))
    hospitals = population.facility_index.hospitals[province]
    at_maternity = rng.random() < AT_MATERNITY_HOSPITAL_SHARE
    facility = population.facilities[hospitals[MATERNITY if at_maternity else GENERAL]]
    female = rng.random() >= MALE_SHARE_AT_BIRTH
    mean, deviation, floor, ceiling = BIRTH_WEIGHT_GRAMS
    # The hospital issues it on the day of birth or the next, never on the day of declaration.
    issued = min(born + dt.timedelta(days=rng.randint(0, 1)), today - dt.timedelta(days=1))
    certificate = hl.BirthCertificate(
        certificate_number=context.docs.new("GCS", facility.code, born.year),
        facility_code=facility.code,
        mother_id_number=mother_record.personal_id_number,
        mother_full_name=mother_record.full_name,
        child_sex=SEX_FEMALE if female else SEX_MALE,
        date_of_birth=born.isoformat(),
        time_of_birth=form_parts.time_of_day(rng),
        birth_weight_grams=min(ceiling, max(floor, round(rng.gauss(mean, deviation)))),
        issued_on=issued.isoformat(),
    )
    father_record = population.citizens[father] if father != NOBODY else None
    family_name = (father_record or mother_record).full_name.split(" ")[0]
    if father_record is not None and rng.random() < FATHER_DECLARES_SHARE:
        declarant = form_parts.declarant(rng, father_record, "father")
    else:
        declarant = form_parts.declarant(rng, mother_record, "mother")
    stations = population.facility_index.stations[province]
    form = gw.BirthDeclaration(
        declarant=declarant,
        child_full_name=population.pools.full_name(rng, female=female, family=family_name),
        child_sex=certificate.child_sex,
        child_date_of_birth=certificate.date_of_birth,
        place_of_birth=facility.name,
        ethnicity=mother_record.ethnicity,
        nationality=NATIONALITY,
        birth_certificate_number=certificate.certificate_number,
        mother_id_number=mother_record.personal_id_number,
        father_id_number=father_record.personal_id_number if father_record else "",
        registration_province_code=province,
        residence_household_id=(
            household.household_id if rng.random() < DECLARE_HOUSEHOLD_SHARE else ""
        ),
        initial_facility_code=population.facilities[rng.choice(stations)].code,
        delivery_method=form_parts.delivery(rng),
    )
    missing: tuple[str, ...] = ()
    if fault == MOTHER_ID_MISMATCH:
        # A mistyped number that happens to be another woman's.
        form.mother_id_number = _another_woman(rng, population, mother, excluded)
    elif fault == MISSING_FIELDS:
        missing = (rng.choice(BLANKABLE_FIELDS),)
        form.ClearField(missing[0])  # type: ignore[arg-type]
    return PlannedBirth(
        fault=fault,
        mother=mother,
        certificate=certificate,
        form=form,
        seeded=fault != UNKNOWN_BIRTH_CERTIFICATE,
        missing_fields=missing,
    )


def _another_woman(
    rng: random.Random, population: SyntheticPopulation, mother: int, excluded: Set[int]
) -> str:
    female: Sequence[bool] = population.people.female
    for _ in range(10_000):
        person = int(rng.random() * len(female))
        if female[person] and person != mother and person not in excluded:
            return population.citizens[person].personal_id_number
    raise ValueError("no other woman in the population to name as the mother")
