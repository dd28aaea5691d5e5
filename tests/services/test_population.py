"""The population registry over real gRPC on loopback, with a real SQLite file
or a real PostgreSQL database (every test using the `registry` fixture runs on both).

The registry's clock is fixed at TODAY so that lateness and "in the future"
do not depend on the day the suite runs.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from lienthong.common.v1.common_pb2 import SEX_FEMALE, SEX_MALE
from lienthong.population.v1 import population_pb2 as pb
from lienthong.population.v1 import population_pb2_grpc as pb_grpc
from services.population.app import build
from services.population.benchmark import measure
from services.population.store import PopulationStore
from tests.grpc_errors import CallError, call_error

TODAY = dt.date(2025, 3, 10)
MOTHER = "001190000001"  # Hà Nội, female, 1990
FATHER = "001088000002"  # Hà Nội, male, 1988
DECEASED = "079145000003"  # Hồ Chí Minh City, female, 1945, died 2020
STRANGER = "001190999999"  # well-formed, never registered
HOUSEHOLD = pb.Household(
    household_id="HK-001", address="12 Phố Huế, Hai Bà Trưng", province_code="001"
)
OTHER_HOUSEHOLD = pb.Household(
    household_id="HK-002", address="5 Lê Lợi, Quận 1", province_code="079"
)


def citizen(personal_id: str, sex: int, born: str, **fields: Any) -> pb.Citizen:
    values: dict[str, Any] = {
        "personal_id_number": personal_id,
        "full_name": "Công dân",
        "sex": sex,
        "date_of_birth": born,
        "place_of_birth": "Hà Nội",
        "ethnicity": "Kinh",
        "nationality": "Việt Nam",
        "registration_province_code": personal_id[:3],
    }
    values.update(fields)
    return pb.Citizen(**values)


BASE_SEED = pb.SeedPopulationRequest(
    households=[HOUSEHOLD, OTHER_HOUSEHOLD],
    citizens=[
        citizen(
            MOTHER, SEX_FEMALE, "1990-04-12", full_name="Nguyễn Thị Lan", household_id="HK-001"
        ),
        citizen(FATHER, SEX_MALE, "1988-11-02", full_name="Trần Văn Minh", household_id="HK-001"),
        citizen(DECEASED, SEX_FEMALE, "1945-01-20", date_of_death="2020-06-01"),
    ],
)


async def seed(stub: Any, *batches: pb.SeedPopulationRequest) -> pb.SeedPopulationResponse:
    async def stream() -> AsyncIterator[pb.SeedPopulationRequest]:
        for batch in batches:
            yield batch

    response: pb.SeedPopulationResponse = await stub.SeedPopulation(stream())
    return response


def at_today(database: Path, **settings: Any) -> Any:
    return build(database, today=lambda: TODAY, **settings)


@pytest.fixture(params=["sqlite", "postgres"])
async def registry(start: Any, request: pytest.FixtureRequest) -> Any:
    """The registry over each engine: its rules must not depend on which."""
    database = request.getfixturevalue("postgres_url") if request.param == "postgres" else None
    registry = await start(at_today, database=database)
    await seed(pb_grpc.PopulationRegistryServiceStub(registry.channel), BASE_SEED)
    return registry


@pytest.fixture
def stub(registry: Any) -> Any:
    return pb_grpc.PopulationRegistryServiceStub(registry.channel)


def birth_request(
    request_id: str = "birth-1", *, child: dict[str, Any] | None = None, **fields: Any
) -> pb.RegisterBirthRequest:
    particulars: dict[str, Any] = {
        "full_name": "Trần Thị Mai",
        "sex": SEX_FEMALE,
        "date_of_birth": "2024-05-01",
        "place_of_birth": "Bệnh viện Phụ sản Hà Nội",
        "ethnicity": "Kinh",
        "nationality": "Việt Nam",
    }
    particulars.update(child or {})
    values: dict[str, Any] = {
        "request_id": request_id,
        "birth_certificate_number": f"GCS-01001-{request_id.upper()}",
        "child": pb.ChildParticulars(**particulars),
        "mother_id_number": MOTHER,
        "father_id_number": FATHER,
        "registration_province_code": "001",
    }
    values.update(fields)
    return pb.RegisterBirthRequest(**values)


def residence_request(
    personal_id: str, household_id: str = "HK-001", request_id: str = "residence-1", **fields: Any
) -> pb.RegisterPermanentResidenceRequest:
    return pb.RegisterPermanentResidenceRequest(
        request_id=request_id, personal_id_number=personal_id, household_id=household_id, **fields
    )


def removal_request(
    personal_id: str, request_id: str = "removal-1", **fields: Any
) -> pb.RemovePermanentResidenceRequest:
    return pb.RemovePermanentResidenceRequest(
        request_id=request_id,
        personal_id_number=personal_id,
        reason=pb.REMOVAL_REASON_DECEASED,
        **fields,
    )


def death_request(
    personal_id: str = MOTHER, request_id: str = "death-1", **fields: Any
) -> pb.RegisterDeathRequest:
    values: dict[str, Any] = {
        "request_id": request_id,
        "personal_id_number": personal_id,
        "date_of_death": "2025-03-01",
        "time_of_death": "04:15",
        "place_of_death": "Bệnh viện Bạch Mai",
    }
    values.update(fields)
    return pb.RegisterDeathRequest(**values)


async def refused(call: Any) -> CallError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return call_error(raised.value)


async def citizen_of(stub: Any, personal_id: str) -> pb.Citizen:
    response = await stub.GetCitizen(pb.GetCitizenRequest(personal_id_number=personal_id))
    found: pb.Citizen = response.citizen
    return found


async def members_of(stub: Any, household_id: str) -> list[str]:
    response = await stub.GetHousehold(pb.GetHouseholdRequest(household_id=household_id))
    return list(response.member_id_numbers)


# --- RegisterBirth -------------------------------------------------------------


async def test_birth_gets_an_id_from_province_century_sex_and_year(stub: Any) -> None:
    response = await stub.RegisterBirth(birth_request())
    child = response.citizen
    # A girl born in 2024 and registered in Hà Nội: 001 3 24 NNNNNN.
    assert child.personal_id_number == "001324000001"
    assert response.registered_on == TODAY.isoformat()
    assert (child.full_name, child.sex, child.date_of_birth) == (
        "Trần Thị Mai",
        SEX_FEMALE,
        "2024-05-01",
    )
    assert (child.mother_id_number, child.father_id_number) == (MOTHER, FATHER)
    assert child.birth_certificate_number == "GCS-01001-BIRTH-1"
    assert child.registration_province_code == "001"
    assert child.household_id == ""
    assert child.date_of_death == ""
    assert await citizen_of(stub, child.personal_id_number) == child

    boy = await stub.RegisterBirth(
        birth_request(
            "birth-2",
            child={"sex": SEX_MALE, "date_of_birth": "2025-03-09"},
            registration_province_code="079",
        )
    )
    assert boy.citizen.personal_id_number == "079225000001"


async def test_serials_skip_numbers_taken_by_seeded_citizens(stub: Any) -> None:
    taken = [citizen(f"001324{serial:06d}", SEX_FEMALE, "2024-01-01") for serial in (1, 2, 4)]
    await seed(stub, pb.SeedPopulationRequest(citizens=taken))
    first = await stub.RegisterBirth(birth_request("birth-1"))
    second = await stub.RegisterBirth(birth_request("birth-2"))
    assert first.citizen.personal_id_number == "001324000003"
    assert second.citizen.personal_id_number == "001324000005"


async def test_same_request_id_registers_one_birth(stub: Any) -> None:
    first = await stub.RegisterBirth(birth_request("same"))
    again = await stub.RegisterBirth(birth_request("same"))
    assert again == first
    # Had the repeat registered a second child it would hold serial 2.
    other = await stub.RegisterBirth(birth_request("another"))
    assert other.citizen.personal_id_number == "001324000002"


async def test_request_id_reused_for_a_different_request_is_refused(stub: Any) -> None:
    await stub.RegisterBirth(birth_request("reused"))
    error = await refused(
        stub.RegisterBirth(birth_request("reused", child={"full_name": "Trần Văn Nam"}))
    )
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "request_id" in error.field_violations


async def test_a_birth_certificate_is_registered_once(stub: Any) -> None:
    await stub.RegisterBirth(birth_request("first", birth_certificate_number="GCS-01001-0000042"))
    error = await refused(
        stub.RegisterBirth(birth_request("second", birth_certificate_number="GCS-01001-0000042"))
    )
    assert error.code == grpc.StatusCode.ALREADY_EXISTS
    assert error.reason == "BIRTH_ALREADY_REGISTERED"
    assert error.message == "this birth certificate is already registered"


@pytest.mark.parametrize(
    ("born", "registered_on", "words"),
    [
        ("2024-02-30", "", "not a real date"),
        ((TODAY + dt.timedelta(days=1)).isoformat(), "", "in the future"),
        ("2025-03-05", "2025-03-01", "after the registration day"),
        ("1899-12-31", "", "outside the centuries"),
    ],
)
async def test_child_date_of_birth_must_be_real_past_and_before_registration(
    stub: Any, born: str, registered_on: str, words: str
) -> None:
    error = await refused(
        stub.RegisterBirth(
            birth_request(child={"date_of_birth": born}, registered_on=registered_on)
        )
    )
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.field_violations.keys() == {"child.date_of_birth"}
    assert words in error.field_violations["child.date_of_birth"]


async def test_registration_day_cannot_be_in_the_future(stub: Any) -> None:
    tomorrow = (TODAY + dt.timedelta(days=1)).isoformat()
    error = await refused(stub.RegisterBirth(birth_request(registered_on=tomorrow)))
    assert error.field_violations.keys() == {"registered_on"}


async def test_registration_province_must_be_in_the_table(stub: Any) -> None:
    error = await refused(stub.RegisterBirth(birth_request(registration_province_code="999")))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.field_violations == {"registration_province_code": "999 is not a province code"}


async def test_mother_must_be_registered_and_female(stub: Any) -> None:
    error = await refused(stub.RegisterBirth(birth_request(mother_id_number=STRANGER)))
    assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "MOTHER_NOT_FOUND")
    error = await refused(stub.RegisterBirth(birth_request(mother_id_number=FATHER)))
    assert (error.code, error.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "MOTHER_NOT_FEMALE",
    )


async def test_a_declared_father_must_be_registered(stub: Any) -> None:
    error = await refused(stub.RegisterBirth(birth_request(father_id_number=STRANGER)))
    assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "FATHER_NOT_FOUND")
    undeclared = await stub.RegisterBirth(birth_request(father_id_number=""))
    assert undeclared.citizen.father_id_number == ""


async def test_a_used_up_prefix_is_refused(registry: Any, stub: Any) -> None:
    await seed(
        stub, pb.SeedPopulationRequest(citizens=[citizen("001324999999", SEX_FEMALE, "2024-01-01")])
    )
    # Stands for the 999,998 births registered before in this prefix.
    registry.store.run_sync(
        lambda conn: conn.execute(
            "INSERT INTO id_serials (prefix, next_serial) VALUES ('001324', 999999)"
        )
    )
    error = await refused(stub.RegisterBirth(birth_request()))
    assert (error.code, error.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "ID_SERIALS_EXHAUSTED",
    )
    # Nothing was written: the certificate is still free for another prefix.
    boy = await stub.RegisterBirth(
        birth_request("boy", child={"sex": SEX_MALE}, birth_certificate_number="GCS-01001-BIRTH-1")
    )
    assert boy.citizen.personal_id_number == "001224000001"


async def test_malformed_birth_request_names_each_bad_field(stub: Any) -> None:
    error = await refused(
        stub.RegisterBirth(
            birth_request(
                child={"sex": 0, "full_name": ""},
                mother_id_number="12345",
                birth_certificate_number="gcs 1",
                registration_province_code="01",
            )
        )
    )
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.field_violations["mother_id_number"] == (
        "must be a 12-digit personal identification number"
    )
    assert error.field_violations["registration_province_code"] == (
        "must be a 3-digit province code"
    )
    assert {"child.sex", "child.full_name", "birth_certificate_number"} <= set(
        error.field_violations
    )
    error = await refused(stub.RegisterBirth(pb.RegisterBirthRequest(request_id="empty")))
    assert error.field_violations["child"] == "is required"


# --- RegisterPermanentResidence ------------------------------------------------


async def test_registered_residence_shows_on_citizen_and_household(stub: Any) -> None:
    child = (await stub.RegisterBirth(birth_request())).citizen.personal_id_number
    response = await stub.RegisterPermanentResidence(residence_request(child))
    assert response.personal_id_number == child
    assert response.household == HOUSEHOLD
    assert response.registered_on == TODAY.isoformat()
    assert (await citizen_of(stub, child)).household_id == "HK-001"
    assert await members_of(stub, "HK-001") == sorted([MOTHER, FATHER, child])


async def test_residence_needs_a_living_citizen_and_a_known_household(stub: Any) -> None:
    error = await refused(stub.RegisterPermanentResidence(residence_request(STRANGER)))
    assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "CITIZEN_NOT_FOUND")
    error = await refused(stub.RegisterPermanentResidence(residence_request(DECEASED)))
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CITIZEN_DECEASED")
    child = (await stub.RegisterBirth(birth_request())).citizen.personal_id_number
    error = await refused(stub.RegisterPermanentResidence(residence_request(child, "HK-404")))
    assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "HOUSEHOLD_NOT_FOUND")


async def test_one_permanent_residence_per_person(stub: Any) -> None:
    error = await refused(stub.RegisterPermanentResidence(residence_request(MOTHER, "HK-001")))
    assert (error.code, error.reason) == (grpc.StatusCode.ALREADY_EXISTS, "ALREADY_RESIDENT")
    error = await refused(stub.RegisterPermanentResidence(residence_request(MOTHER, "HK-002")))
    assert (error.code, error.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "RESIDENT_ELSEWHERE",
    )
    assert await members_of(stub, "HK-002") == []


async def test_same_request_id_registers_residence_once(stub: Any) -> None:
    child = (await stub.RegisterBirth(birth_request())).citizen.personal_id_number
    first = await stub.RegisterPermanentResidence(residence_request(child, request_id="r"))
    again = await stub.RegisterPermanentResidence(residence_request(child, request_id="r"))
    assert again == first
    error = await refused(
        stub.RegisterPermanentResidence(residence_request(child, request_id="r2"))
    )
    assert error.reason == "ALREADY_RESIDENT"


@pytest.mark.parametrize("registered_on", ["2024-04-30", "2025-03-11", "2025-02-29"])
async def test_residence_day_must_be_real_not_future_not_before_birth(
    stub: Any, registered_on: str
) -> None:
    child = (await stub.RegisterBirth(birth_request())).citizen.personal_id_number
    error = await refused(
        stub.RegisterPermanentResidence(residence_request(child, registered_on=registered_on))
    )
    assert error.field_violations.keys() == {"registered_on"}
    assert (await citizen_of(stub, child)).household_id == ""


# --- RegisterDeath and RemovePermanentResidence (group 2) --------------------


async def test_death_then_removal_closes_the_residence_and_keeps_its_history(
    registry: Any, stub: Any
) -> None:
    await stub.RegisterDeath(death_request(MOTHER))
    removed = await stub.RemovePermanentResidence(removal_request(MOTHER))
    assert removed.personal_id_number == MOTHER
    assert removed.household_id == "HK-001"
    assert removed.removed_on == TODAY.isoformat()
    deceased = await citizen_of(stub, MOTHER)
    assert (deceased.household_id, deceased.date_of_death) == ("", "2025-03-01")
    assert await members_of(stub, "HK-001") == [FATHER]
    history = registry.store.run_sync(
        lambda conn: [tuple(row) for row in PopulationStore(conn).residence_history(MOTHER)]
    )
    # Seeded, so the day it was registered is unknown; closed, not deleted.
    assert history == [("HK-001", None, TODAY.isoformat(), pb.REMOVAL_REASON_DECEASED)]


async def test_removal_needs_a_residence_and_a_registered_death(stub: Any) -> None:
    error = await refused(stub.RemovePermanentResidence(removal_request(STRANGER)))
    assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "CITIZEN_NOT_FOUND")
    error = await refused(stub.RemovePermanentResidence(removal_request(MOTHER)))
    assert (error.code, error.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "NOT_REGISTERED_DEAD",
    )
    assert await members_of(stub, "HK-001") == sorted([MOTHER, FATHER])
    error = await refused(stub.RemovePermanentResidence(removal_request(DECEASED)))
    assert (error.code, error.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "NO_PERMANENT_RESIDENCE",
    )


async def test_same_request_id_removes_once(stub: Any) -> None:
    await stub.RegisterDeath(death_request(MOTHER))
    first = await stub.RemovePermanentResidence(removal_request(MOTHER, "rm"))
    assert await stub.RemovePermanentResidence(removal_request(MOTHER, "rm")) == first
    error = await refused(stub.RemovePermanentResidence(removal_request(MOTHER, "rm-2")))
    assert error.reason == "NO_PERMANENT_RESIDENCE"


async def test_removal_day_cannot_precede_the_registration(stub: Any) -> None:
    child = (await stub.RegisterBirth(birth_request())).citizen.personal_id_number
    await stub.RegisterPermanentResidence(residence_request(child, registered_on="2025-03-01"))
    await stub.RegisterDeath(death_request(child, date_of_death="2025-03-05"))
    error = await refused(
        stub.RemovePermanentResidence(removal_request(child, removed_on="2025-02-28"))
    )
    assert error.field_violations.keys() == {"removed_on"}


@pytest.mark.parametrize(
    ("declared_on", "days", "late"),
    [("2025-02-01", 0, False), ("2025-02-16", 15, False), ("2025-02-17", 16, True)],
)
async def test_death_declared_after_15_days_is_flagged_late(
    stub: Any, declared_on: str, days: int, late: bool
) -> None:
    response = await stub.RegisterDeath(
        death_request(date_of_death="2025-02-01", declared_on=declared_on)
    )
    registration = response.registration
    assert registration.personal_id_number == MOTHER
    assert registration.date_of_death == "2025-02-01"
    assert registration.registered_on == declared_on
    assert (registration.days_after_death, registration.declared_late) == (days, late)
    assert (await citizen_of(stub, MOTHER)).date_of_death == "2025-02-01"


async def test_declaration_day_defaults_to_today(stub: Any) -> None:
    response = await stub.RegisterDeath(death_request(date_of_death="2025-03-07"))
    assert response.registration.registered_on == TODAY.isoformat()
    assert response.registration.days_after_death == 3


async def test_declaration_limit_is_configuration(start: Any) -> None:
    registry = await start(functools.partial(at_today, death_declaration_days=30))
    stub = pb_grpc.PopulationRegistryServiceStub(registry.channel)
    await seed(stub, BASE_SEED)
    response = await stub.RegisterDeath(death_request(date_of_death="2025-02-01"))
    assert response.registration.days_after_death == 37
    assert response.registration.declared_late
    response = await stub.RegisterDeath(death_request(FATHER, "d2", date_of_death="2025-02-10"))
    assert response.registration.days_after_death == 28
    assert not response.registration.declared_late


async def test_a_person_dies_once(stub: Any) -> None:
    first = await stub.RegisterDeath(death_request(date_of_death="2025-02-01"))
    assert await stub.RegisterDeath(death_request(date_of_death="2025-02-01")) == first
    error = await refused(stub.RegisterDeath(death_request(request_id="death-2")))
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "ALREADY_DEAD")
    assert error.message == "the person is already registered dead, died on 2025-02-01"
    error = await refused(stub.RegisterDeath(death_request(DECEASED, "death-3")))
    assert "died on 2020-06-01" in error.message


async def test_death_needs_a_registered_citizen_born_before_it(stub: Any) -> None:
    error = await refused(stub.RegisterDeath(death_request(STRANGER)))
    assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "CITIZEN_NOT_FOUND")
    error = await refused(stub.RegisterDeath(death_request(date_of_death="1990-04-11")))
    assert (error.code, error.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "DEATH_BEFORE_BIRTH",
    )
    assert (await citizen_of(stub, MOTHER)).date_of_death == ""


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"date_of_death": "2025-03-05", "declared_on": "2025-03-01"}, "date_of_death"),
        ({"date_of_death": "2025-03-11"}, "date_of_death"),
        ({"date_of_death": "2025-02-30"}, "date_of_death"),
        ({"declared_on": "2025-03-11"}, "declared_on"),
        ({"time_of_death": "25:00", "place_of_death": ""}, "time_of_death"),
    ],
)
async def test_malformed_death_declaration_names_the_field(
    stub: Any, fields: dict[str, str], field: str
) -> None:
    error = await refused(stub.RegisterDeath(death_request(**fields)))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert field in error.field_violations
    assert (await citizen_of(stub, MOTHER)).date_of_death == ""


# --- Lookups -----------------------------------------------------------------------


async def test_unknown_citizen_or_household_is_not_found(stub: Any) -> None:
    error = await refused(stub.GetCitizen(pb.GetCitizenRequest(personal_id_number=STRANGER)))
    assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "CITIZEN_NOT_FOUND")
    error = await refused(stub.GetHousehold(pb.GetHouseholdRequest(household_id="HK-404")))
    assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "HOUSEHOLD_NOT_FOUND")
    error = await refused(stub.GetCitizen(pb.GetCitizenRequest(personal_id_number="1")))
    assert "personal_id_number" in error.field_violations
    found = await stub.GetHousehold(pb.GetHouseholdRequest(household_id="HK-001"))
    assert found.household == HOUSEHOLD


# --- SeedPopulation ------------------------------------------------------------------


async def test_seed_counts_what_it_adds_and_a_replay_adds_nothing(stub: Any) -> None:
    replayed = await seed(stub, BASE_SEED)
    assert (replayed.households, replayed.citizens) == (0, 0)
    newcomer = citizen("004085000001", SEX_MALE, "1985-07-07", household_id="HK-003")
    added = await seed(
        stub,
        pb.SeedPopulationRequest(citizens=[newcomer]),
        pb.SeedPopulationRequest(
            households=[
                pb.Household(household_id="HK-003", address="Cao Bằng", province_code="004")
            ]
        ),
    )
    assert (added.households, added.citizens) == (1, 1)
    assert await members_of(stub, "HK-003") == ["004085000001"]
    assert await citizen_of(stub, "004085000001") == newcomer


async def test_replayed_seed_does_not_reopen_a_removed_residence(stub: Any) -> None:
    await stub.RegisterDeath(death_request(MOTHER))
    await stub.RemovePermanentResidence(removal_request(MOTHER))
    await seed(stub, BASE_SEED)
    assert (await citizen_of(stub, MOTHER)).household_id == ""
    assert await members_of(stub, "HK-001") == [FATHER]


@pytest.mark.parametrize(
    ("personal_id", "words"),
    [
        ("999090000001", "999, which is not a province code"),
        ("001190000001", "century/sex digit is 1, but a male born in 1990 has 0"),
        ("001091000001", "year digits are 91, but the date of birth is in 1990"),
    ],
)
async def test_seeded_id_numbers_must_match_province_sex_and_birth_year(
    stub: Any, personal_id: str, words: str
) -> None:
    good = citizen("002090000001", SEX_MALE, "1990-01-01")
    bad = citizen(personal_id, SEX_MALE, "1990-01-01", registration_province_code="001")
    error = await refused(
        seed(
            stub,
            pb.SeedPopulationRequest(citizens=[good]),
            pb.SeedPopulationRequest(citizens=[bad]),
        )
    )
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    violation = error.field_violations["batch[1].citizens[0].personal_id_number"]
    assert words in violation
    # All or nothing: the good record of batch 0 was not written either.
    missing = await refused(
        stub.GetCitizen(pb.GetCitizenRequest(personal_id_number=good.personal_id_number))
    )
    assert missing.reason == "CITIZEN_NOT_FOUND"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"registration_province_code": "079"}, "batch[0].citizens[1].registration_province_code"),
        ({"household_id": "HK-404"}, "batch[0].citizens[1].household_id"),
        ({"date_of_death": "1989-12-31"}, "batch[0].citizens[1].date_of_death"),
        ({"date_of_birth": "1990-02-30"}, "batch[0].citizens[1].date_of_birth"),
        ({"full_name": ""}, "batch[0].citizens[1].full_name"),
        ({"sex": 0}, "batch[0].citizens[1].sex"),
    ],
)
async def test_a_bad_seeded_citizen_is_named(stub: Any, fields: dict[str, Any], field: str) -> None:
    good = citizen("002090000001", SEX_MALE, "1990-01-01")
    bad = citizen("002090000002", SEX_MALE, "1990-01-01")
    for name, value in fields.items():
        setattr(bad, name, value)
    error = await refused(seed(stub, pb.SeedPopulationRequest(citizens=[good, bad])))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert field in error.field_violations


async def test_a_seeded_household_needs_a_province_from_the_table(stub: Any) -> None:
    household = pb.Household(household_id="HK-9", address="Nowhere", province_code="999")
    error = await refused(seed(stub, pb.SeedPopulationRequest(households=[household])))
    assert error.field_violations == {
        "batch[0].households[0].province_code": "999 is not a province code"
    }


async def test_a_birth_certificate_belongs_to_one_seeded_citizen(stub: Any) -> None:
    twins = [
        citizen(f"002324{serial:06d}", SEX_FEMALE, "2024-01-01", birth_certificate_number="GCS-7")
        for serial in (1, 2)
    ]
    error = await refused(
        seed(
            stub,
            pb.SeedPopulationRequest(citizens=[twins[0]]),
            pb.SeedPopulationRequest(citizens=[twins[1]]),
        )
    )
    assert error.field_violations == {
        "batch[1].citizens[0].birth_certificate_number": (
            "is also the birth certificate of batch[0].citizens[0]"
        )
    }
    registered = await stub.RegisterBirth(birth_request(birth_certificate_number="GCS-7"))
    error = await refused(seed(stub, pb.SeedPopulationRequest(citizens=twins[:1])))
    assert (error.code, error.reason) == (
        grpc.StatusCode.ALREADY_EXISTS,
        "BIRTH_ALREADY_REGISTERED",
    )
    assert error.message.startswith("batch[0].citizens[0].birth_certificate_number:")
    # A replay of the registered child's own record is not a conflict.
    own = citizen(
        registered.citizen.personal_id_number,
        SEX_FEMALE,
        "2024-05-01",
        birth_certificate_number="GCS-7",
    )
    assert (await seed(stub, pb.SeedPopulationRequest(citizens=[own]))).citizens == 0


# --- Persistence and the benchmark ---------------------------------------------------


async def test_acknowledged_data_survives_reopening_the_file(start: Any, tmp_path: Path) -> None:
    database = tmp_path / "population.sqlite3"
    first = await start(at_today, database=database)
    stub = pb_grpc.PopulationRegistryServiceStub(first.channel)
    await seed(stub, BASE_SEED)
    born = await stub.RegisterBirth(birth_request("birth-1"))
    child = born.citizen.personal_id_number
    await stub.RegisterPermanentResidence(residence_request(child))
    await stub.RegisterDeath(death_request(FATHER))
    await first.running.stop(None)
    first.store.close()

    second = await start(at_today, database=database)
    stub = pb_grpc.PopulationRegistryServiceStub(second.channel)
    assert (await citizen_of(stub, child)).household_id == "HK-001"
    assert await members_of(stub, "HK-001") == sorted([MOTHER, FATHER, child])
    assert (await citizen_of(stub, FATHER)).date_of_death == "2025-03-01"
    # The stored answer survived too, and so did the serial counter.
    assert await stub.RegisterBirth(birth_request("birth-1")) == born
    later = await stub.RegisterBirth(birth_request("birth-2"))
    assert later.citizen.personal_id_number == "001324000002"


async def test_seeding_benchmark_runs_at_small_scale(tmp_path: Path) -> None:
    first, replay = await measure(
        citizens=2_000, households=600, batch_size=500, database=tmp_path / "bench.sqlite3"
    )
    assert (first.records, first.added) == (2_600, 2_600)
    assert (replay.records, replay.added) == (2_600, 0)


@pytest.mark.parametrize(
    ("bad", "field", "words"),
    [
        (citizen("002299000001", SEX_MALE, "2099-01-01"), "date_of_birth", "is in the future"),
        (
            citizen("002090000002", SEX_MALE, "1990-01-01", date_of_death="2025-03-11"),
            "date_of_death",
            "2025-03-11 is in the future",
        ),
        (
            citizen("002090000002", SEX_MALE, "1990-01-01", date_of_death="2024-13-01"),
            "date_of_death",
            "not a real date",
        ),
    ],
)
async def test_a_seeded_date_in_the_future_is_refused(
    stub: Any, bad: pb.Citizen, field: str, words: str
) -> None:
    good = citizen("002090000001", SEX_MALE, "1990-01-01")
    error = await refused(seed(stub, pb.SeedPopulationRequest(citizens=[good, bad])))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert words in error.field_violations[f"batch[0].citizens[1].{field}"]
    missing = await refused(
        stub.GetCitizen(pb.GetCitizenRequest(personal_id_number="002090000001"))
    )
    assert missing.reason == "CITIZEN_NOT_FOUND"


async def test_a_personal_id_number_twice_in_one_stream_is_refused_not_dropped(stub: Any) -> None:
    first = citizen("002090000001", SEX_MALE, "1990-01-01")
    second = citizen("002090000001", SEX_MALE, "1990-06-06", full_name="Người khác")
    error = await refused(
        seed(
            stub,
            pb.SeedPopulationRequest(citizens=[first]),
            pb.SeedPopulationRequest(citizens=[second]),
        )
    )
    assert error.field_violations == {
        "batch[1].citizens[0].personal_id_number": (
            "is also the personal ID number of batch[0].citizens[0]"
        )
    }


async def test_a_household_id_twice_in_one_stream_is_refused_not_dropped(stub: Any) -> None:
    households = [
        pb.Household(household_id="HK-9", address=address, province_code="001")
        for address in ("1 Hàng Bạc", "2 Hàng Đào")
    ]
    error = await refused(seed(stub, pb.SeedPopulationRequest(households=households)))
    assert error.field_violations == {
        "batch[0].households[1].household_id": "is also the household id of batch[0].households[0]"
    }


async def test_a_stored_number_is_a_replay_only_for_the_same_person(stub: Any) -> None:
    newcomer = citizen("004085000001", SEX_MALE, "1985-07-07")
    impostor = citizen(MOTHER, SEX_FEMALE, "1990-04-13", full_name="Nguyễn Thị Lan")
    error = await refused(
        seed(
            stub,
            pb.SeedPopulationRequest(citizens=[newcomer]),
            pb.SeedPopulationRequest(citizens=[impostor]),
        )
    )
    assert (error.code, error.reason) == (grpc.StatusCode.ALREADY_EXISTS, "PERSONAL_ID_TAKEN")
    assert error.message.startswith("batch[1].citizens[0].personal_id_number:")
    # All or nothing: the newcomer was not kept, and the mother is as she was.
    missing = await refused(
        stub.GetCitizen(pb.GetCitizenRequest(personal_id_number="004085000001"))
    )
    assert missing.reason == "CITIZEN_NOT_FOUND"
    assert (await citizen_of(stub, MOTHER)).date_of_birth == "1990-04-12"
    moved = pb.Household(household_id="HK-001", address="Somewhere else", province_code="079")
    error = await refused(seed(stub, pb.SeedPopulationRequest(households=[moved])))
    assert (error.code, error.reason) == (grpc.StatusCode.ALREADY_EXISTS, "HOUSEHOLD_ID_TAKEN")
