"""Who lives with whom: couples, their children, young adults at home, elders
living with a grown child, and people living alone.

Works on citizen indexes only (names and numbers come later). Ages come from
the pyramid first and families are fitted around them, so the pyramid holds
exactly and every child's mother was 18 to 45 at the birth.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass

from common.dates import age_in_years
from scenarios.demography import ADULT_AGE, MOTHER_MAX_AGE, MOTHER_MIN_AGE, People, fertility

NOBODY = -1
# Share of people living as a couple, by ten-year age band (0-9, 10-19...);
# an approximation of the 2019 census marital status (widowhood takes the old).
PARTNERED_SHARE = (0.0, 0.05, 0.5, 0.85, 0.87, 0.84, 0.74, 0.58, 0.38, 0.2)
MEN_OLDER_BY_YEARS = 3
HEAD_IS_HUSBAND_SHARE = 0.75
SINGLE_MOTHER_SHARE = 0.06  # of children
# Unpartnered women of mothering age who head a household of their own (and
# may be single mothers); the others live with relatives or alone.
SINGLE_WOMAN_HEAD_SHARE = 0.5
YOUNG_ADULT_MAX_AGE = 34
YOUNG_ADULT_AT_HOME_SHARE = 0.8
ELDER_MIN_AGE = 65
ELDER_WITH_CHILD_SHARE = 0.75
# Unpartnered adults otherwise placed who live with relatives (a sibling's
# household...) rather than alone. With the shares above this gives about 3.5
# people a household, as the 2019 census counted.
WITH_RELATIVES_SHARE = 0.6
GENERATION_GAP = (20, 40)  # years between an elder and the grown child they live with
_NEIGHBOUR_YEARS = (0, 1, -1, 2, -2, 3, -3, 4, -4, 5, -5)


@dataclass(frozen=True)
class Families:
    members: list[list[int]]  # household index -> citizen indexes, head first
    household_of: list[int]
    partner_of: list[int]
    mother_of: list[int]
    father_of: list[int]


def _partnered(rng: random.Random, people: People) -> tuple[list[int], list[int]]:
    """Women and men living as a couple, each sorted by (jittered) age so that
    pairing them rank by rank gives couples of near ages."""
    women: list[tuple[float, int]] = []
    men: list[tuple[float, int]] = []
    for index, age in enumerate(people.ages):
        if age < ADULT_AGE or rng.random() >= PARTNERED_SHARE[min(age // 10, 9)]:
            continue
        jitter = (rng.random() - 0.5) * 6
        if people.female[index]:
            women.append((age + jitter, index))
        else:
            men.append((age - MEN_OLDER_BY_YEARS + jitter, index))
    women.sort()
    men.sort()
    return [i for _, i in women], [i for _, i in men]


class _Builder:
    def __init__(self, rng: random.Random, people: People) -> None:
        self.rng = rng
        self.people = people
        count = len(people.ages)
        self.members: list[list[int]] = []
        self.household_of = [NOBODY] * count
        self.partner_of = [NOBODY] * count
        self.mother_of = [NOBODY] * count
        self.father_of = [NOBODY] * count
        # Birth year of the woman of a couple -> their households; and of women
        # living alone, who may be single mothers.
        self.couples_by_year: dict[int, list[int]] = {}
        self.single_women_by_year: dict[int, list[int]] = {}
        ages = range(MOTHER_MIN_AGE, MOTHER_MAX_AGE + 1)
        self.mother_ages = list(ages)
        self.mother_weights = list(itertools.accumulate(fertility(age) for age in ages))

    def household(self, *people: int) -> int:
        number = len(self.members)
        self.members.append(list(people))
        for person in people:
            self.household_of[person] = number
        return number

    def join(self, household: int, person: int) -> None:
        self.members[household].append(person)
        self.household_of[person] = household

    def pick(self, buckets: dict[int, list[int]], year: int) -> int:
        for offset in _NEIGHBOUR_YEARS:
            bucket = buckets.get(year + offset)
            if bucket:
                return bucket[int(self.rng.random() * len(bucket))]
        return NOBODY

    def place_with_parents(self, child: int) -> bool:
        """Into the household of a mother who was 18-45 when the child was born."""
        age_at_birth = self.rng.choices(self.mother_ages, cum_weights=self.mother_weights)[0]
        year = self.people.born[child].year - age_at_birth
        single_first = self.rng.random() < SINGLE_MOTHER_SHARE
        order = (
            (self.single_women_by_year, self.couples_by_year)
            if single_first
            else (self.couples_by_year, self.single_women_by_year)
        )
        for buckets in order:
            household = self.pick(buckets, year)
            if household == NOBODY:
                continue
            mother, *rest = self._parents(household)
            if not MOTHER_MIN_AGE <= self._age_at(mother, child) <= MOTHER_MAX_AGE:
                continue
            self.join(household, child)
            self.mother_of[child] = mother
            self.father_of[child] = rest[0] if rest else NOBODY
            return True
        return False

    def _parents(self, household: int) -> list[int]:
        """[woman, man] of a couple, or [woman] living alone (the first members)."""
        head = self.members[household][0]
        partner = self.partner_of[head]
        if partner == NOBODY:
            return [head]
        return [head, partner] if self.people.female[head] else [partner, head]

    def _age_at(self, mother: int, child: int) -> int:
        return age_in_years(self.people.born[mother], self.people.born[child])


def group(rng: random.Random, people: People) -> Families:
    build = _Builder(rng, people)
    women, men = _partnered(rng, people)
    for woman, man in zip(women, men, strict=False):
        build.partner_of[woman], build.partner_of[man] = man, woman
        husband_heads = rng.random() < HEAD_IS_HUSBAND_SHARE
        household = build.household(*((man, woman) if husband_heads else (woman, man)))
        build.couples_by_year.setdefault(people.born[woman].year, []).append(household)
    ages = people.ages
    # Women living alone of mothering age first, so single mothers exist to take children.
    for person, age in enumerate(ages):
        if build.household_of[person] != NOBODY or age <= YOUNG_ADULT_MAX_AGE:
            continue
        if (
            people.female[person]
            and age <= MOTHER_MAX_AGE + MOTHER_MIN_AGE  # could have a child under 18
            and rng.random() < SINGLE_WOMAN_HEAD_SHARE
        ):
            household = build.household(person)
            build.single_women_by_year.setdefault(people.born[person].year, []).append(household)
    _place_rest(rng, build, ages)
    return Families(
        members=build.members,
        household_of=build.household_of,
        partner_of=build.partner_of,
        mother_of=build.mother_of,
        father_of=build.father_of,
    )


def _place_rest(rng: random.Random, build: _Builder, ages: Sequence[int]) -> None:
    for person, age in enumerate(ages):
        if build.household_of[person] != NOBODY:
            continue
        if age < ADULT_AGE or (
            age <= YOUNG_ADULT_MAX_AGE and rng.random() < YOUNG_ADULT_AT_HOME_SHARE
        ):
            if build.place_with_parents(person):
                continue
            if age < ADULT_AGE and build.members:
                # No mother of a fitting age: brought up by relatives, parents unknown.
                build.join(int(rng.random() * len(build.members)), person)
                continue
        elif age >= ELDER_MIN_AGE and rng.random() < ELDER_WITH_CHILD_SHARE:
            gap = rng.randint(*GENERATION_GAP)
            household = build.pick(build.couples_by_year, build.people.born[person].year + gap)
            if household != NOBODY:
                build.join(household, person)
                continue
        if build.members and rng.random() < WITH_RELATIVES_SHARE:
            build.join(int(rng.random() * len(build.members)), person)
            continue
        build.household(person)
