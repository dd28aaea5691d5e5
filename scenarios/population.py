"""A synthetic population for the three registries: households, citizens,
medical facilities and insurance participants, the same for the same seed.

    python -m scenarios.population --citizens 200000 --seed 1

prints what was generated and how long it took.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import gc
import random
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from lienthong.common.v1.common_pb2 import SEX_FEMALE, SEX_MALE
from lienthong.health.v1 import health_pb2 as hl
from lienthong.insurance.v1 import insurance_pb2 as ins
from lienthong.population.v1 import population_pb2 as pop
from scenarios.demography import NATIONALITY, People, sample_people
from scenarios.facilities import Facilities, build_facilities
from scenarios.geography import REGISTERED_ELSEWHERE_SHARE, Provinces, load_provinces
from scenarios.households import NOBODY, Families, group
from scenarios.insurance_history import history
from scenarios.names import NamePools, build_pools
from scenarios.numbering import IdNumbers, SocialInsuranceNumbers


@dataclass(frozen=True)
class SyntheticPopulation:
    seed: int
    today: dt.date
    households: list[pop.Household]
    citizens: list[pop.Citizen]
    facilities: list[hl.MedicalFacility]
    participants: list[ins.Participant]
    # Indexes for the planner, by citizen index (positions in `citizens`).
    people: People
    families: Families
    participant_of: list[int]  # index into `participants`, or NOBODY
    index_of: dict[str, int]  # personal ID number -> citizen index
    facility_index: Facilities
    pools: NamePools
    provinces: Provinces

    def household_of(self, citizen: int) -> pop.Household:
        return self.households[self.families.household_of[citizen]]


def household_id(province_code: str, index: int) -> str:
    return f"HK-{province_code}-{index + 1:07d}"


def _family_names(rng: random.Random, pools: NamePools, families: Families) -> list[str]:
    """A child takes the father's family name (the mother's when he is unknown)."""
    count = len(families.household_of)
    names = [
        "" if families.mother_of[i] != NOBODY else pools.family_name(rng) for i in range(count)
    ]
    for child in range(count):
        if not names[child]:
            father = families.father_of[child]
            names[child] = names[father if father != NOBODY else families.mother_of[child]]
    return names


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Hundreds of thousands of new objects set the cyclic garbage collector off
    again and again (a quarter of the run, measured), and none of them is garbage."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def generate_population(citizens: int, *, seed: int, today: dt.date) -> SyntheticPopulation:
    """`citizens` people in households over the provinces, as of `today`; the
    same arguments give the same population, byte for byte."""
    if citizens < 1:
        raise ValueError("citizens must be at least 1")
    with _collector_paused():
        return _generate(citizens, seed, today)


def _generate(citizens: int, seed: int, today: dt.date) -> SyntheticPopulation:
    rng = random.Random(f"lienthong.population:{seed}")
    pools = build_pools(seed)
    provinces = load_provinces()
    people = sample_people(rng, citizens, today)
    families = group(rng, people)
    home = provinces.pick_many(rng, len(families.members))
    # Each message built on its own takes an arena of its own (about 1.2 kB for
    # a citizen); added to one container they share one, a third of the memory.
    arena = pop.SeedPopulationRequest()
    households = [
        arena.households.add(
            household_id=household_id(provinces.codes[province], index),
            address=pools.address(rng, provinces.names[province]),
            province_code=provinces.codes[province],
            head_id_number="",  # filled once the head has a number
        )
        for index, province in enumerate(home)
    ]
    family_names = _family_names(rng, pools, families)
    registered_in = [
        provinces.pick(rng) if rng.random() < REGISTERED_ELSEWHERE_SHARE else home[household]
        for household in families.household_of
    ]
    id_numbers = IdNumbers(rng)
    numbers = [
        id_numbers.new(provinces.codes[province], born, female=female)
        for province, born, female in zip(registered_in, people.born, people.female, strict=True)
    ]
    numbers.append("")  # numbers[NOBODY]: no parent on record
    records = [
        arena.citizens.add(
            personal_id_number=numbers[person],
            full_name=pools.full_name(rng, female=female, family=family_names[person]),
            sex=SEX_FEMALE if female else SEX_MALE,
            date_of_birth=people.born[person].isoformat(),
            place_of_birth=provinces.names[registered_in[person]],
            ethnicity=people.ethnicity[person],
            nationality=NATIONALITY,
            mother_id_number=numbers[families.mother_of[person]],
            father_id_number=numbers[families.father_of[person]],
            registration_province_code=provinces.codes[registered_in[person]],
            household_id=households[families.household_of[person]].household_id,
        )
        for person, female in enumerate(people.female)
    ]
    for household, members in zip(households, families.members, strict=True):
        household.head_id_number = numbers[members[0]]
    residents = Counter(home[h] for h in families.household_of)
    facilities = build_facilities(
        rng, pools, provinces, [residents[i] for i in range(len(provinces.codes))]
    )
    participants, participant_of = _participants(rng, people, records, households, families)
    return SyntheticPopulation(
        seed=seed,
        today=today,
        households=households,
        citizens=records,
        facilities=facilities.all,
        participants=participants,
        people=people,
        families=families,
        participant_of=participant_of,
        index_of={record.personal_id_number: i for i, record in enumerate(records)},
        facility_index=facilities,
        pools=pools,
        provinces=provinces,
    )


def _participants(
    rng: random.Random,
    people: People,
    records: list[pop.Citizen],
    households: list[pop.Household],
    families: Families,
) -> tuple[list[ins.Participant], list[int]]:
    numbers = SocialInsuranceNumbers(rng)
    participants: list[ins.Participant] = []
    arena = ins.SeedParticipantsRequest()  # one arena for all, as for citizens
    participant_of = [NOBODY] * len(records)
    for person, record in enumerate(records):
        record_history = history(rng, people.ages[person])
        if record_history is None:
            continue
        province = households[families.household_of[person]].province_code
        participant_of[person] = len(participants)
        participants.append(
            arena.participants.add(
                social_insurance_number=numbers.new(province),
                personal_id_number=record.personal_id_number,
                full_name=record.full_name,
                date_of_birth=record.date_of_birth,
                compulsory_contribution_months=record_history.compulsory_months,
                voluntary_contribution_months=record_history.voluntary_months,
                pensioner=record_history.pensioner,
                receives_monthly_occupational_allowance=record_history.occupational_allowance,
                receives_monthly_social_allowance=record_history.social_allowance,
            )
        )
    return participants, participant_of


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--citizens", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--today", type=dt.date.fromisoformat, default=dt.date.today())
    args = parser.parse_args(argv)
    started = time.perf_counter()
    population = generate_population(args.citizens, seed=args.seed, today=args.today)
    seconds = time.perf_counter() - started
    print(
        f"{len(population.citizens):,} citizens in {len(population.households):,} households, "
        f"{len(population.facilities):,} facilities, "
        f"{len(population.participants):,} insurance participants: {seconds:.2f} s"
    )


if __name__ == "__main__":
    main()
