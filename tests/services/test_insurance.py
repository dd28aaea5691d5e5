"""The social security registry over real gRPC on loopback, with a real SQLite
file or a real PostgreSQL database (every test using the `stub` fixture, and
the reopening test, runs on both)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from lienthong.common.v1.common_pb2 import (
    PAYMENT_METHOD_BANK_TRANSFER,
    PAYMENT_METHOD_CASH,
    SEX_FEMALE,
    SEX_MALE,
)
from lienthong.insurance.v1 import insurance_pb2 as pb
from lienthong.insurance.v1 import insurance_pb2_grpc as pb_grpc
from services.insurance.app import build
from services.insurance.base_salary import BaseSalaryTable
from tests.grpc_errors import CallError, call_error

TODAY = dt.date(2025, 9, 15)
CHILD = "001324000001"  # a girl born in 2024, registered in Hà Nội
OTHER_CHILD = "001324000002"
DECEASED = "001150000123"  # a man born in 1950
PAYEE = "001185004321"


def build_on_today(database: Path) -> Any:
    return build(database, today=lambda: TODAY)


async def seed(stub: Any, *batches: pb.SeedParticipantsRequest) -> pb.SeedParticipantsResponse:
    async def stream() -> AsyncIterator[pb.SeedParticipantsRequest]:
        for batch in batches:
            yield batch

    response: pb.SeedParticipantsResponse = await stub.SeedParticipants(stream())
    return response


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where the registry keeps its records, on each engine: its rules must
    not depend on which."""
    if request.param == "postgres":
        url: str = request.getfixturevalue("postgres_url")
        return url
    return str(tmp_path / "insurance.sqlite3")


@pytest.fixture
async def stub(start: Any, database: str) -> pb_grpc.InsuranceRegistryServiceStub:
    registry = await start(build_on_today, database=database)
    stub: pb_grpc.InsuranceRegistryServiceStub = pb_grpc.InsuranceRegistryServiceStub(
        registry.channel
    )
    return stub


def participant(**overrides: Any) -> pb.Participant:
    fields: dict[str, Any] = {
        "social_insurance_number": "0199000001",
        "personal_id_number": DECEASED,
        "full_name": "Trần Văn Bình",
        "date_of_birth": "1950-04-02",
    }
    fields.update(overrides)
    return pb.Participant(**fields)


def card_request(
    request_id: str = "card-1", **overrides: Any
) -> pb.IssueChildHealthInsuranceCardRequest:
    fields: dict[str, Any] = {
        "request_id": request_id,
        "personal_id_number": CHILD,
        "full_name": "Nguyễn Thị Mai",
        "date_of_birth": "2024-03-10",
        "sex": SEX_FEMALE,
        "province_code": "001",
        "initial_facility_code": "01001",
        "requested_on": "2024-04-01",
    }
    fields.update(overrides)
    return pb.IssueChildHealthInsuranceCardRequest(**fields)


def settle_request(
    request_id: str = "settle-1", **overrides: Any
) -> pb.SettleFuneralAllowanceRequest:
    fields: dict[str, Any] = {
        "request_id": request_id,
        "personal_id_number": DECEASED,
        "date_of_death": "2024-07-01",
        "payee": pb.Payee(
            full_name="Trần Thị Hoa",
            personal_id_number=PAYEE,
            payment_method=PAYMENT_METHOD_BANK_TRANSFER,
            bank_account="0123456789",
            bank_name="Vietcombank",
        ),
        "requested_on": "2024-07-20",
    }
    fields.update(overrides)
    return pb.SettleFuneralAllowanceRequest(**fields)


async def issue_card(stub: Any, request: pb.IssueChildHealthInsuranceCardRequest) -> Any:
    return (await stub.IssueChildHealthInsuranceCard(request)).card


async def settle(stub: Any, request: pb.SettleFuneralAllowanceRequest) -> Any:
    return (await stub.SettleFuneralAllowance(request)).allowance


async def refused(call: Any) -> CallError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return call_error(raised.value)


# --- Child health insurance card ---------------------------------------------


async def test_child_card_is_free_te_level_1_from_birth(stub: Any) -> None:
    card = await issue_card(stub, card_request())
    assert card.beneficiary_group == "TE"
    assert card.benefit_level == 1
    assert len(card.social_insurance_number) == 10
    assert card.social_insurance_number.startswith("01")  # Hà Nội, province 001
    assert card.card_code == "TE101" + card.social_insurance_number
    assert len(card.card_code) == 15
    assert card.valid_from == "2024-03-10"
    assert card.initial_facility_code == "01001"
    assert card.status == pb.CARD_STATUS_ACTIVE
    got = (
        await stub.GetParticipant(pb.GetParticipantRequest(personal_id_number=CHILD))
    ).participant
    assert got.card == card
    assert got.full_name == "Nguyễn Thị Mai"
    assert got.date_of_birth == "2024-03-10"


async def test_card_code_carries_the_province_of_residence(stub: Any) -> None:
    card = await issue_card(
        stub, card_request(personal_id_number="079224000001", sex=SEX_MALE, province_code="079")
    )
    assert card.card_code == "TE179" + card.social_insurance_number
    assert card.social_insurance_number.startswith("79")


@pytest.mark.parametrize(
    ("born", "valid_to"),
    [
        ("2024-03-10", "2030-09-30"),  # turns 6 in March: covered until school starts
        ("2024-09-30", "2030-09-30"),  # turns 6 on the last day before school
        ("2024-11-20", "2030-11-19"),  # turns 6 in November: the day before the birthday
        ("2024-02-29", "2030-09-30"),  # 6th birthday 1 March 2030, before school
    ],
)
async def test_card_valid_to_72_months_or_30_september(stub: Any, born: str, valid_to: str) -> None:
    card = await issue_card(stub, card_request(date_of_birth=born, requested_on="2025-01-01"))
    assert card.valid_to == valid_to


async def registry_on(start: Any, day: str) -> Any:
    """A registry whose today is `day`: a request may not be dated after it."""
    registry = await start(lambda db: build(db, today=lambda: dt.date.fromisoformat(day)))
    return pb_grpc.InsuranceRegistryServiceStub(registry.channel)


async def test_child_born_on_29_february_is_entitled_until_30_september(start: Any) -> None:
    # The 6th birthday is 1 March 2030, before the school year: covered to 30 September.
    stub = await registry_on(start, "2030-10-01")
    born = {"date_of_birth": "2024-02-29"}
    card = await issue_card(stub, card_request("in-time", requested_on="2030-03-01", **born))
    assert card.valid_to == "2030-09-30"
    error = await refused(
        stub.IssueChildHealthInsuranceCard(
            card_request("late", personal_id_number=OTHER_CHILD, requested_on="2030-10-01", **born)
        )
    )
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CHILD_TOO_OLD")


async def test_child_who_turned_6_before_30_september_still_gets_a_card(start: Any) -> None:
    # ../shared/domain.md: a child who turns 6 on or before 30 September is still
    # entitled to a card, valid to that day, between the birthday and then.
    stub = await registry_on(start, "2025-10-01")
    card = await issue_card(
        stub, card_request("turned-six", date_of_birth="2019-01-01", requested_on="2025-09-30")
    )
    assert (card.valid_from, card.valid_to) == ("2019-01-01", "2025-09-30")
    error = await refused(
        stub.IssueChildHealthInsuranceCard(
            card_request(
                "after-school-start",
                personal_id_number=OTHER_CHILD,
                date_of_birth="2019-01-02",
                requested_on="2025-10-01",
            )
        )
    )
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "CHILD_TOO_OLD")
    assert "2025-09-30" in error.message


async def test_child_who_turns_6_after_30_september_is_covered_to_the_day_before(
    stub: Any,
) -> None:
    born = {"date_of_birth": "2018-11-20"}
    card = await issue_card(stub, card_request("day-before", requested_on="2024-11-19", **born))
    assert card.valid_to == "2024-11-19"
    error = await refused(
        stub.IssueChildHealthInsuranceCard(
            card_request(
                "birthday",
                personal_id_number=OTHER_CHILD,
                date_of_birth="2018-11-21",
                requested_on="2024-11-21",
            )
        )
    )
    assert error.reason == "CHILD_TOO_OLD"


async def test_requested_on_defaults_to_today(stub: Any) -> None:
    # TODAY is 2025-09-15: a child born on 2019-09-15 turns 6 today, before the
    # school year, so is covered to 30 September; one who turned 6 in November
    # 2024 is not.
    error = await refused(
        stub.IssueChildHealthInsuranceCard(
            card_request("seven", date_of_birth="2018-11-19", requested_on="")
        )
    )
    assert error.reason == "CHILD_TOO_OLD"
    card = await issue_card(
        stub,
        card_request(
            "six", personal_id_number=OTHER_CHILD, date_of_birth="2019-09-15", requested_on=""
        ),
    )
    assert card.valid_to == "2025-09-30"


@pytest.mark.parametrize("born", ["2024-02-30", "2024-04-02"])
async def test_impossible_or_later_date_of_birth_is_invalid(stub: Any, born: str) -> None:
    error = await refused(stub.IssueChildHealthInsuranceCard(card_request(date_of_birth=born)))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.field_violations.keys() == {"date_of_birth"}


async def test_card_request_with_unknown_province_names_the_field(stub: Any) -> None:
    error = await refused(stub.IssueChildHealthInsuranceCard(card_request(province_code="000")))
    assert error.field_violations.keys() == {"province_code"}
    error = await refused(
        stub.IssueChildHealthInsuranceCard(card_request(personal_id_number="000324000001"))
    )
    assert error.field_violations.keys() == {"personal_id_number"}


async def test_malformed_card_request_names_each_bad_field(stub: Any) -> None:
    error = await refused(
        stub.IssueChildHealthInsuranceCard(
            card_request(sex=0, initial_facility_code="1", date_of_birth="10/03/2024")
        )
    )
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.field_violations.keys() == {"sex", "initial_facility_code", "date_of_birth"}


async def test_card_is_issued_once_per_child(stub: Any) -> None:
    first = await issue_card(stub, card_request("first"))
    again = await issue_card(
        stub, card_request("second", initial_facility_code="79001", requested_on="2024-05-01")
    )
    assert again == first


async def test_seeded_participant_keeps_their_social_insurance_number(stub: Any) -> None:
    await seed(
        stub,
        pb.SeedParticipantsRequest(
            participants=[
                participant(
                    social_insurance_number="7912345678",
                    personal_id_number=CHILD,
                    date_of_birth="2024-03-10",
                )
            ]
        ),
    )
    card = await issue_card(stub, card_request())
    assert card.social_insurance_number == "7912345678"
    assert card.card_code == "TE1017912345678"


async def test_new_numbers_skip_those_seeded_participants_hold(stub: Any) -> None:
    taken = [
        participant(social_insurance_number=f"01{n:08d}", personal_id_number=f"001190{n:06d}")
        for n in (1, 2, 3, 5)
    ]
    await seed(stub, pb.SeedParticipantsRequest(participants=taken))
    first = await issue_card(stub, card_request("a"))
    second = await issue_card(stub, card_request("b", personal_id_number=OTHER_CHILD))
    third = await issue_card(stub, card_request("c", personal_id_number="001324000003"))
    assert [c.social_insurance_number for c in (first, second, third)] == [
        "0100000004",
        "0100000006",
        "0100000007",
    ]


async def test_seeded_child_with_another_date_of_birth_is_refused(stub: Any) -> None:
    await seed(
        stub,
        pb.SeedParticipantsRequest(
            participants=[participant(personal_id_number=CHILD, date_of_birth="2024-03-11")]
        ),
    )
    error = await refused(stub.IssueChildHealthInsuranceCard(card_request()))
    assert (error.code, error.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "DATE_OF_BIRTH_MISMATCH",
    )


async def test_deceased_child_without_card_gets_none(stub: Any) -> None:
    await seed(
        stub,
        pb.SeedParticipantsRequest(
            participants=[participant(personal_id_number=CHILD, date_of_birth="2024-03-10")]
        ),
    )
    await stub.EndCoverage(
        pb.EndCoverageRequest(
            request_id="end", personal_id_number=CHILD, date_of_death="2024-03-20"
        )
    )
    error = await refused(stub.IssueChildHealthInsuranceCard(card_request()))
    assert error.reason == "PARTICIPANT_DECEASED"


async def test_repeated_card_request_id_answers_the_same_and_changes_nothing(stub: Any) -> None:
    first = await stub.IssueChildHealthInsuranceCard(card_request("same"))
    again = await stub.IssueChildHealthInsuranceCard(card_request("same"))
    assert again == first
    # Had the repeat issued a number, the next child would not get the next one.
    other = await issue_card(stub, card_request("other", personal_id_number=OTHER_CHILD))
    assert int(other.social_insurance_number) == int(first.card.social_insurance_number) + 1


async def test_request_id_reused_for_a_different_request_is_refused(stub: Any) -> None:
    await stub.IssueChildHealthInsuranceCard(card_request("reused"))
    error = await refused(
        stub.IssueChildHealthInsuranceCard(card_request("reused", personal_id_number=OTHER_CHILD))
    )
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "request_id" in error.field_violations
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.GetParticipant(pb.GetParticipantRequest(personal_id_number=OTHER_CHILD))


# --- Funeral allowance --------------------------------------------------------


async def seed_deceased(stub: Any, **overrides: Any) -> None:
    await seed(stub, pb.SeedParticipantsRequest(participants=[participant(**overrides)]))


@pytest.mark.parametrize(
    ("died", "base_salary", "amount"),
    [("2024-06-30", 1_800_000, 18_000_000), ("2024-07-01", 2_340_000, 23_400_000)],
)
async def test_allowance_is_10_base_salaries_in_force_on_the_death(
    stub: Any, died: str, base_salary: int, amount: int
) -> None:
    await seed_deceased(stub, compulsory_contribution_months=140)
    allowance = await settle(stub, settle_request(date_of_death=died))
    assert allowance.eligible
    assert allowance.base_salary_vnd == base_salary
    assert allowance.amount_vnd == amount
    assert allowance.reason == "compulsory contributions: 140 months"
    assert allowance.personal_id_number == DECEASED
    assert allowance.payment_reference
    assert allowance.settled_on == "2024-07-20"
    assert allowance.payee == settle_request().payee


@pytest.mark.parametrize(
    ("record", "work_accident", "died", "reason"),
    [
        ({"pensioner": True}, False, "2024-07-01", "pensioner"),
        (
            {"receives_monthly_occupational_allowance": True},
            False,
            "2024-07-01",
            "receives a monthly work-accident or occupational-disease allowance",
        ),
        ({}, True, "2024-07-01", "died of a work accident or occupational disease"),
        (
            {"compulsory_contribution_months": 12},
            False,
            "2024-07-01",
            "compulsory contributions: 12 months",
        ),
        (
            {"voluntary_contribution_months": 60},
            False,
            "2024-07-01",
            "voluntary contributions: 60 months",
        ),
        (
            {"receives_monthly_social_allowance": True, "voluntary_contribution_months": 60},
            False,
            "2025-07-01",
            "receives the monthly social allowance, with compulsory contributions 0 months "
            "and voluntary 60 months",
        ),
        (  # before the 2024 Law the same person qualifies on contributions alone
            {"receives_monthly_social_allowance": True, "voluntary_contribution_months": 60},
            False,
            "2025-06-30",
            "voluntary contributions: 60 months",
        ),
    ],
)
async def test_each_eligibility_basis_is_paid_and_named(
    stub: Any, record: dict[str, Any], work_accident: bool, died: str, reason: str
) -> None:
    await seed_deceased(stub, **record)
    allowance = await settle(
        stub,
        settle_request(
            date_of_death=died,
            work_accident_or_occupational_disease=work_accident,
            requested_on="2025-08-01",
        ),
    )
    assert (allowance.eligible, allowance.reason) == (True, reason)
    assert allowance.amount_vnd == 23_400_000


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (
            {"compulsory_contribution_months": 8, "voluntary_contribution_months": 20},
            "compulsory contributions 8 months (needs 12) and voluntary 20 months (needs 60)",
        ),
        (
            {"compulsory_contribution_months": 11, "voluntary_contribution_months": 59},
            "compulsory contributions 11 months (needs 12) and voluntary 59 months (needs 60)",
        ),
        (
            {"receives_monthly_social_allowance": True, "compulsory_contribution_months": 3},
            "compulsory contributions 3 months (needs 12) and voluntary 0 months (needs 60)",
        ),
    ],
)
async def test_not_eligible_is_an_answer_with_the_reason(
    stub: Any, record: dict[str, Any], reason: str
) -> None:
    await seed_deceased(stub, **record)
    allowance = await settle(stub, settle_request(date_of_death="2025-07-10", requested_on=""))
    assert not allowance.eligible
    assert allowance.amount_vnd == 0
    assert allowance.reason == reason
    assert allowance.payment_reference == ""


async def test_no_insurance_record_is_not_eligible_even_after_a_work_accident(stub: Any) -> None:
    allowance = await settle(stub, settle_request(work_accident_or_occupational_disease=True))
    assert (allowance.eligible, allowance.amount_vnd) == (False, 0)
    assert allowance.reason == "no social insurance record"


async def test_funeral_allowance_is_paid_once(stub: Any) -> None:
    await seed_deceased(stub, pensioner=True)
    first = await stub.SettleFuneralAllowance(settle_request("once"))
    assert await stub.SettleFuneralAllowance(settle_request("once")) == first
    error = await refused(stub.SettleFuneralAllowance(settle_request("twice")))
    assert error.code == grpc.StatusCode.ALREADY_EXISTS
    assert error.reason == "ALLOWANCE_ALREADY_SETTLED"
    assert first.allowance.payment_reference in error.message


async def test_death_before_the_base_salary_table_has_no_amount(stub: Any) -> None:
    await seed_deceased(stub, pensioner=True)
    error = await refused(stub.SettleFuneralAllowance(settle_request(date_of_death="2013-06-30")))
    assert (error.code, error.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "NO_BASE_SALARY")


@pytest.mark.parametrize(
    ("died", "base_salary"),
    [
        ("2013-07-01", 1_150_000),  # Decree 66/2013/ND-CP
        ("2016-04-30", 1_150_000),
        ("2016-05-01", 1_210_000),  # Decree 47/2016/ND-CP
        ("2017-07-15", 1_300_000),  # Decree 47/2017/ND-CP
        ("2019-06-30", 1_390_000),  # Decree 72/2018/ND-CP
        ("2019-07-01", 1_490_000),  # Decree 38/2019/ND-CP
    ],
)
async def test_a_death_declared_years_late_is_settled_at_the_salary_of_its_month(
    stub: Any, died: str, base_salary: int
) -> None:
    await seed_deceased(stub, pensioner=True)
    allowance = await settle(stub, settle_request(date_of_death=died))
    assert (allowance.base_salary_vnd, allowance.amount_vnd) == (base_salary, 10 * base_salary)


async def test_a_later_base_salary_comes_from_the_table(start: Any) -> None:
    table = BaseSalaryTable((dt.date(2024, 7, 1), dt.date(2026, 7, 1)), (2_340_000, 2_530_000))
    registry = await start(
        lambda db: build(db, today=lambda: dt.date(2026, 7, 2), base_salaries=table)
    )
    stub = pb_grpc.InsuranceRegistryServiceStub(registry.channel)
    await seed_deceased(stub, pensioner=True)
    allowance = await settle(
        stub, settle_request(date_of_death="2026-07-01", requested_on="2026-07-02")
    )
    assert allowance.amount_vnd == 25_300_000


@pytest.mark.parametrize("died", ["2024-07-21", "2024-02-30"])
async def test_impossible_or_later_date_of_death_is_invalid(stub: Any, died: str) -> None:
    error = await refused(stub.SettleFuneralAllowance(settle_request(date_of_death=died)))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.field_violations.keys() == {"date_of_death"}


async def test_bank_transfer_without_account_is_invalid(stub: Any) -> None:
    payee = pb.Payee(
        full_name="Trần Thị Hoa",
        personal_id_number=PAYEE,
        payment_method=PAYMENT_METHOD_BANK_TRANSFER,
    )
    error = await refused(stub.SettleFuneralAllowance(settle_request(payee=payee)))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.field_violations == {"payee": "a bank transfer needs the payee's bank account"}
    payee.payment_method = PAYMENT_METHOD_CASH
    await seed_deceased(stub, pensioner=True)
    assert (await settle(stub, settle_request(payee=payee))).eligible


async def test_settlement_names_a_malformed_payee_id(stub: Any) -> None:
    payee = settle_request().payee
    payee.personal_id_number = "000185004321"
    error = await refused(stub.SettleFuneralAllowance(settle_request(payee=payee)))
    assert error.field_violations.keys() == {"payee.personal_id_number"}


async def test_settlement_with_another_date_of_death_conflicts(stub: Any) -> None:
    await seed_deceased(stub, pensioner=True)
    await stub.EndCoverage(
        pb.EndCoverageRequest(
            request_id="e", personal_id_number=DECEASED, date_of_death="2024-07-01"
        )
    )
    error = await refused(stub.SettleFuneralAllowance(settle_request(date_of_death="2024-07-02")))
    assert error.reason == "DEATH_DATE_CONFLICT"


# --- End of coverage ----------------------------------------------------------


def end_request(request_id: str = "end-1", **overrides: Any) -> pb.EndCoverageRequest:
    fields: dict[str, Any] = {
        "request_id": request_id,
        "personal_id_number": DECEASED,
        "date_of_death": "2025-01-31",
    }
    fields.update(overrides)
    return pb.EndCoverageRequest(**fields)


async def test_no_participant_means_nothing_to_end(stub: Any) -> None:
    response = await stub.EndCoverage(end_request())
    assert response == pb.EndCoverageResponse(participant_found=False)


@pytest.mark.parametrize(
    ("died", "stopped_from"), [("2025-01-31", "2025-02-01"), ("2024-12-15", "2025-01-01")]
)
async def test_pension_stops_from_the_month_after_the_death(
    stub: Any, died: str, stopped_from: str
) -> None:
    await seed_deceased(stub, pensioner=True)
    response = await stub.EndCoverage(end_request(date_of_death=died))
    assert response == pb.EndCoverageResponse(
        participant_found=True, card_ended_on="", pension_stopped_from=stopped_from
    )
    got = (
        await stub.GetParticipant(pb.GetParticipantRequest(personal_id_number=DECEASED))
    ).participant
    assert (got.date_of_death, got.pension_stopped_from) == (died, stopped_from)


async def test_end_of_coverage_ends_the_card_and_not_a_pension_never_paid(stub: Any) -> None:
    card = await issue_card(stub, card_request())
    response = await stub.EndCoverage(
        end_request(personal_id_number=CHILD, date_of_death="2024-05-02")
    )
    assert response == pb.EndCoverageResponse(participant_found=True, card_ended_on="2024-05-02")
    got = (
        await stub.GetParticipant(pb.GetParticipantRequest(personal_id_number=CHILD))
    ).participant
    assert got.card.status == pb.CARD_STATUS_ENDED
    assert got.card.ended_on == "2024-05-02"
    assert got.card.valid_to == card.valid_to
    assert got.pension_stopped_from == ""
    # One card per child, even an ended one: a late declaration gets it back as it is.
    again = await issue_card(stub, card_request("late"))
    assert again == got.card


async def test_end_coverage_again_answers_the_same_unless_the_date_differs(stub: Any) -> None:
    await seed_deceased(stub, pensioner=True)
    first = await stub.EndCoverage(end_request("first"))
    assert await stub.EndCoverage(end_request("second")) == first
    error = await refused(stub.EndCoverage(end_request("third", date_of_death="2025-01-30")))
    assert (error.code, error.reason) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "DEATH_DATE_CONFLICT",
    )
    assert "2025-01-31" in error.message


async def test_end_coverage_runs_once_per_request_id(stub: Any) -> None:
    await seed_deceased(stub, pensioner=True)
    first = await stub.EndCoverage(end_request("once"))
    assert await stub.EndCoverage(end_request("once")) == first
    error = await refused(stub.EndCoverage(end_request("once", personal_id_number=CHILD)))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "request_id" in error.field_violations


async def test_death_after_today_is_invalid(stub: Any) -> None:
    error = await refused(stub.EndCoverage(end_request(date_of_death="2025-09-16")))
    assert error.field_violations.keys() == {"date_of_death"}


async def test_unknown_participant_is_not_found(stub: Any) -> None:
    error = await refused(
        stub.GetParticipant(pb.GetParticipantRequest(personal_id_number=DECEASED))
    )
    assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "PARTICIPANT_NOT_FOUND")


# --- Seeding and persistence --------------------------------------------------


async def test_seed_is_all_or_nothing_and_replayable(stub: Any) -> None:
    good = participant(pensioner=True, compulsory_contribution_months=300)
    bad = participant(social_insurance_number="0199000002", personal_id_number="000150000124")
    error = await refused(
        seed(
            stub,
            pb.SeedParticipantsRequest(participants=[good]),
            pb.SeedParticipantsRequest(participants=[bad]),
        )
    )
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.field_violations.keys() == {"batch[1].participants[0].personal_id_number"}
    await refused(stub.GetParticipant(pb.GetParticipantRequest(personal_id_number=DECEASED)))

    added = await seed(stub, pb.SeedParticipantsRequest(participants=[good]))
    assert added.participants == 1
    replayed = await seed(stub, pb.SeedParticipantsRequest(participants=[good]))
    assert replayed.participants == 0
    got = (
        await stub.GetParticipant(pb.GetParticipantRequest(personal_id_number=DECEASED))
    ).participant
    assert got == good


async def test_seed_names_a_bad_field_by_batch_and_position(stub: Any) -> None:
    # The contract (protovalidate) speaks first, then the registry's own checks.
    for bad, field in (
        (participant(full_name=""), "full_name"),
        (participant(date_of_birth="1950-02-30"), "date_of_birth"),
        (participant(date_of_death="2025-13-01"), "date_of_death"),
    ):
        batch = pb.SeedParticipantsRequest(participants=[participant(), bad])
        error = await refused(seed(stub, batch))
        assert error.field_violations.keys() == {f"batch[0].participants[1].{field}"}


async def test_acknowledged_data_survives_reopening(start: Any, database: str) -> None:
    first = await start(build_on_today, database=database)
    stub = pb_grpc.InsuranceRegistryServiceStub(first.channel)
    await seed_deceased(stub, pensioner=True)
    card = await issue_card(stub, card_request())
    settled = await stub.SettleFuneralAllowance(settle_request("paid"))
    await first.channel.close()
    await first.running.stop(None)
    first.store.close()

    second = await start(build_on_today, database=database)
    stub = pb_grpc.InsuranceRegistryServiceStub(second.channel)
    got = (
        await stub.GetParticipant(pb.GetParticipantRequest(personal_id_number=CHILD))
    ).participant
    assert got.card == card
    assert await stub.SettleFuneralAllowance(settle_request("paid")) == settled
    error = await refused(stub.SettleFuneralAllowance(settle_request("again")))
    assert error.reason == "ALLOWANCE_ALREADY_SETTLED"
    assert (await issue_card(stub, card_request("again"))) == card


# --- Days that have not come yet ---------------------------------------------------

WEEKS_AHEAD = (TODAY + dt.timedelta(weeks=3)).isoformat()


async def test_no_card_is_issued_for_a_request_dated_in_the_future(stub: Any) -> None:
    error = await refused(
        stub.IssueChildHealthInsuranceCard(card_request(requested_on=WEEKS_AHEAD))
    )
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.field_violations == {"requested_on": f"{WEEKS_AHEAD} is in the future"}
    missing = await refused(stub.GetParticipant(pb.GetParticipantRequest(personal_id_number=CHILD)))
    assert missing.reason == "PARTICIPANT_NOT_FOUND"


async def test_no_allowance_is_paid_for_a_request_dated_in_the_future(stub: Any) -> None:
    await seed_deceased(stub, pensioner=True)
    error = await refused(stub.SettleFuneralAllowance(settle_request(requested_on=WEEKS_AHEAD)))
    assert error.field_violations == {"requested_on": f"{WEEKS_AHEAD} is in the future"}
    # Nothing was paid: a request dated today settles it once.
    assert (await settle(stub, settle_request("today"))).eligible


async def test_coverage_is_not_ended_for_a_death_in_the_future(stub: Any) -> None:
    await seed_deceased(stub, pensioner=True)
    error = await refused(
        stub.EndCoverage(
            pb.EndCoverageRequest(
                request_id="end", personal_id_number=DECEASED, date_of_death=WEEKS_AHEAD
            )
        )
    )
    assert error.field_violations == {"date_of_death": f"{WEEKS_AHEAD} is in the future"}


# --- Seeding: one participant per number -------------------------------------------


@pytest.mark.parametrize(
    ("bad", "field", "words"),
    [
        (participant(date_of_birth="2099-01-01"), "date_of_birth", "2099-01-01 is in the future"),
        (participant(date_of_death=WEEKS_AHEAD), "date_of_death", "is in the future"),
        (participant(date_of_death="1950-04-01"), "date_of_death", "before the date of birth"),
        (participant(date_of_birth="19500402"), "date_of_birth", "must be a date"),
        # No contract pattern here: the registry insists on YYYY-MM-DD itself.
        (participant(pension_stopped_from="20250101"), "pension_stopped_from", "not a real date"),
    ],
)
async def test_a_seeded_participant_with_an_impossible_date_is_named(
    stub: Any, bad: pb.Participant, field: str, words: str
) -> None:
    other = participant(social_insurance_number="0199000009", personal_id_number=PAYEE)
    error = await refused(seed(stub, pb.SeedParticipantsRequest(participants=[other, bad])))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert words in error.field_violations[f"batch[0].participants[1].{field}"]


@pytest.mark.parametrize(
    ("second", "field", "words"),
    [
        (
            participant(personal_id_number=PAYEE),
            "social_insurance_number",
            "is also the social insurance number of batch[0].participants[0]",
        ),
        (
            participant(social_insurance_number="0199000009"),
            "personal_id_number",
            "is also the personal ID number of batch[0].participants[0]",
        ),
    ],
)
async def test_a_number_twice_in_one_stream_is_refused_not_dropped(
    stub: Any, second: pb.Participant, field: str, words: str
) -> None:
    error = await refused(
        seed(
            stub,
            pb.SeedParticipantsRequest(participants=[participant()]),
            pb.SeedParticipantsRequest(participants=[second]),
        )
    )
    assert error.field_violations == {f"batch[1].participants[0].{field}": words}
    await refused(stub.GetParticipant(pb.GetParticipantRequest(personal_id_number=DECEASED)))


@pytest.mark.parametrize(
    ("later", "reason"),
    [
        (participant(personal_id_number=PAYEE), "SOCIAL_INSURANCE_NUMBER_TAKEN"),
        (participant(social_insurance_number="0199000009"), "PARTICIPANT_HAS_ANOTHER_NUMBER"),
    ],
)
async def test_a_stored_number_is_a_replay_only_for_the_same_person(
    stub: Any, later: pb.Participant, reason: str
) -> None:
    await seed(stub, pb.SeedParticipantsRequest(participants=[participant()]))
    newcomer = participant(social_insurance_number="0199000077", personal_id_number=OTHER_CHILD)
    error = await refused(
        seed(
            stub,
            pb.SeedParticipantsRequest(participants=[newcomer]),
            pb.SeedParticipantsRequest(participants=[later]),
        )
    )
    assert (error.code, error.reason) == (grpc.StatusCode.ALREADY_EXISTS, reason)
    assert error.message.startswith("batch[1].participants[0].")
    await refused(stub.GetParticipant(pb.GetParticipantRequest(personal_id_number=OTHER_CHILD)))
