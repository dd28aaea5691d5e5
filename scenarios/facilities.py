"""Medical facilities: in each province a general hospital, an obstetrics and
paediatrics hospital, and commune health stations.

The five-digit facility code is the province code's last two digits and a
three-digit serial (the contract's MedicalFacility.code; the health
insurance facility codes work the same way). Vietnam has about 13,000
facilities (shared/domain.md), some 11,000 of them commune health stations:
one station per about 9,000 people, scaled here to the synthetic population.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from lienthong.health.v1 import health_pb2 as hl
from scenarios.geography import Provinces
from scenarios.names import NamePools

PEOPLE_PER_STATION = 9_000
MAX_SERIAL = 999
HOSPITAL_NAMES = ("Bệnh viện Đa khoa {province}", "Bệnh viện Sản Nhi {province}")
GENERAL, MATERNITY = 0, 1  # positions in each province's hospitals


@dataclass(frozen=True)
class Facilities:
    all: list[hl.MedicalFacility]
    # Province code -> indexes into `all`.
    hospitals: dict[str, tuple[int, ...]]
    stations: dict[str, tuple[int, ...]]


def facility_code(province_code: str, serial: int) -> str:
    return f"{province_code[-2:]}{serial:03d}"


def build_facilities(
    rng: random.Random,
    pools: NamePools,
    provinces: Provinces,
    residents: Sequence[int],
) -> Facilities:
    """`residents[i]` is how many citizens live in province i."""
    every: list[hl.MedicalFacility] = []
    hospitals: dict[str, tuple[int, ...]] = {}
    stations: dict[str, tuple[int, ...]] = {}
    for code, name, people in zip(provinces.codes, provinces.names, residents, strict=True):
        serial = 0
        indexes: list[int] = []
        for template in HOSPITAL_NAMES:
            serial += 1
            indexes.append(len(every))
            every.append(
                hl.MedicalFacility(
                    code=facility_code(code, serial),
                    name=template.format(province=name),
                    province_code=code,
                )
            )
        hospitals[code] = tuple(indexes)
        wanted = min(MAX_SERIAL - serial, max(1, math.ceil(people / PEOPLE_PER_STATION)))
        indexes = []
        for _ in range(wanted):
            serial += 1
            commune = pools.communes[int(rng.random() * len(pools.communes))]
            indexes.append(len(every))
            every.append(
                hl.MedicalFacility(
                    code=facility_code(code, serial),
                    name=f"Trạm Y tế {commune}, {name}",
                    province_code=code,
                )
            )
        stations[code] = tuple(indexes)
    return Facilities(all=every, hospitals=hospitals, stations=stations)
