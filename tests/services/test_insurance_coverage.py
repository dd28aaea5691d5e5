"""The hospital's coverage lookup (CheckCoverage) over real gRPC on loopback,
with a real SQLite file: covered or why not, on each side of every boundary.

Expected days are written by hand from shared/domain.md (a child's card runs
from birth to 30 September of the year it turns 6, or to the day before the
6th birthday; EndCoverage ends it on the date of death), never computed by
the registry's own rules.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import grpc
import pytest

from lienthong.common.v1.common_pb2 import SEX_FEMALE, SEX_MALE
from lienthong.insurance.v1 import insurance_pb2 as pb
from lienthong.insurance.v1 import insurance_pb2_grpc as pb_grpc
from services.insurance.app import build
from tests.grpc_errors import CallError, call_error

TODAY = dt.date(2025, 9, 15)
CHILD = "001324000001"  # a girl born on 2024-03-10: valid to 2030-09-30
OLDER_CHILD = "001218000007"  # a boy born on 2018-11-20: valid to 2024-11-19
ADULT = "001150000123"  # a man born in 1950, insured, without a card here
STRANGER = "001185004321"  # no insurance record


@pytest.fixture
async def stub(start: Any) -> Any:
    registry = await start(lambda database: build(database, today=lambda: TODAY))
    return pb_grpc.InsuranceRegistryServiceStub(registry.channel)


async def issue(stub: Any, request_id: str, **fields: Any) -> pb.HealthInsuranceCard:
    values: dict[str, Any] = {
        "request_id": request_id,
        "personal_id_number": CHILD,
        "full_name": "Nguyễn Thị Mai",
        "date_of_birth": "2024-03-10",
        "sex": SEX_FEMALE,
        "province_code": "001",
        "initial_facility_code": "01003",
        "requested_on": "2024-04-01",
    }
    values.update(fields)
    response = await stub.IssueChildHealthInsuranceCard(
        pb.IssueChildHealthInsuranceCardRequest(**values)
    )
    return response.card  # type: ignore[no-any-return]


async def check(stub: Any, personal_id: str, on: str = "") -> pb.CheckCoverageResponse:
    response: pb.CheckCoverageResponse = await stub.CheckCoverage(
        pb.CheckCoverageRequest(personal_id_number=personal_id, on_date=on)
    )
    return response


async def refused(call: Any) -> CallError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return call_error(raised.value)


async def test_a_valid_card_covers_today_with_its_group_and_initial_facility(stub: Any) -> None:
    card = await issue(stub, "card")
    answer = await check(stub, CHILD)
    assert answer.covered
    assert answer.not_covered_reason == pb.NOT_COVERED_REASON_UNSPECIFIED
    assert answer.on_date == "2025-09-15"  # empty: the registry's today
    assert answer.card == card
    assert (answer.card.beneficiary_group, answer.card.benefit_level) == ("TE", 1)
    assert answer.card.initial_facility_code == "01003"
    assert answer.card.card_code == f"TE101{card.social_insurance_number}"
    assert (answer.card.valid_from, answer.card.valid_to) == ("2024-03-10", "2030-09-30")


async def test_not_covered_before_the_card_is_valid(stub: Any) -> None:
    await issue(stub, "card")
    assert (await check(stub, CHILD, "2024-03-10")).covered  # the day of birth
    before = await check(stub, CHILD, "2024-03-09")
    assert not before.covered
    assert before.not_covered_reason == pb.NOT_COVERED_REASON_CARD_NOT_YET_VALID
    assert before.on_date == "2024-03-09"
    assert before.card.valid_from == "2024-03-10"  # the answer says from when


async def test_not_covered_after_the_card_expired(stub: Any) -> None:
    # Turned 6 on 2024-11-20, after 30 September: covered to the day before.
    await issue(
        stub,
        "older",
        personal_id_number=OLDER_CHILD,
        date_of_birth="2018-11-20",
        sex=SEX_MALE,
        requested_on="2024-11-19",
    )
    last_day = await check(stub, OLDER_CHILD, "2024-11-19")
    assert last_day.covered
    after = await check(stub, OLDER_CHILD, "2024-11-20")
    assert not after.covered
    assert after.not_covered_reason == pb.NOT_COVERED_REASON_CARD_EXPIRED
    assert after.card.valid_to == "2024-11-19"
    assert (await check(stub, OLDER_CHILD)).not_covered_reason == (
        pb.NOT_COVERED_REASON_CARD_EXPIRED
    )


async def test_a_card_ended_by_death_covers_the_day_of_death_and_nothing_after(
    stub: Any,
) -> None:
    await issue(stub, "card")
    await stub.EndCoverage(
        pb.EndCoverageRequest(
            request_id="end", personal_id_number=CHILD, date_of_death="2024-05-02"
        )
    )
    that_day = await check(stub, CHILD, "2024-05-02")
    assert that_day.covered
    after = await check(stub, CHILD, "2024-05-03")
    assert not after.covered
    assert after.not_covered_reason == pb.NOT_COVERED_REASON_CARD_ENDED
    assert (after.card.status, after.card.ended_on) == (pb.CARD_STATUS_ENDED, "2024-05-02")
    # Still valid_to 2030-09-30 on paper: the death, not the date, ended it.
    assert (await check(stub, CHILD)).not_covered_reason == pb.NOT_COVERED_REASON_CARD_ENDED


async def test_an_insured_person_without_a_card_is_an_answer_not_an_error(stub: Any) -> None:
    adult = pb.Participant(
        social_insurance_number="0199000001",
        personal_id_number=ADULT,
        full_name="Trần Văn Bình",
        date_of_birth="1950-04-02",
        pensioner=True,
    )

    async def one() -> Any:
        yield pb.SeedParticipantsRequest(participants=[adult])

    await stub.SeedParticipants(one())
    answer = await check(stub, ADULT, "2025-01-02")
    assert not answer.covered
    assert answer.not_covered_reason == pb.NOT_COVERED_REASON_NO_CARD
    assert not answer.HasField("card")


async def test_an_unknown_person_is_not_found(stub: Any) -> None:
    error = await refused(check(stub, STRANGER))
    assert (error.code, error.reason) == (grpc.StatusCode.NOT_FOUND, "PARTICIPANT_NOT_FOUND")


@pytest.mark.parametrize(
    ("personal_id", "on", "field", "words"),
    [
        ("42", "", "personal_id_number", "12-digit"),
        # Twelve digits, but province 000 does not exist.
        ("000150000124", "", "personal_id_number", "province"),
        (CHILD, "15/09/2025", "on_date", "YYYY-MM-DD"),
        (CHILD, "2025-02-30", "on_date", "not a real date"),
        (CHILD, "2025-09-16", "on_date", "2025-09-16 is in the future"),
    ],
)
async def test_a_bad_number_or_day_is_invalid_naming_the_field(
    stub: Any, personal_id: str, on: str, field: str, words: str
) -> None:
    await issue(stub, "card")
    error = await refused(check(stub, personal_id, on))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.field_violations.keys() == {field}
    assert words in error.field_violations[field]


async def test_a_lookup_changes_nothing(stub: Any) -> None:
    card = await issue(stub, "card")
    for day in ("2024-03-09", "2025-09-15", ""):
        await check(stub, CHILD, day)
    got = await stub.GetParticipant(pb.GetParticipantRequest(personal_id_number=CHILD))
    assert got.participant.card == card
