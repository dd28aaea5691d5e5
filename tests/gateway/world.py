"""A small synthetic world for the end-to-end tests: one household per test
family, seeded through the registries' own streaming RPCs."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TypeVar

import grpc

from cli.stack import Stack
from lienthong.common.v1.common_pb2 import PAYMENT_METHOD_BANK_TRANSFER, SEX_FEMALE, SEX_MALE
from lienthong.gateway.v1 import gateway_pb2 as g
from lienthong.health.v1 import health_pb2 as h
from lienthong.health.v1 import health_pb2_grpc as hg
from lienthong.insurance.v1 import insurance_pb2 as i
from lienthong.insurance.v1 import insurance_pb2_grpc as ig
from lienthong.population.v1 import population_pb2 as p
from lienthong.population.v1 import population_pb2_grpc as pg

FACILITY = "01001"
_serial = itertools.count(1)
M = TypeVar("M")


async def _one(message: M) -> AsyncIterator[M]:
    yield message


@dataclass
class Family:
    mother: str
    deceased: str
    certificate: str
    notice: str
    household: str


def new_family(tag: int) -> Family:
    n = next(_serial) * 1000 + tag
    return Family(
        mother=f"0011{90 + n % 10}{n:06d}"[:12],
        deceased=f"0010{50 + n % 10}{n:06d}"[:12],
        certificate=f"GCS-{FACILITY}-{n:07d}",
        notice=f"GBT-{FACILITY}-{n:07d}",
        household=f"HH-{n}",
    )


async def seed_families(
    channels: dict[str, grpc.aio.Channel],
    families: list[Family],
    *,
    born: str,
    died: str,
    pensioner: bool = True,
    household_province: str = "001",
) -> None:
    population = pg.PopulationRegistryServiceStub(channels["population"])
    health = hg.HealthRegistryServiceStub(channels["health"])
    insurance = ig.InsuranceRegistryServiceStub(channels["insurance"])
    await population.SeedPopulation(
        _one(
            p.SeedPopulationRequest(
                households=[
                    p.Household(
                        household_id=f.household,
                        address=f"{k} Hàng Bạc, Hà Nội",
                        province_code=household_province,
                        head_id_number=f.mother,
                    )
                    for k, f in enumerate(families, 1)
                ],
                citizens=[
                    c
                    for f in families
                    for c in (
                        p.Citizen(
                            personal_id_number=f.mother,
                            full_name="Nguyễn Thị Lan",
                            sex=SEX_FEMALE,
                            date_of_birth=f"19{f.mother[4:6]}-03-04",
                            registration_province_code="001",
                            household_id=f.household,
                        ),
                        p.Citizen(
                            personal_id_number=f.deceased,
                            full_name="Trần Văn Ông",
                            sex=SEX_MALE,
                            date_of_birth=f"19{f.deceased[4:6]}-01-01",
                            registration_province_code="001",
                            household_id=f.household,
                        ),
                    )
                ],
            )
        )
    )
    await health.SeedHospitalRecords(
        _one(
            h.SeedHospitalRecordsRequest(
                facilities=[
                    h.MedicalFacility(
                        code=FACILITY, name="Bệnh viện Phụ sản Hà Nội", province_code="001"
                    )
                ],
                birth_certificates=[
                    h.BirthCertificate(
                        certificate_number=f.certificate,
                        facility_code=FACILITY,
                        mother_id_number=f.mother,
                        mother_full_name="Nguyễn Thị Lan",
                        child_sex=SEX_MALE,
                        date_of_birth=born,
                        time_of_birth="10:00",
                        birth_weight_grams=3100,
                        issued_on=born,
                    )
                    for f in families
                ],
                death_notices=[
                    h.DeathNotice(
                        notice_number=f.notice,
                        facility_code=FACILITY,
                        deceased_id_number=f.deceased,
                        date_of_death=died,
                        time_of_death="06:00",
                        cause="tuổi già",
                        issued_on=died,
                    )
                    for f in families
                ],
            )
        )
    )
    await insurance.SeedParticipants(
        _one(
            i.SeedParticipantsRequest(
                participants=[
                    i.Participant(
                        social_insurance_number=f"99{f.deceased[-8:]}",
                        personal_id_number=f.deceased,
                        full_name="Trần Văn Ông",
                        date_of_birth=f"19{f.deceased[4:6]}-01-01",
                        compulsory_contribution_months=300 if pensioner else 3,
                        pensioner=pensioner,
                    )
                    for f in families
                ]
            )
        )
    )


DECLARANT = g.Declarant(
    personal_id_number="001190000001", full_name="Nguyễn Thị Lan", relationship="mother"
)


def birth_form(family: Family, born: str, **changes: object) -> g.BirthDeclaration:
    form = g.BirthDeclaration(
        declarant=DECLARANT,
        child_full_name="Nguyễn Văn An",
        child_sex=SEX_MALE,
        child_date_of_birth=born,
        place_of_birth="Hà Nội",
        ethnicity="Kinh",
        nationality="Việt Nam",
        birth_certificate_number=family.certificate,
        mother_id_number=family.mother,
        registration_province_code="001",
        initial_facility_code=FACILITY,
        delivery_method=g.DELIVERY_METHOD_ONLINE,
    )
    for name, value in changes.items():
        setattr(form, name, value)
    return form


def death_form(family: Family, died: str, **changes: object) -> g.DeathDeclaration:
    form = g.DeathDeclaration(
        declarant=DECLARANT,
        deceased_id_number=family.deceased,
        date_of_death=died,
        time_of_death="06:00",
        place_of_death="Bệnh viện",
        death_notice_number=family.notice,
        claim_funeral_allowance=True,
        payee=i.Payee(
            full_name="Nguyễn Thị Lan",
            personal_id_number=family.mother,
            payment_method=PAYMENT_METHOD_BANK_TRANSFER,
            bank_account="0123456789",
        ),
        delivery_method=g.DELIVERY_METHOD_ONLINE,
    )
    for name, value in changes.items():
        setattr(form, name, value)
    return form


def open_channels(stack: Stack) -> dict[str, grpc.aio.Channel]:
    """A channel to each registry and to the gateway of a running stack, over
    mutual TLS: to the registries as `conformance` (the test identity, granted
    every method: a test's world issues certificates directly), to the gateway
    as the CLI (granted its public API)."""
    registries = {
        name: stack.channel(name, "conformance") for name in ("population", "insurance", "health")
    }
    return registries | {"gateway": stack.channel("gateway")}
