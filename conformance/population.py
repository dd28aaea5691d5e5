"""The population registry's contract (lienthong.population.v1), rule by rule.

Expected values come from the rules in shared/domain.md, written here by hand
(the personal ID number's structure PPP G YY NNNNNN, the 15-day limit for
declaring a death), never from the project's own implementation: the kit
judges any server, ours included.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc

from conformance import wire
from conformance.identity import (
    NOT_A_PROVINCE,
    PROVINCES,
    adult_birthday,
    century_sex_digit,
    id_number,
)
from conformance.kit import CALL_TIMEOUT_SECONDS, Context, RuleBook
from conformance.wire import answer, expect, refusal, refused
from lienthong.common.v1.common_pb2 import SEX_FEMALE, SEX_MALE
from lienthong.population.v1 import population_pb2 as pb
from lienthong.population.v1 import population_pb2_grpc as pb_grpc

SERVICE = pb.DESCRIPTOR.services_by_name["PopulationRegistryService"]
book = RuleBook("population", SERVICE.full_name)
rule = book.rule

Code = grpc.StatusCode
T = CALL_TIMEOUT_SECONDS

# Law on Civil Status 2014 art. 33(1): a death is declared within 15 days.
DEATH_DECLARATION_DAYS = 15


def sex_word(sex: int) -> str:
    return "girl" if sex == SEX_FEMALE else "boy"


def stub(ctx: Context) -> Any:
    return pb_grpc.PopulationRegistryServiceStub(ctx.channel)


def person(
    ctx: Context, sex: int, born: dt.date, province: str = "001", **fields: Any
) -> pb.Citizen:
    values: dict[str, Any] = {
        "personal_id_number": id_number(ctx, province, born, sex),
        "full_name": "Nguyễn Thị Hoa" if sex == SEX_FEMALE else "Trần Văn Nam",
        "sex": sex,
        "date_of_birth": born.isoformat(),
        "place_of_birth": "Hà Nội",
        "ethnicity": "Kinh",
        "nationality": "Việt Nam",
        "registration_province_code": province,
    }
    values.update(fields)
    return pb.Citizen(**values)


def household(ctx: Context, province: str = "001") -> pb.Household:
    return pb.Household(
        household_id=f"HK-CONFORM-{ctx.fresh.token(12)}",
        address=f"{ctx.fresh.digits(2)} Phố Huế, Hai Bà Trưng",
        province_code=province,
    )


async def seed(ctx: Context, *batches: pb.SeedPopulationRequest) -> pb.SeedPopulationResponse:
    async def stream() -> AsyncIterator[pb.SeedPopulationRequest]:
        for batch in batches:
            yield batch

    reply: pb.SeedPopulationResponse = await answer(
        stub(ctx).SeedPopulation(stream(), timeout=T), "SeedPopulation"
    )
    return reply


@dataclass(frozen=True)
class Family:
    household: pb.Household
    mother: pb.Citizen
    father: pb.Citizen


async def family(ctx: Context) -> Family:
    """A household with a mother and a father living in it, seeded."""
    home = household(ctx)
    mother = person(ctx, SEX_FEMALE, adult_birthday(1975), household_id=home.household_id)
    father = person(ctx, SEX_MALE, adult_birthday(1975), household_id=home.household_id)
    await seed(ctx, pb.SeedPopulationRequest(households=[home], citizens=[mother, father]))
    return Family(home, mother, father)


async def seeded(ctx: Context, citizen: pb.Citizen) -> pb.Citizen:
    await seed(ctx, pb.SeedPopulationRequest(citizens=[citizen]))
    return citizen


def birth(
    ctx: Context,
    parents: Family,
    *,
    sex: int = SEX_FEMALE,
    born: dt.date | None = None,
    province: str = "001",
    **fields: Any,
) -> pb.RegisterBirthRequest:
    values: dict[str, Any] = {
        "request_id": ctx.fresh.request_id(),
        "birth_certificate_number": f"GCS-CF-{ctx.fresh.token(12)}",
        "child": pb.ChildParticulars(
            full_name="Trần Thị Mai" if sex == SEX_FEMALE else "Trần Văn An",
            sex=sex,  # type: ignore[arg-type]
            date_of_birth=(born or ctx.today - dt.timedelta(days=3)).isoformat(),
            place_of_birth="Bệnh viện Phụ sản Hà Nội",
            ethnicity="Kinh",
            nationality="Việt Nam",
        ),
        "mother_id_number": parents.mother.personal_id_number,
        "father_id_number": parents.father.personal_id_number,
        "registration_province_code": province,
    }
    values.update(fields)
    return pb.RegisterBirthRequest(**values)


async def register(ctx: Context, request: pb.RegisterBirthRequest) -> pb.RegisterBirthResponse:
    reply: pb.RegisterBirthResponse = await answer(
        stub(ctx).RegisterBirth(request, timeout=T), "RegisterBirth"
    )
    return reply


async def newborn(ctx: Context, parents: Family, **fields: Any) -> pb.Citizen:
    return (await register(ctx, birth(ctx, parents, **fields))).citizen


async def citizen(ctx: Context, personal_id: str) -> pb.Citizen:
    reply = await answer(
        stub(ctx).GetCitizen(pb.GetCitizenRequest(personal_id_number=personal_id), timeout=T),
        f"GetCitizen({personal_id})",
    )
    return reply.citizen  # type: ignore[no-any-return]


async def members(ctx: Context, household_id: str) -> list[str]:
    reply = await answer(
        stub(ctx).GetHousehold(pb.GetHouseholdRequest(household_id=household_id), timeout=T),
        f"GetHousehold({household_id})",
    )
    return list(reply.member_id_numbers)


def same(first: Any, second: Any, what: str) -> None:
    expect(first == second, f"{what}: first answer {_short(first)}, repeat {_short(second)}")


def _short(message: Any) -> str:
    return " ".join(str(message).split())[:140]


# ---- RegisterBirth ------------------------------------------------------------


@rule(
    "register_birth.happy_path",
    "RegisterBirth registers the child as declared and GetCitizen then finds the same record",
)
async def _(ctx: Context) -> str:
    parents = await family(ctx)
    request = birth(ctx, parents)
    reply = await register(ctx, request)
    child = reply.citizen
    declared = request.child
    for name in ("full_name", "sex", "date_of_birth", "place_of_birth", "ethnicity", "nationality"):
        expect(
            getattr(child, name) == getattr(declared, name),
            f"citizen.{name} is {getattr(child, name)!r}, declared {getattr(declared, name)!r}",
        )
    for name in (
        "mother_id_number",
        "father_id_number",
        "birth_certificate_number",
        "registration_province_code",
    ):
        expect(
            getattr(child, name) == getattr(request, name),
            f"citizen.{name} is {getattr(child, name)!r}, sent {getattr(request, name)!r}",
        )
    expect(not child.date_of_death, f"a newborn has date_of_death {child.date_of_death!r}")
    expect(bool(reply.registered_on), "registered_on is empty (empty request means today)")
    found = await citizen(ctx, child.personal_id_number)
    expect(found == child, f"GetCitizen answers {_short(found)}, RegisterBirth {_short(child)}")
    return f"assigned {child.personal_id_number}, registered on {reply.registered_on}"


@rule(
    "register_birth.id_number_twelve_digits",
    "the personal ID number assigned at birth registration is exactly 12 digits",
)
async def _(ctx: Context) -> str:
    assigned = (await newborn(ctx, await family(ctx))).personal_id_number
    expect(len(assigned) == 12 and assigned.isdigit(), f"assigned {assigned!r}")
    return f"assigned {assigned}"


@rule(
    "register_birth.id_number_province",
    "digits 1-3 of the assigned number (PPP) are the code of the registration province, "
    "not the mother's",
)
async def _(ctx: Context) -> str:
    parents = await family(ctx)  # the mother's number starts with 001
    evidence = []
    for province in PROVINCES[1:3]:
        assigned = (await newborn(ctx, parents, province=province)).personal_id_number
        expect(
            assigned[:3] == province,
            f"registered in province {province}, assigned {assigned} (PPP {assigned[:3]})",
        )
        evidence.append(f"{province} → {assigned}")
    return "; ".join(evidence)


@rule(
    "register_birth.id_number_century_sex_digit",
    "digit 4 (G) is the century/sex digit: born 2000-2099 boy 2, girl 3; born 1900-1999 "
    "(a late registration) boy 0, girl 1",
)
async def _(ctx: Context) -> str:
    parents = await family(ctx)
    recent = ctx.today - dt.timedelta(days=3)
    evidence = []
    for born in (recent, dt.date(1999, 12, 31)):
        for sex in (SEX_MALE, SEX_FEMALE):
            assigned = (await newborn(ctx, parents, sex=sex, born=born)).personal_id_number
            wanted = century_sex_digit(born.year, sex)
            expect(
                assigned[3:4] == wanted,
                f"a {sex_word(sex)} born {born} was assigned {assigned}: G is "
                f"{assigned[3:4]!r}, should be {wanted}",
            )
            evidence.append(f"{sex_word(sex)} {born.year}: {assigned}")
    return "; ".join(evidence)


@rule(
    "register_birth.id_number_birth_year",
    "digits 5-6 (YY) are the last two digits of the year of birth, not of the registration",
)
async def _(ctx: Context) -> str:
    born = dt.date(ctx.today.year - 1, 6, 15)
    assigned = (await newborn(ctx, await family(ctx), born=born)).personal_id_number
    expect(
        assigned[4:6] == f"{born.year % 100:02d}",
        f"born {born}, registered this year: assigned {assigned} (YY {assigned[4:6]})",
    )
    return f"born {born}: {assigned}"


@rule(
    "register_birth.id_number_unique",
    "two children of the same province, sex and birth year get different numbers with the "
    "same six-digit prefix",
)
async def _(ctx: Context) -> str:
    parents = await family(ctx)
    first = (await newborn(ctx, parents)).personal_id_number
    second = (await newborn(ctx, parents)).personal_id_number
    expect(first != second, f"both were assigned {first}")
    expect(first[:6] == second[:6], f"prefixes differ: {first}, {second}")
    return f"{first}, {second}"


@rule(
    "register_birth.idempotent_repeat",
    "the same request sent again returns the first answer and registers nothing more",
)
async def _(ctx: Context) -> str:
    request = birth(ctx, await family(ctx))
    first = await register(ctx, request)
    repeat = await register(ctx, request)
    same(first, repeat, "RegisterBirth repeated")
    found = await citizen(ctx, first.citizen.personal_id_number)
    expect(found == first.citizen, f"after the repeat GetCitizen answers {_short(found)}")
    return f"both answers assign {first.citizen.personal_id_number}"


@rule(
    "register_birth.request_id_reused",
    "a request id reused with another body is refused INVALID_ARGUMENT naming request_id",
)
async def _(ctx: Context) -> str:
    parents = await family(ctx)
    request = birth(ctx, parents)
    await register(ctx, request)
    other = birth(ctx, parents, request_id=request.request_id)
    return await refusal(
        stub(ctx).RegisterBirth(other, timeout=T), Code.INVALID_ARGUMENT, fields=["request_id"]
    )


@rule("register_birth.mother_not_found", "a mother not on the register: NOT_FOUND MOTHER_NOT_FOUND")
async def _(ctx: Context) -> str:
    parents = await family(ctx)
    stranger = id_number(ctx, "001", dt.date(1990, 1, 1), SEX_FEMALE)
    request = birth(ctx, parents, mother_id_number=stranger)
    return await refusal(
        stub(ctx).RegisterBirth(request, timeout=T), Code.NOT_FOUND, reason="MOTHER_NOT_FOUND"
    )


@rule(
    "register_birth.mother_not_female",
    "a mother registered as male: FAILED_PRECONDITION MOTHER_NOT_FEMALE",
)
async def _(ctx: Context) -> str:
    parents = await family(ctx)
    request = birth(ctx, parents, mother_id_number=parents.father.personal_id_number)
    return await refusal(
        stub(ctx).RegisterBirth(request, timeout=T),
        Code.FAILED_PRECONDITION,
        reason="MOTHER_NOT_FEMALE",
    )


@rule("register_birth.father_not_found", "a father not on the register: NOT_FOUND FATHER_NOT_FOUND")
async def _(ctx: Context) -> str:
    parents = await family(ctx)
    stranger = id_number(ctx, "001", dt.date(1988, 1, 1), SEX_MALE)
    request = birth(ctx, parents, father_id_number=stranger)
    return await refusal(
        stub(ctx).RegisterBirth(request, timeout=T), Code.NOT_FOUND, reason="FATHER_NOT_FOUND"
    )


@rule(
    "register_birth.certificate_already_registered",
    "a birth certificate registered once, sent under a new request id: ALREADY_EXISTS "
    "BIRTH_ALREADY_REGISTERED",
)
async def _(ctx: Context) -> str:
    parents = await family(ctx)
    request = birth(ctx, parents)
    await register(ctx, request)
    again = birth(
        ctx, parents, birth_certificate_number=request.birth_certificate_number, child=request.child
    )
    return await refusal(
        stub(ctx).RegisterBirth(again, timeout=T),
        Code.ALREADY_EXISTS,
        reason="BIRTH_ALREADY_REGISTERED",
    )


@rule(
    "register_birth.unknown_province",
    "a registration province that is no province: INVALID_ARGUMENT naming "
    "registration_province_code",
)
async def _(ctx: Context) -> str:
    request = birth(ctx, await family(ctx), province=NOT_A_PROVINCE)
    return await refusal(
        stub(ctx).RegisterBirth(request, timeout=T),
        Code.INVALID_ARGUMENT,
        fields=["registration_province_code"],
    )


@rule(
    "register_birth.future_birth",
    "a date of birth a month from now: INVALID_ARGUMENT naming child.date_of_birth",
)
async def _(ctx: Context) -> str:
    request = birth(ctx, await family(ctx), born=ctx.today + dt.timedelta(days=30))
    return await refusal(
        stub(ctx).RegisterBirth(request, timeout=T),
        Code.INVALID_ARGUMENT,
        fields=["child.date_of_birth"],
    )


@rule(
    "register_birth.not_a_real_date",
    "a date of birth that is no calendar day (30 February): INVALID_ARGUMENT naming "
    "child.date_of_birth",
)
async def _(ctx: Context) -> str:
    request = birth(ctx, await family(ctx))
    request.child.date_of_birth = f"{ctx.today.year - 1}-02-30"
    return await refusal(
        stub(ctx).RegisterBirth(request, timeout=T),
        Code.INVALID_ARGUMENT,
        fields=["child.date_of_birth"],
    )


@rule(
    "register_birth.born_after_registration",
    "a birth after the day of registration: INVALID_ARGUMENT naming child.date_of_birth",
)
async def _(ctx: Context) -> str:
    request = birth(
        ctx,
        await family(ctx),
        born=ctx.today - dt.timedelta(days=3),
        registered_on=(ctx.today - dt.timedelta(days=10)).isoformat(),
    )
    return await refusal(
        stub(ctx).RegisterBirth(request, timeout=T),
        Code.INVALID_ARGUMENT,
        fields=["child.date_of_birth"],
    )


@rule(
    "register_birth.field_violations",
    "an empty request: INVALID_ARGUMENT with a BadRequest naming every required field",
)
async def _(ctx: Context) -> str:
    return await refusal(
        stub(ctx).RegisterBirth(pb.RegisterBirthRequest(), timeout=T),
        Code.INVALID_ARGUMENT,
        fields=[
            "request_id",
            "birth_certificate_number",
            "child",
            "mother_id_number",
            "registration_province_code",
        ],
    )


# ---- RegisterPermanentResidence ------------------------------------------------


def residence(
    ctx: Context, personal_id: str, household_id: str, **fields: Any
) -> pb.RegisterPermanentResidenceRequest:
    values: dict[str, Any] = {
        "request_id": ctx.fresh.request_id(),
        "personal_id_number": personal_id,
        "household_id": household_id,
    }
    values.update(fields)
    return pb.RegisterPermanentResidenceRequest(**values)


async def settle(ctx: Context, request: pb.RegisterPermanentResidenceRequest) -> Any:
    return await answer(
        stub(ctx).RegisterPermanentResidence(request, timeout=T), "RegisterPermanentResidence"
    )


@rule(
    "register_permanent_residence.happy_path",
    "a newborn registered into a household: the answer names the household, GetCitizen and "
    "GetHousehold show the residence",
)
async def _(ctx: Context) -> str:
    parents = await family(ctx)
    child = await newborn(ctx, parents)
    home = parents.household
    reply = await settle(ctx, residence(ctx, child.personal_id_number, home.household_id))
    expect(reply.personal_id_number == child.personal_id_number, f"answer {_short(reply)}")
    expect(reply.household == home, f"answer's household {_short(reply.household)}")
    expect(bool(reply.registered_on), "registered_on is empty (empty request means today)")
    found = await citizen(ctx, child.personal_id_number)
    expect(found.household_id == home.household_id, f"GetCitizen household {found.household_id!r}")
    listed = await members(ctx, home.household_id)
    expect(child.personal_id_number in listed, f"GetHousehold members {listed}")
    return f"{child.personal_id_number} in {home.household_id} from {reply.registered_on}"


@rule(
    "register_permanent_residence.idempotent_repeat",
    "the same request sent again returns the first answer; the household lists the citizen once",
)
async def _(ctx: Context) -> str:
    parents = await family(ctx)
    child = await newborn(ctx, parents)
    request = residence(ctx, child.personal_id_number, parents.household.household_id)
    first = await settle(ctx, request)
    repeat = await settle(ctx, request)
    same(first, repeat, "RegisterPermanentResidence repeated")
    listed = await members(ctx, parents.household.household_id)
    expect(listed.count(child.personal_id_number) == 1, f"GetHousehold members {listed}")
    return f"both answers: {child.personal_id_number} in {first.household.household_id}"


@rule(
    "register_permanent_residence.request_id_reused",
    "a request id reused with another body is refused INVALID_ARGUMENT naming request_id",
)
async def _(ctx: Context) -> str:
    parents = await family(ctx)
    child = await newborn(ctx, parents)
    request = residence(ctx, child.personal_id_number, parents.household.household_id)
    await settle(ctx, request)
    other = household(ctx)
    await seed(ctx, pb.SeedPopulationRequest(households=[other]))
    reused = residence(
        ctx, child.personal_id_number, other.household_id, request_id=request.request_id
    )
    return await refusal(
        stub(ctx).RegisterPermanentResidence(reused, timeout=T),
        Code.INVALID_ARGUMENT,
        fields=["request_id"],
    )


@rule(
    "register_permanent_residence.citizen_not_found",
    "a person not on the register: NOT_FOUND CITIZEN_NOT_FOUND",
)
async def _(ctx: Context) -> str:
    parents = await family(ctx)
    stranger = id_number(ctx, "001", dt.date(1990, 1, 1), SEX_FEMALE)
    request = residence(ctx, stranger, parents.household.household_id)
    return await refusal(
        stub(ctx).RegisterPermanentResidence(request, timeout=T),
        Code.NOT_FOUND,
        reason="CITIZEN_NOT_FOUND",
    )


@rule(
    "register_permanent_residence.household_not_found",
    "a household not on the register: NOT_FOUND HOUSEHOLD_NOT_FOUND",
)
async def _(ctx: Context) -> str:
    child = await newborn(ctx, await family(ctx))
    request = residence(ctx, child.personal_id_number, f"HK-CONFORM-{ctx.fresh.token(12)}")
    return await refusal(
        stub(ctx).RegisterPermanentResidence(request, timeout=T),
        Code.NOT_FOUND,
        reason="HOUSEHOLD_NOT_FOUND",
    )


@rule(
    "register_permanent_residence.already_resident",
    "a resident registered again into the same household: ALREADY_EXISTS ALREADY_RESIDENT",
)
async def _(ctx: Context) -> str:
    parents = await family(ctx)
    request = residence(ctx, parents.mother.personal_id_number, parents.household.household_id)
    return await refusal(
        stub(ctx).RegisterPermanentResidence(request, timeout=T),
        Code.ALREADY_EXISTS,
        reason="ALREADY_RESIDENT",
    )


@rule(
    "register_permanent_residence.resident_elsewhere",
    "one permanent residence per person (Law on Residence 2020): a resident of another "
    "household is refused FAILED_PRECONDITION RESIDENT_ELSEWHERE",
)
async def _(ctx: Context) -> str:
    parents = await family(ctx)
    other = household(ctx)
    await seed(ctx, pb.SeedPopulationRequest(households=[other]))
    request = residence(ctx, parents.mother.personal_id_number, other.household_id)
    return await refusal(
        stub(ctx).RegisterPermanentResidence(request, timeout=T),
        Code.FAILED_PRECONDITION,
        reason="RESIDENT_ELSEWHERE",
    )


@rule(
    "register_permanent_residence.citizen_deceased",
    "a person registered dead: FAILED_PRECONDITION CITIZEN_DECEASED",
)
async def _(ctx: Context) -> str:
    parents = await family(ctx)
    dead = await living(ctx, date_of_death="2020-06-01")
    request = residence(ctx, dead.personal_id_number, parents.household.household_id)
    return await refusal(
        stub(ctx).RegisterPermanentResidence(request, timeout=T),
        Code.FAILED_PRECONDITION,
        reason="CITIZEN_DECEASED",
    )


@rule(
    "register_permanent_residence.before_birth",
    "a residence registered before the citizen was born: INVALID_ARGUMENT naming registered_on",
)
async def _(ctx: Context) -> str:
    parents = await family(ctx)
    child = await newborn(ctx, parents)
    before = (dt.date.fromisoformat(child.date_of_birth) - dt.timedelta(days=1)).isoformat()
    request = residence(
        ctx, child.personal_id_number, parents.household.household_id, registered_on=before
    )
    return await refusal(
        stub(ctx).RegisterPermanentResidence(request, timeout=T),
        Code.INVALID_ARGUMENT,
        fields=["registered_on"],
    )


@rule(
    "register_permanent_residence.field_violations",
    "an empty request: INVALID_ARGUMENT with a BadRequest naming every required field",
)
async def _(ctx: Context) -> str:
    return await refusal(
        stub(ctx).RegisterPermanentResidence(pb.RegisterPermanentResidenceRequest(), timeout=T),
        Code.INVALID_ARGUMENT,
        fields=["request_id", "personal_id_number", "household_id"],
    )


# ---- RegisterDeath --------------------------------------------------------------


def death(ctx: Context, personal_id: str, died: dt.date, **fields: Any) -> pb.RegisterDeathRequest:
    values: dict[str, Any] = {
        "request_id": ctx.fresh.request_id(),
        "personal_id_number": personal_id,
        "date_of_death": died.isoformat(),
        "time_of_death": "06:30",
        "place_of_death": "Bệnh viện Bạch Mai",
    }
    values.update(fields)
    return pb.RegisterDeathRequest(**values)


async def declare(ctx: Context, request: pb.RegisterDeathRequest) -> pb.DeathRegistration:
    reply = await answer(stub(ctx).RegisterDeath(request, timeout=T), "RegisterDeath")
    return reply.registration  # type: ignore[no-any-return]


async def living(ctx: Context, **fields: Any) -> pb.Citizen:
    return await seeded(ctx, person(ctx, SEX_MALE, adult_birthday(1930, 1965), **fields))


@rule(
    "register_death.happy_path",
    "a death declared five days after it: registered, not late, and GetCitizen shows the "
    "date of death",
)
async def _(ctx: Context) -> str:
    deceased = await living(ctx)
    died = ctx.today - dt.timedelta(days=5)
    registration = await declare(ctx, death(ctx, deceased.personal_id_number, died))
    expect(
        registration.personal_id_number == deceased.personal_id_number
        and registration.date_of_death == died.isoformat(),
        f"registration {_short(registration)}",
    )
    expect(bool(registration.registered_on), "registered_on is empty (empty means today)")
    expect(not registration.declared_late, f"5 days after: declared_late {_short(registration)}")
    found = await citizen(ctx, deceased.personal_id_number)
    expect(
        found.date_of_death == died.isoformat(), f"GetCitizen date_of_death {found.date_of_death!r}"
    )
    days = registration.days_after_death
    return f"died {died}, registered {registration.registered_on}, days after death {days}"


@rule(
    "register_death.on_time_on_the_fifteenth_day",
    "declared on the 15th day after the death: on time (Law on Civil Status art. 33), "
    "days_after_death 15",
)
async def _(ctx: Context) -> str:
    deceased = await living(ctx)
    declared = ctx.today - dt.timedelta(days=2)
    died = declared - dt.timedelta(days=DEATH_DECLARATION_DAYS)
    registration = await declare(
        ctx, death(ctx, deceased.personal_id_number, died, declared_on=declared.isoformat())
    )
    expect(
        not registration.declared_late and registration.days_after_death == 15,
        f"died {died}, declared {declared}: {_short(registration)}",
    )
    return f"died {died}, declared {declared}: on time, 15 days"


@rule(
    "register_death.late_after_fifteen_days",
    "declared on the 16th day after the death: still registered, flagged declared_late, "
    "days_after_death 16",
)
async def _(ctx: Context) -> str:
    deceased = await living(ctx)
    declared = ctx.today - dt.timedelta(days=2)
    died = declared - dt.timedelta(days=DEATH_DECLARATION_DAYS + 1)
    registration = await declare(
        ctx, death(ctx, deceased.personal_id_number, died, declared_on=declared.isoformat())
    )
    expect(
        registration.declared_late and registration.days_after_death == 16,
        f"died {died}, declared {declared}: {_short(registration)}",
    )
    return f"died {died}, declared {declared}: late, 16 days"


@rule(
    "register_death.idempotent_repeat",
    "the same request sent again returns the first answer (not ALREADY_DEAD)",
)
async def _(ctx: Context) -> str:
    deceased = await living(ctx)
    request = death(ctx, deceased.personal_id_number, ctx.today - dt.timedelta(days=1))
    first = await declare(ctx, request)
    repeat = await declare(ctx, request)
    same(first, repeat, "RegisterDeath repeated")
    return f"both answers: {_short(first)}"


@rule(
    "register_death.request_id_reused",
    "a request id reused with another body is refused INVALID_ARGUMENT naming request_id",
)
async def _(ctx: Context) -> str:
    deceased = await living(ctx)
    request = death(ctx, deceased.personal_id_number, ctx.today - dt.timedelta(days=1))
    await declare(ctx, request)
    other = death(
        ctx,
        deceased.personal_id_number,
        ctx.today - dt.timedelta(days=2),
        request_id=request.request_id,
    )
    return await refusal(
        stub(ctx).RegisterDeath(other, timeout=T), Code.INVALID_ARGUMENT, fields=["request_id"]
    )


@rule(
    "register_death.already_dead",
    "a person already registered dead, under a new request id: FAILED_PRECONDITION ALREADY_DEAD",
)
async def _(ctx: Context) -> str:
    dead = await living(ctx, date_of_death="2021-02-02")
    request = death(ctx, dead.personal_id_number, ctx.today - dt.timedelta(days=1))
    return await refusal(
        stub(ctx).RegisterDeath(request, timeout=T),
        Code.FAILED_PRECONDITION,
        reason="ALREADY_DEAD",
    )


@rule(
    "register_death.death_before_birth",
    "a date of death before the date of birth: FAILED_PRECONDITION DEATH_BEFORE_BIRTH",
)
async def _(ctx: Context) -> str:
    deceased = await living(ctx)
    born = dt.date.fromisoformat(deceased.date_of_birth)
    request = death(ctx, deceased.personal_id_number, born - dt.timedelta(days=1))
    return await refusal(
        stub(ctx).RegisterDeath(request, timeout=T),
        Code.FAILED_PRECONDITION,
        reason="DEATH_BEFORE_BIRTH",
    )


@rule(
    "register_death.future_death",
    "a date of death a month from now: INVALID_ARGUMENT naming date_of_death",
)
async def _(ctx: Context) -> str:
    deceased = await living(ctx)
    request = death(ctx, deceased.personal_id_number, ctx.today + dt.timedelta(days=30))
    return await refusal(
        stub(ctx).RegisterDeath(request, timeout=T),
        Code.INVALID_ARGUMENT,
        fields=["date_of_death"],
    )


@rule(
    "register_death.citizen_not_found",
    "a person not on the register: NOT_FOUND CITIZEN_NOT_FOUND",
)
async def _(ctx: Context) -> str:
    stranger = id_number(ctx, "001", dt.date(1950, 1, 1), SEX_MALE)
    request = death(ctx, stranger, ctx.today - dt.timedelta(days=1))
    return await refusal(
        stub(ctx).RegisterDeath(request, timeout=T), Code.NOT_FOUND, reason="CITIZEN_NOT_FOUND"
    )


@rule(
    "register_death.field_violations",
    "an empty request: INVALID_ARGUMENT with a BadRequest naming every required field",
)
async def _(ctx: Context) -> str:
    return await refusal(
        stub(ctx).RegisterDeath(pb.RegisterDeathRequest(), timeout=T),
        Code.INVALID_ARGUMENT,
        fields=["request_id", "personal_id_number", "date_of_death", "place_of_death"],
    )


# ---- RemovePermanentResidence ------------------------------------------------------


def removal(ctx: Context, personal_id: str, **fields: Any) -> pb.RemovePermanentResidenceRequest:
    values: dict[str, Any] = {
        "request_id": ctx.fresh.request_id(),
        "personal_id_number": personal_id,
        "reason": pb.REMOVAL_REASON_DECEASED,
    }
    values.update(fields)
    return pb.RemovePermanentResidenceRequest(**values)


async def remove(ctx: Context, request: pb.RemovePermanentResidenceRequest) -> Any:
    return await answer(
        stub(ctx).RemovePermanentResidence(request, timeout=T), "RemovePermanentResidence"
    )


async def deceased_resident(ctx: Context) -> tuple[Family, pb.Citizen]:
    """A family whose father dies and has his death registered."""
    parents = await family(ctx)
    await declare(
        ctx, death(ctx, parents.father.personal_id_number, ctx.today - dt.timedelta(days=2))
    )
    return parents, parents.father


@rule(
    "remove_permanent_residence.happy_path",
    "the residence of a person whose death is registered is removed: GetCitizen and "
    "GetHousehold no longer show it",
)
async def _(ctx: Context) -> str:
    parents, dead = await deceased_resident(ctx)
    reply = await remove(ctx, removal(ctx, dead.personal_id_number))
    home = parents.household.household_id
    expect(reply.household_id == home, f"removed from {reply.household_id!r}, lived in {home}")
    expect(bool(reply.removed_on), "removed_on is empty (empty means today)")
    found = await citizen(ctx, dead.personal_id_number)
    expect(not found.household_id, f"GetCitizen still shows household {found.household_id!r}")
    listed = await members(ctx, home)
    expect(dead.personal_id_number not in listed, f"GetHousehold still lists them: {listed}")
    return f"removed from {home} on {reply.removed_on}"


@rule(
    "remove_permanent_residence.idempotent_repeat",
    "the same request sent again returns the first answer (not NO_PERMANENT_RESIDENCE)",
)
async def _(ctx: Context) -> str:
    _parents, dead = await deceased_resident(ctx)
    request = removal(ctx, dead.personal_id_number)
    first = await remove(ctx, request)
    repeat = await remove(ctx, request)
    same(first, repeat, "RemovePermanentResidence repeated")
    return f"both answers: {_short(first)}"


@rule(
    "remove_permanent_residence.request_id_reused",
    "a request id reused with another body is refused INVALID_ARGUMENT naming request_id",
)
async def _(ctx: Context) -> str:
    _parents, dead = await deceased_resident(ctx)
    request = removal(ctx, dead.personal_id_number)
    await remove(ctx, request)
    other = removal(
        ctx,
        dead.personal_id_number,
        request_id=request.request_id,
        removed_on=(ctx.today - dt.timedelta(days=1)).isoformat(),
    )
    return await refusal(
        stub(ctx).RemovePermanentResidence(other, timeout=T),
        Code.INVALID_ARGUMENT,
        fields=["request_id"],
    )


@rule(
    "remove_permanent_residence.not_registered_dead",
    "removal because of a death the register does not record (Law on Residence 2020 art. "
    "24): FAILED_PRECONDITION NOT_REGISTERED_DEAD",
)
async def _(ctx: Context) -> str:
    parents = await family(ctx)
    request = removal(ctx, parents.father.personal_id_number)
    return await refusal(
        stub(ctx).RemovePermanentResidence(request, timeout=T),
        Code.FAILED_PRECONDITION,
        reason="NOT_REGISTERED_DEAD",
    )


@rule(
    "remove_permanent_residence.no_permanent_residence",
    "a person without a permanent residence: FAILED_PRECONDITION NO_PERMANENT_RESIDENCE",
)
async def _(ctx: Context) -> str:
    dead = await living(ctx, date_of_death="2021-02-02")
    return await refusal(
        stub(ctx).RemovePermanentResidence(removal(ctx, dead.personal_id_number), timeout=T),
        Code.FAILED_PRECONDITION,
        reason="NO_PERMANENT_RESIDENCE",
    )


@rule(
    "remove_permanent_residence.citizen_not_found",
    "a person not on the register: NOT_FOUND CITIZEN_NOT_FOUND",
)
async def _(ctx: Context) -> str:
    stranger = id_number(ctx, "001", dt.date(1950, 1, 1), SEX_MALE)
    return await refusal(
        stub(ctx).RemovePermanentResidence(removal(ctx, stranger), timeout=T),
        Code.NOT_FOUND,
        reason="CITIZEN_NOT_FOUND",
    )


@rule(
    "remove_permanent_residence.field_violations",
    "an empty request: INVALID_ARGUMENT with a BadRequest naming every required field",
)
async def _(ctx: Context) -> str:
    return await refusal(
        stub(ctx).RemovePermanentResidence(pb.RemovePermanentResidenceRequest(), timeout=T),
        Code.INVALID_ARGUMENT,
        fields=["request_id", "personal_id_number", "reason"],
    )


# ---- GetCitizen, GetHousehold ------------------------------------------------------


@rule("get_citizen.happy_path", "GetCitizen answers a seeded citizen exactly as seeded")
async def _(ctx: Context) -> str:
    parents = await family(ctx)
    found = await citizen(ctx, parents.mother.personal_id_number)
    expect(found == parents.mother, f"seeded {_short(parents.mother)}, got {_short(found)}")
    return f"found {found.personal_id_number} as seeded"


@rule("get_citizen.not_found", "a number nobody holds: NOT_FOUND CITIZEN_NOT_FOUND")
async def _(ctx: Context) -> str:
    stranger = id_number(ctx, "001", dt.date(1990, 1, 1), SEX_FEMALE)
    return await refusal(
        stub(ctx).GetCitizen(pb.GetCitizenRequest(personal_id_number=stranger), timeout=T),
        Code.NOT_FOUND,
        reason="CITIZEN_NOT_FOUND",
    )


@rule(
    "get_citizen.field_violations",
    "a number that is not 12 digits: INVALID_ARGUMENT naming personal_id_number",
)
async def _(ctx: Context) -> str:
    return await refusal(
        stub(ctx).GetCitizen(pb.GetCitizenRequest(personal_id_number="12345"), timeout=T),
        Code.INVALID_ARGUMENT,
        fields=["personal_id_number"],
    )


@rule("get_household.happy_path", "GetHousehold answers a seeded household and its members")
async def _(ctx: Context) -> str:
    parents = await family(ctx)
    reply = await answer(
        stub(ctx).GetHousehold(
            pb.GetHouseholdRequest(household_id=parents.household.household_id), timeout=T
        ),
        "GetHousehold",
    )
    expect(reply.household == parents.household, f"household {_short(reply.household)}")
    wanted = {parents.mother.personal_id_number, parents.father.personal_id_number}
    expect(set(reply.member_id_numbers) == wanted, f"members {list(reply.member_id_numbers)}")
    return f"{parents.household.household_id}: {len(wanted)} members"


@rule("get_household.not_found", "a household nobody registered: NOT_FOUND HOUSEHOLD_NOT_FOUND")
async def _(ctx: Context) -> str:
    request = pb.GetHouseholdRequest(household_id=f"HK-CONFORM-{ctx.fresh.token(12)}")
    return await refusal(
        stub(ctx).GetHousehold(request, timeout=T), Code.NOT_FOUND, reason="HOUSEHOLD_NOT_FOUND"
    )


@rule(
    "get_household.field_violations",
    "an empty household id: INVALID_ARGUMENT naming household_id",
)
async def _(ctx: Context) -> str:
    return await refusal(
        stub(ctx).GetHousehold(pb.GetHouseholdRequest(), timeout=T),
        Code.INVALID_ARGUMENT,
        fields=["household_id"],
    )


# ---- SeedPopulation ----------------------------------------------------------------


def seed_call(ctx: Context, *batches: pb.SeedPopulationRequest) -> Any:
    async def stream() -> AsyncIterator[pb.SeedPopulationRequest]:
        for batch in batches:
            yield batch

    return stub(ctx).SeedPopulation(stream(), timeout=T)


@rule(
    "seed_population.happy_path",
    "a stream of two batches is loaded: the answer counts every household and citizen added",
)
async def _(ctx: Context) -> str:
    homes = [household(ctx), household(ctx, "079")]
    people = [
        person(ctx, SEX_FEMALE, dt.date(1985, 1, 1), household_id=homes[0].household_id),
        person(ctx, SEX_MALE, dt.date(2001, 2, 2), "079", household_id=homes[1].household_id),
        person(ctx, SEX_FEMALE, dt.date(2003, 3, 3), "079"),
    ]
    reply = await seed(
        ctx,
        pb.SeedPopulationRequest(households=homes, citizens=people[:1]),
        pb.SeedPopulationRequest(citizens=people[1:]),
    )
    expect(
        (reply.households, reply.citizens) == (2, 3),
        f"sent 2 households and 3 citizens, answer counts {_short(reply)}",
    )
    for one in people:
        found = await citizen(ctx, one.personal_id_number)
        expect(found == one, f"seeded {_short(one)}, GetCitizen {_short(found)}")
    return "2 households, 3 citizens, each found as seeded"


@rule(
    "seed_population.replay_changes_nothing",
    "the same seed sent again adds nothing: the answer counts 0 households, 0 citizens",
)
async def _(ctx: Context) -> str:
    home = household(ctx)
    batch = pb.SeedPopulationRequest(
        households=[home],
        citizens=[person(ctx, SEX_FEMALE, dt.date(1985, 1, 1), household_id=home.household_id)],
    )
    await seed(ctx, batch)
    again = await seed(ctx, batch)
    expect((again.households, again.citizens) == (0, 0), f"the replay counts {_short(again)}")
    return "replay added 0 households, 0 citizens"


@rule(
    "seed_population.all_or_nothing",
    "a stream whose second batch is invalid is refused INVALID_ARGUMENT and loads nothing, "
    "not even the first batch",
)
async def _(ctx: Context) -> str:
    home = household(ctx)
    bad = person(ctx, SEX_FEMALE, dt.date(1985, 1, 1), date_of_birth="1985-02-30")
    evidence = await refusal(
        seed_call(
            ctx,
            pb.SeedPopulationRequest(households=[home]),
            pb.SeedPopulationRequest(citizens=[bad]),
        ),
        Code.INVALID_ARGUMENT,
    )
    await refusal(
        stub(ctx).GetHousehold(pb.GetHouseholdRequest(household_id=home.household_id), timeout=T),
        Code.NOT_FOUND,
    )
    return f"{evidence}; the first batch's household is NOT_FOUND afterwards"


@rule(
    "seed_population.id_number_checked",
    "a seeded citizen whose number's century/sex digit contradicts the sex and date of birth "
    "is refused INVALID_ARGUMENT naming its personal_id_number",
)
async def _(ctx: Context) -> str:
    woman = person(ctx, SEX_FEMALE, dt.date(1985, 1, 1))
    # 0 is a man born 1900-1999: not this woman.
    number = woman.personal_id_number
    woman.personal_id_number = f"{number[:3]}0{number[4:]}"
    got = await refused(
        seed_call(ctx, pb.SeedPopulationRequest(citizens=[woman])), Code.INVALID_ARGUMENT
    )
    named = [f for f in got.fields if f.endswith("personal_id_number")]
    expect(bool(named), f"the BadRequest names no personal_id_number: {got}")
    return f"{woman.personal_id_number} for a woman born 1985: {got}"


@rule(
    "seed_population.conflicting_record",
    "another person (another date of birth) seeded under a number already held: "
    "ALREADY_EXISTS PERSONAL_ID_TAKEN",
)
async def _(ctx: Context) -> str:
    first = await living(ctx)
    other = pb.Citizen()
    other.CopyFrom(first)
    # Another person: the number is the same, the date of birth (same year,
    # so the number still fits it) is not. A new name alone may be a replay.
    born = dt.date.fromisoformat(first.date_of_birth)
    another_day = born + dt.timedelta(days=1 if (born.month, born.day) != (12, 31) else -1)
    other.date_of_birth = another_day.isoformat()
    return await refusal(
        seed_call(ctx, pb.SeedPopulationRequest(citizens=[other])),
        Code.ALREADY_EXISTS,
        reason="PERSONAL_ID_TAKEN",
    )


# ---- the wire ------------------------------------------------------------------------

wire.add_wire_rules(book, SERVICE)
