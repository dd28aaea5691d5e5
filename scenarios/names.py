"""Vietnamese names and street addresses: faker (vi_VN) parts, combined by a seeded Random.

Faker costs tens of microseconds a call, far too slow for 200,000 citizens, so
it fills small pools once (seeded, so the pools are the same for a seed) and
the generator's own `random.Random` picks from them.

Faker's vi_VN person formats write names in Western order, with courtesy
prefixes ("Ông", "Chị"); a Vietnamese full name is family name, middle name,
given name, so only the parts are taken from faker and put in that order here.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from faker import Faker

LOCALE = "vi_VN"
POOL_SIZE = 512  # draws per pool: faker's lists are short, so repeats are expected
STREET_POOL_SIZE = 4096
# "Văn" is a man's middle name and "Thị" a woman's; faker offers every middle
# name to either sex, so the ones that read as one sex's are kept to it.
FEMALE_ONLY_MIDDLE = "Thị"
MALE_ONLY_MIDDLE = "Văn"
FEMALE_MIDDLES = frozenset({"Thị", "Mai", "Mai Bảo", "Xuân", "Bảo"})
MALE_MIDDLES = frozenset({"Văn", "Đức", "Hữu", "Quang", "Thế", "Tấn", "Trí", "Phú", "Hoàng"})
# Share of women whose middle name is "Thị", and of men whose is "Văn": still
# the commonest middle names, but far from universal among the young.
TRADITIONAL_MIDDLE_SHARE = 0.45


@dataclass(frozen=True)
class NamePools:
    family: tuple[str, ...]
    middle_female: tuple[str, ...]
    middle_male: tuple[str, ...]
    given_female: tuple[str, ...]
    given_male: tuple[str, ...]
    streets: tuple[str, ...]
    communes: tuple[str, ...]

    def family_name(self, rng: random.Random) -> str:
        return self.family[int(rng.random() * len(self.family))]

    def full_name(self, rng: random.Random, *, female: bool, family: str) -> str:
        """Family name, middle name, given name: the order on every Vietnamese record."""
        if female:
            middle_pool, given_pool, traditional = (
                self.middle_female,
                self.given_female,
                FEMALE_ONLY_MIDDLE,
            )
        else:
            middle_pool, given_pool, traditional = (
                self.middle_male,
                self.given_male,
                MALE_ONLY_MIDDLE,
            )
        if rng.random() < TRADITIONAL_MIDDLE_SHARE:
            middle = traditional
        else:
            middle = middle_pool[int(rng.random() * len(middle_pool))]
        given = given_pool[int(rng.random() * len(given_pool))]
        return f"{family} {middle} {given}"

    def address(self, rng: random.Random, province_name: str) -> str:
        street = self.streets[int(rng.random() * len(self.streets))]
        commune = self.communes[int(rng.random() * len(self.communes))]
        return f"{street}, {commune}, {province_name}"


def build_pools(seed: int) -> NamePools:
    fake = Faker(LOCALE)
    fake.seed_instance(seed)
    middles = [fake.middle_name() for _ in range(POOL_SIZE)]
    unisex = [fake.first_name_unisex() for _ in range(POOL_SIZE // 4)]
    return NamePools(
        family=tuple(fake.last_name() for _ in range(POOL_SIZE)),
        middle_female=tuple(m for m in middles if m not in MALE_MIDDLES) or (FEMALE_ONLY_MIDDLE,),
        middle_male=tuple(m for m in middles if m not in FEMALE_MIDDLES) or (MALE_ONLY_MIDDLE,),
        given_female=tuple([fake.first_name_female() for _ in range(POOL_SIZE)] + unisex),
        given_male=tuple([fake.first_name_male() for _ in range(POOL_SIZE)] + unisex),
        streets=tuple(fake.street_address() for _ in range(STREET_POOL_SIZE)),
        communes=tuple(fake.commune() for _ in range(POOL_SIZE)),
    )
