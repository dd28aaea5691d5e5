"""The demo's synthetic population, and the two declarations that go with it.

A Hà Nội household (mother, father) whose daughter was just born at a Hà Nội
maternity hospital, with the hospital's electronic birth certificate; and a
retired pensioner who died at Bạch Mai hospital, with his death notice, his
insurance record (pensioner, 360 months of compulsory contributions) and his
son, who arranged the funeral and declares the death.

`demo_population(token, ...)` makes a fresh, non-colliding set per run (the
same people cannot be born or die twice in a stack that keeps running), while
`EXAMPLE` is the fixed set scenarios/examples/*.json refer to and
`lienthong seed-demo` loads.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from lienthong.common.v1.common_pb2 import (
    PAYMENT_METHOD_BANK_TRANSFER,
    SEX_FEMALE,
    SEX_MALE,
    Sex,
)
from lienthong.gateway.v1 import gateway_pb2 as gw
from lienthong.health.v1 import health_pb2 as hl
from lienthong.insurance.v1 import insurance_pb2 as ins
from lienthong.population.v1 import population_pb2 as pop

HANOI = "001"
TOKEN_LIMIT = 100_000  # five digits of the run token go into every identifier

MATERNITY_HOSPITAL = hl.MedicalFacility(
    code="01001", name="Bệnh viện Phụ sản Hà Nội", province_code=HANOI
)
GENERAL_HOSPITAL = hl.MedicalFacility(code="01002", name="Bệnh viện Bạch Mai", province_code=HANOI)
# The child's initial registered health-care facility for the insurance card.
COMMUNE_HEALTH_STATION = hl.MedicalFacility(
    code="01003", name="Trạm Y tế phường Kim Mã", province_code=HANOI
)


@dataclass(frozen=True)
class DemoPopulation:
    """Everything seeded into the three registries, and the declarations that use it."""

    token: int
    households: tuple[pop.Household, ...]
    citizens: tuple[pop.Citizen, ...]
    facilities: tuple[hl.MedicalFacility, ...]
    birth_certificates: tuple[hl.BirthCertificate, ...]
    death_notices: tuple[hl.DeathNotice, ...]
    participants: tuple[ins.Participant, ...]
    birth: gw.BirthDeclaration
    death: gw.DeathDeclaration


def _id(province: str, born: dt.date, *, female: bool, serial: str) -> str:
    """PPP G YY NNNNNN (Law on Identification 2023): G is century and sex."""
    century_sex = (born.year // 100 - 19) * 2 + (1 if female else 0)
    return f"{province}{century_sex}{born.year % 100:02d}{serial}"


def demo_population(token: int, *, born_on: dt.date, died_on: dt.date) -> DemoPopulation:
    """The demo's people; `token` (0..99999) makes every identifier unique to the run.

    Seeded adults get serials 9NNNNN so they stay clear of the serials the
    population registry hands out to newborns (counting up from 000001).
    """
    if not 0 <= token < TOKEN_LIMIT:
        raise ValueError(f"token must be below {TOKEN_LIMIT}")
    serial = f"9{token:05d}"
    mother_born = dt.date(1995, 3, 14)
    father_born = dt.date(1993, 8, 2)
    deceased_born = dt.date(1950, 1, 20)
    son_born = dt.date(1978, 6, 9)
    mother_id = _id(HANOI, mother_born, female=True, serial=serial)
    father_id = _id(HANOI, father_born, female=False, serial=serial)
    deceased_id = _id(HANOI, deceased_born, female=False, serial=serial)
    son_id = _id(HANOI, son_born, female=False, serial=serial)
    family_household = f"HK-001-{token:05d}-KM"
    pensioner_household = f"HK-001-{token:05d}-HB"
    certificate_number = f"GCS-01001-{token:05d}"
    notice_number = f"GBT-01002-{token:05d}"

    def adult(
        id_number: str, name: str, sex: Sex.ValueType, born: dt.date, household: str
    ) -> pop.Citizen:
        return pop.Citizen(
            personal_id_number=id_number,
            full_name=name,
            sex=sex,
            date_of_birth=born.isoformat(),
            place_of_birth="Hà Nội",
            ethnicity="Kinh",
            nationality="Việt Nam",
            registration_province_code=HANOI,
            household_id=household,
        )

    households = (
        pop.Household(
            household_id=family_household,
            address="Số 12 ngõ 45 phố Kim Mã, phường Kim Mã, quận Ba Đình, Hà Nội",
            province_code=HANOI,
            head_id_number=father_id,
        ),
        pop.Household(
            household_id=pensioner_household,
            address="Số 8 phố Hàng Bài, phường Hàng Bài, quận Hoàn Kiếm, Hà Nội",
            province_code=HANOI,
            head_id_number=deceased_id,
        ),
    )
    citizens = (
        adult(mother_id, "Nguyễn Thị Lan", SEX_FEMALE, mother_born, family_household),
        adult(father_id, "Trần Văn Minh", SEX_MALE, father_born, family_household),
        adult(deceased_id, "Lê Văn Hùng", SEX_MALE, deceased_born, pensioner_household),
        adult(son_id, "Lê Minh Tuấn", SEX_MALE, son_born, pensioner_household),
    )
    certificate = hl.BirthCertificate(
        certificate_number=certificate_number,
        facility_code=MATERNITY_HOSPITAL.code,
        mother_id_number=mother_id,
        mother_full_name="Nguyễn Thị Lan",
        child_sex=SEX_FEMALE,
        date_of_birth=born_on.isoformat(),
        time_of_birth="08:30",
        birth_weight_grams=3150,
        issued_on=born_on.isoformat(),
    )
    notice = hl.DeathNotice(
        notice_number=notice_number,
        facility_code=GENERAL_HOSPITAL.code,
        deceased_id_number=deceased_id,
        date_of_death=died_on.isoformat(),
        time_of_death="22:15",
        cause="Nhồi máu cơ tim",
        issued_on=died_on.isoformat(),
    )
    pensioner = ins.Participant(
        social_insurance_number=f"01{token:05d}901",
        personal_id_number=deceased_id,
        full_name="Lê Văn Hùng",
        date_of_birth=deceased_born.isoformat(),
        compulsory_contribution_months=360,
        pensioner=True,
    )
    birth = gw.BirthDeclaration(
        declarant=gw.Declarant(
            personal_id_number=mother_id,
            full_name="Nguyễn Thị Lan",
            relationship="mother",
            phone="0912345678",
        ),
        child_full_name="Trần Ngọc Anh",
        child_sex=SEX_FEMALE,
        child_date_of_birth=born_on.isoformat(),
        place_of_birth="Bệnh viện Phụ sản Hà Nội, Hà Nội",
        ethnicity="Kinh",
        nationality="Việt Nam",
        birth_certificate_number=certificate_number,
        mother_id_number=mother_id,
        father_id_number=father_id,
        registration_province_code=HANOI,
        residence_household_id=family_household,
        initial_facility_code=COMMUNE_HEALTH_STATION.code,
        delivery_method=gw.DELIVERY_METHOD_ONLINE,
    )
    death = gw.DeathDeclaration(
        declarant=gw.Declarant(
            personal_id_number=son_id,
            full_name="Lê Minh Tuấn",
            relationship="child",
            phone="0987654321",
        ),
        deceased_id_number=deceased_id,
        date_of_death=died_on.isoformat(),
        time_of_death="22:15",
        place_of_death="Bệnh viện Bạch Mai, Hà Nội",
        death_notice_number=notice_number,
        claim_funeral_allowance=True,
        payee=ins.Payee(
            full_name="Lê Minh Tuấn",
            personal_id_number=son_id,
            payment_method=PAYMENT_METHOD_BANK_TRANSFER,
            bank_account=f"0011004{token:05d}",
            bank_name="Vietcombank",
        ),
        delivery_method=gw.DELIVERY_METHOD_ONLINE,
    )
    return DemoPopulation(
        token=token,
        households=households,
        citizens=citizens,
        facilities=(MATERNITY_HOSPITAL, GENERAL_HOSPITAL, COMMUNE_HEALTH_STATION),
        birth_certificates=(certificate,),
        death_notices=(notice,),
        participants=(pensioner,),
        birth=birth,
        death=death,
    )


# The fixed population behind scenarios/examples/birth.json and death.json.
# Fixed past dates so the files never change (and never name a future day);
# the death is therefore declared more than 15 days after it and comes out
# flagged "declared late", which the law still accepts.
EXAMPLE = demo_population(1, born_on=dt.date(2025, 11, 3), died_on=dt.date(2025, 11, 5))
