"""Planned deaths: the hospital's death notice when the death happened at or was
certified by a facility (seeded before anything is declared), and the Form 02
a relative in the household files, claiming the funeral allowance or not.

ALREADY_DEAD: the population seed can carry a date of death, so such a
citizen is seeded as having died months ago (and had their residence
removed), with a matching insurance record and, if any, that death's notice;
the relatives' new declaration of the same death is then refused by the
population registry. Deterministic, unlike declaring one death twice in a
shuffled replay, where which of the two loses would depend on timing.
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Set
from dataclasses import dataclass

from common.dates import first_day_of_next_month
from lienthong.gateway.v1 import gateway_pb2 as gw
from lienthong.health.v1 import health_pb2 as hl
from lienthong.insurance.v1 import insurance_pb2 as ins
from lienthong.population.v1 import population_pb2 as pop
from scenarios import form_parts
from scenarios.allowance_rule import SeededHistory, allowance_due
from scenarios.demography import ADULT_AGE, mortality
from scenarios.facilities import GENERAL
from scenarios.faults import ALREADY_DEAD, MISSING_FIELDS
from scenarios.households import NOBODY
from scenarios.plan_context import PlanContext
from scenarios.population import SyntheticPopulation

# Law on Civil Status art. 33: declare within 15 days; later is accepted, flagged.
DECLARATION_LIMIT_DAYS = 15
DECLARED_LATE_SHARE = 0.05
LATE_UP_TO_DAYS = 60
# Assumptions: many Vietnamese die at home, without a facility's notice; of the
# notices, most come from a hospital, some from a commune health station.
DEATH_NOTICE_SHARE = 0.6
NOTICE_FROM_HOSPITAL_SHARE = 0.8
WORK_ACCIDENT_SHARE = 0.03  # of notices for people of working age
WORKING_AGES = (18, 60)
# Families of the insured claim the allowance; some others try (and are told why not).
CLAIM_IF_ELIGIBLE_SHARE = 0.9
CLAIM_IF_NOT_ELIGIBLE_SHARE = 0.3
EARLIER_DEATH_DAYS = (20, 400)  # ALREADY_DEAD: registered this long before today
CAUSES = (
    "Đột quỵ",
    "Nhồi máu cơ tim",
    "Suy tim",
    "Ung thư phổi",
    "Ung thư gan",
    "Viêm phổi",
    "Bệnh phổi tắc nghẽn mạn tính",
    "Đái tháo đường",
    "Suy thận",
    "Tai nạn giao thông",
    "Tuổi già",
)
WORK_ACCIDENT_CAUSE = "Tai nạn lao động"
BLANKABLE_FIELDS = ("date_of_death", "place_of_death")  # Form 02, gateway/procedures.py


@dataclass(frozen=True)
class PlannedDeath:
    fault: str | None
    deceased: int  # citizen index
    notice: hl.DeathNotice | None
    form: gw.DeathDeclaration
    # ALREADY_DEAD: the records seeded in place of the living ones.
    already_dead: pop.Citizen | None
    already_dead_participant: ins.Participant | None
    # Expected funeral allowance decision when claimed (None: not claimed).
    allowance_eligible: bool | None
    missing_fields: tuple[str, ...]


def choose_deceased(rng: random.Random, population: SyntheticPopulation, count: int) -> list[int]:
    """Weighted by the chance of dying at each age, so deaths skew old."""
    if count > len(population.citizens) // 2:
        raise ValueError(f"{count} deaths asked of {len(population.citizens)} citizens")
    ages = population.people.ages
    return form_parts.weighted_sample(
        rng, range(len(ages)), [mortality(age) for age in ages], count
    )


def _declarant(
    rng: random.Random, population: SyntheticPopulation, deceased: int, excluded: Set[int]
) -> tuple[int, str]:
    """A living adult of the household (the spouse first), else a relative elsewhere."""
    families, ages = population.families, population.people.ages
    partner = families.partner_of[deceased]
    if partner != NOBODY and partner not in excluded:
        return partner, "spouse"
    household = families.members[families.household_of[deceased]]
    adults = [p for p in household if ages[p] >= ADULT_AGE and p not in excluded]
    if adults:
        person = rng.choice(adults)
        if deceased in (families.mother_of[person], families.father_of[person]):
            return person, "child"
        if person in (families.mother_of[deceased], families.father_of[deceased]):
            return person, "parent"
        return person, "relative"
    while True:
        person = int(rng.random() * len(ages))
        if ages[person] >= ADULT_AGE and person not in excluded:
            return person, "relative"


def _died_on(rng: random.Random, born: dt.date, fault: str | None, today: dt.date) -> dt.date:
    if fault == ALREADY_DEAD:
        days = rng.randint(*EARLIER_DEATH_DAYS)
    elif rng.random() < DECLARED_LATE_SHARE:
        days = rng.randint(DECLARATION_LIMIT_DAYS + 1, LATE_UP_TO_DAYS)
    else:
        days = rng.randint(1, DECLARATION_LIMIT_DAYS)
    return max(born, today - dt.timedelta(days=days))


def _notice(context: PlanContext, deceased: int, died: dt.date) -> tuple[hl.DeathNotice, str]:
    """The notice and the name of the facility that issued it."""
    rng, population = context.rng, context.population
    province = population.household_of(deceased).province_code
    index = population.facility_index
    if rng.random() < NOTICE_FROM_HOSPITAL_SHARE:
        facility = population.facilities[index.hospitals[province][GENERAL]]
    else:
        facility = population.facilities[rng.choice(index.stations[province])]
    low, high = WORKING_AGES
    accident = low <= population.people.ages[deceased] < high and rng.random() < WORK_ACCIDENT_SHARE
    latest = context.today - dt.timedelta(days=1)
    issued = min(died + dt.timedelta(days=rng.randint(0, 1)), latest)
    notice = hl.DeathNotice(
        notice_number=context.docs.new("GBT", facility.code, died.year),
        facility_code=facility.code,
        deceased_id_number=population.citizens[deceased].personal_id_number,
        date_of_death=died.isoformat(),
        time_of_death=form_parts.time_of_day(rng),
        cause=WORK_ACCIDENT_CAUSE if accident else rng.choice(CAUSES),
        work_accident_or_occupational_disease=accident,
        issued_on=max(issued, died).isoformat(),
    )
    return notice, facility.name


def _eligible(
    population: SyntheticPopulation, deceased: int, died: dt.date, accident: bool
) -> bool:
    """Whether the allowance is due, by the scenarios' own reading of the rule
    (scenarios/allowance_rule.py), which the audit then holds the registry to."""
    position = population.participant_of[deceased]
    record = population.participants[position] if position != NOBODY else None
    history = None
    if record is not None:
        history = SeededHistory(
            record.compulsory_contribution_months,
            record.voluntary_contribution_months,
            record.pensioner,
            record.receives_monthly_occupational_allowance,
            record.receives_monthly_social_allowance,
        )
    return allowance_due(history, died, accident)


def plan_death(context: PlanContext, deceased: int, fault: str | None) -> PlannedDeath:
    rng, population, today = context.rng, context.population, context.today
    citizen = population.citizens[deceased]
    died = _died_on(rng, population.people.born[deceased], fault, today)
    notice, place = None, f"Tại nhà, {population.household_of(deceased).address}"
    if rng.random() < DEATH_NOTICE_SHARE:
        notice, place = _notice(context, deceased, died)
    accident = notice is not None and notice.work_accident_or_occupational_disease
    eligible = _eligible(population, deceased, died, accident)
    claim_share = context.funeral_claim_share
    if claim_share is None:
        claim_share = CLAIM_IF_ELIGIBLE_SHARE if eligible else CLAIM_IF_NOT_ELIGIBLE_SHARE
    claim = rng.random() < claim_share
    declarant, relationship = _declarant(rng, population, deceased, context.excluded)
    declarant_record = population.citizens[declarant]
    form = gw.DeathDeclaration(
        declarant=form_parts.declarant(rng, declarant_record, relationship),
        deceased_id_number=citizen.personal_id_number,
        date_of_death=died.isoformat(),
        time_of_death=notice.time_of_death if notice else form_parts.time_of_day(rng),
        place_of_death=place,
        death_notice_number=notice.notice_number if notice else "",
        claim_funeral_allowance=claim,
        delivery_method=form_parts.delivery(rng),
    )
    if claim:
        form.payee.CopyFrom(form_parts.payee(rng, declarant_record))
    missing: tuple[str, ...] = ()
    if fault == MISSING_FIELDS:
        missing = (rng.choice(BLANKABLE_FIELDS),)
        form.ClearField(missing[0])  # type: ignore[arg-type]
    dead_record, dead_participant = None, None
    if fault == ALREADY_DEAD:
        dead_record, dead_participant = _already_dead(population, deceased, died)
    return PlannedDeath(
        fault=fault,
        deceased=deceased,
        notice=notice,
        form=form,
        already_dead=dead_record,
        already_dead_participant=dead_participant,
        allowance_eligible=eligible if claim and fault is None else None,
        missing_fields=missing,
    )


def _already_dead(
    population: SyntheticPopulation, deceased: int, died: dt.date
) -> tuple[pop.Citizen, ins.Participant | None]:
    """The records as they stand after the earlier death was registered: the
    permanent residence removed (Law on Residence 2020 art. 24), the pension
    stopped from the next month."""
    record = pop.Citizen()
    record.CopyFrom(population.citizens[deceased])
    record.date_of_death = died.isoformat()
    record.household_id = ""
    position = population.participant_of[deceased]
    if position == NOBODY:
        return record, None
    participant = ins.Participant()
    participant.CopyFrom(population.participants[position])
    participant.date_of_death = died.isoformat()
    if participant.pensioner:
        participant.pension_stopped_from = first_day_of_next_month(died).isoformat()
    return record, participant
