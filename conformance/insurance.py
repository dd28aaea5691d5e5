"""The social security registry's contract (lienthong.insurance.v1), rule by rule.

Expected values come from shared/domain.md, written here by hand: the child
card (group TE, level 1, valid from birth to the day before the 6th birthday,
or to 30 September for a child who turns 6 by then), the 15-character card
code, the funeral allowance (10 × the base salary in force in the month of
death, from the salary history; who is eligible), the pension stopped from
the month after the death; a hospital's coverage lookup (covered from
valid_from to valid_to, and through the day of death of a card ended by it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import grpc

from conformance import wire
from conformance.identity import NOT_A_PROVINCE, adult_birthday, id_number
from conformance.kit import CALL_TIMEOUT_SECONDS, Context, RuleBook
from conformance.wire import answer, expect, refusal
from lienthong.common.v1.common_pb2 import (
    PAYMENT_METHOD_BANK_TRANSFER,
    SEX_FEMALE,
    SEX_MALE,
)
from lienthong.insurance.v1 import insurance_pb2 as pb
from lienthong.insurance.v1 import insurance_pb2_grpc as pb_grpc

SERVICE = pb.DESCRIPTOR.services_by_name["InsuranceRegistryService"]
book = RuleBook("insurance", SERVICE.full_name)
rule = book.rule

Code = grpc.StatusCode
T = CALL_TIMEOUT_SECONDS

# Law on Health Insurance art. 12(3), Decision 1351/QD-BHXH: children under 6.
CHILD_GROUP, CHILD_LEVEL = "TE", 1
# Base salary (lương cơ sở) by the day it came into force, from domain.md.
# Only the confirmed history: the rise proposed for 2026-07-01 is not.
BASE_SALARIES = (
    (dt.date(2013, 7, 1), 1_150_000),
    (dt.date(2016, 5, 1), 1_210_000),
    (dt.date(2017, 7, 1), 1_300_000),
    (dt.date(2018, 7, 1), 1_390_000),
    (dt.date(2019, 7, 1), 1_490_000),
    (dt.date(2023, 7, 1), 1_800_000),
    (dt.date(2024, 7, 1), 2_340_000),
)
# Deaths to judge: the last day of one salary and the first of the next, and
# a day inside the latest.
DEATHS = (
    dt.date(2016, 4, 30),
    dt.date(2016, 5, 1),
    dt.date(2018, 6, 30),
    dt.date(2019, 7, 1),
    dt.date(2024, 6, 30),
    dt.date(2025, 3, 10),
)
ALLOWANCE_MULTIPLIER = 10


def salary_in_force(day: dt.date) -> int:
    """Every change came into force on the 1st of a month, so the salary in
    force on the day of death is the one of its month."""
    return [amount for since, amount in BASE_SALARIES if since <= day][-1]


def stub(ctx: Context) -> Any:
    return pb_grpc.InsuranceRegistryServiceStub(ctx.channel)


def _short(message: Any) -> str:
    return " ".join(str(message).split())[:160]


# ---- the child card -----------------------------------------------------------------


def card_request(
    ctx: Context, born: dt.date, *, province: str = "001", **fields: Any
) -> pb.IssueChildHealthInsuranceCardRequest:
    values: dict[str, Any] = {
        "request_id": ctx.fresh.request_id(),
        "personal_id_number": id_number(ctx, province, born, SEX_FEMALE),
        "full_name": "Trần Thị Mai",
        "date_of_birth": born.isoformat(),
        "sex": SEX_FEMALE,
        "province_code": province,
        "initial_facility_code": "01001",
    }
    values.update(fields)
    return pb.IssueChildHealthInsuranceCardRequest(**values)


async def issue(ctx: Context, request: pb.IssueChildHealthInsuranceCardRequest) -> Any:
    reply = await answer(
        stub(ctx).IssueChildHealthInsuranceCard(request, timeout=T),
        "IssueChildHealthInsuranceCard",
    )
    return reply.card


async def participant(ctx: Context, personal_id: str) -> Any:
    reply = await answer(
        stub(ctx).GetParticipant(
            pb.GetParticipantRequest(personal_id_number=personal_id), timeout=T
        ),
        f"GetParticipant({personal_id})",
    )
    return reply.participant


@rule(
    "issue_child_health_insurance_card.happy_path",
    "a newborn gets an active card: group TE, level 1, a 10-digit social insurance number, "
    "valid from birth, the chosen facility; GetParticipant shows it",
)
async def _(ctx: Context) -> str:
    born = ctx.today - dt.timedelta(days=10)
    request = card_request(ctx, born)
    card = await issue(ctx, request)
    number = card.social_insurance_number
    expect(len(number) == 10 and number.isdigit(), f"social insurance number {number!r}")
    expect(
        (card.beneficiary_group, card.benefit_level) == (CHILD_GROUP, CHILD_LEVEL),
        f"group {card.beneficiary_group!r} level {card.benefit_level}, should be TE 1",
    )
    expect(card.valid_from == born.isoformat(), f"valid_from {card.valid_from}, born {born}")
    expect(card.initial_facility_code == "01001", f"facility {card.initial_facility_code!r}")
    expect(card.status == pb.CARD_STATUS_ACTIVE, f"status {pb.CardStatus.Name(card.status)}")
    found = await participant(ctx, request.personal_id_number)
    expect(found.card == card, f"GetParticipant's card {_short(found.card)}")
    expect(found.date_of_birth == born.isoformat(), f"participant {_short(found)}")
    return f"card {card.card_code} valid {card.valid_from} to {card.valid_to}"


@rule(
    "issue_child_health_insurance_card.card_code",
    "the 15-character card code is TE, 1, the last two digits of the residence province's "
    "code, then the social insurance number",
)
async def _(ctx: Context) -> str:
    card = await issue(ctx, card_request(ctx, ctx.today - dt.timedelta(days=10), province="079"))
    wanted = f"TE179{card.social_insurance_number}"
    expect(card.card_code == wanted, f"card code {card.card_code!r}, should be {wanted}")
    return f"province 079: {card.card_code}"


@rule(
    "issue_child_health_insurance_card.valid_to_day_before_sixth_birthday",
    "a child whose 6th birthday falls after 30 September is covered until the day before it",
)
async def _(ctx: Context) -> str:
    born = dt.date(ctx.today.year - 1, 11, 15)
    card = await issue(ctx, card_request(ctx, born))
    wanted = dt.date(born.year + 6, 11, 14).isoformat()
    expect(card.valid_to == wanted, f"born {born}: valid_to {card.valid_to}, should be {wanted}")
    return f"born {born}: valid to {card.valid_to}"


@rule(
    "issue_child_health_insurance_card.valid_to_30_september",
    "a child who turns 6 on or before 30 September is covered until 30 September of that year",
)
async def _(ctx: Context) -> str:
    evidence = []
    for born in (dt.date(ctx.today.year - 1, 3, 10), dt.date(ctx.today.year - 2, 9, 30)):
        card = await issue(ctx, card_request(ctx, born))
        wanted = dt.date(born.year + 6, 9, 30).isoformat()
        expect(
            card.valid_to == wanted, f"born {born}: valid_to {card.valid_to}, should be {wanted}"
        )
        evidence.append(f"born {born}: valid to {card.valid_to}")
    return "; ".join(evidence)


@rule(
    "issue_child_health_insurance_card.entitled_after_sixth_birthday_until_30_september",
    "a child who turned 6 in March and asks in May of that year still gets a card, valid to "
    "30 September",
)
async def _(ctx: Context) -> str:
    year = ctx.today.year - 1
    born = dt.date(year - 6, 3, 10)
    asked = dt.date(year, 5, 1)
    card = await issue(ctx, card_request(ctx, born, requested_on=asked.isoformat()))
    wanted = dt.date(year, 9, 30).isoformat()
    expect(card.valid_to == wanted, f"valid_to {card.valid_to}, should be {wanted}")
    return f"born {born}, asked {asked}: valid to {card.valid_to}"


@rule(
    "issue_child_health_insurance_card.child_too_old",
    "a child past the card's last valid day: FAILED_PRECONDITION CHILD_TOO_OLD",
)
async def _(ctx: Context) -> str:
    born = dt.date(ctx.today.year - 7, 11, 15)  # covered until 14 November last year
    return await refusal(
        stub(ctx).IssueChildHealthInsuranceCard(card_request(ctx, born), timeout=T),
        Code.FAILED_PRECONDITION,
        reason="CHILD_TOO_OLD",
    )


@rule(
    "issue_child_health_insurance_card.one_card_per_child",
    "a second request for the same child, under a new request id, returns the card it has",
)
async def _(ctx: Context) -> str:
    request = card_request(ctx, ctx.today - dt.timedelta(days=10))
    first = await issue(ctx, request)
    again = pb.IssueChildHealthInsuranceCardRequest()
    again.CopyFrom(request)
    again.request_id = ctx.fresh.request_id()
    second = await issue(ctx, again)
    expect(first == second, f"first {_short(first)}, second {_short(second)}")
    return f"both: {first.card_code}"


@rule(
    "issue_child_health_insurance_card.idempotent_repeat",
    "the same request sent again returns the first answer",
)
async def _(ctx: Context) -> str:
    request = card_request(ctx, ctx.today - dt.timedelta(days=10))
    first = await issue(ctx, request)
    repeat = await issue(ctx, request)
    expect(first == repeat, f"first {_short(first)}, repeat {_short(repeat)}")
    return f"both: {first.card_code}"


@rule(
    "issue_child_health_insurance_card.request_id_reused",
    "a request id reused with another body is refused INVALID_ARGUMENT naming request_id",
)
async def _(ctx: Context) -> str:
    request = card_request(ctx, ctx.today - dt.timedelta(days=10))
    await issue(ctx, request)
    other = card_request(ctx, ctx.today - dt.timedelta(days=11), request_id=request.request_id)
    return await refusal(
        stub(ctx).IssueChildHealthInsuranceCard(other, timeout=T),
        Code.INVALID_ARGUMENT,
        fields=["request_id"],
    )


@rule(
    "issue_child_health_insurance_card.born_after_request",
    "a date of birth after the day of the request: INVALID_ARGUMENT naming date_of_birth",
)
async def _(ctx: Context) -> str:
    request = card_request(
        ctx,
        ctx.today - dt.timedelta(days=3),
        requested_on=(ctx.today - dt.timedelta(days=10)).isoformat(),
    )
    return await refusal(
        stub(ctx).IssueChildHealthInsuranceCard(request, timeout=T),
        Code.INVALID_ARGUMENT,
        fields=["date_of_birth"],
    )


@rule(
    "issue_child_health_insurance_card.future_request",
    "a request dated a month from now: INVALID_ARGUMENT naming requested_on",
)
async def _(ctx: Context) -> str:
    request = card_request(
        ctx,
        ctx.today - dt.timedelta(days=3),
        requested_on=(ctx.today + dt.timedelta(days=30)).isoformat(),
    )
    return await refusal(
        stub(ctx).IssueChildHealthInsuranceCard(request, timeout=T),
        Code.INVALID_ARGUMENT,
        fields=["requested_on"],
    )


@rule(
    "issue_child_health_insurance_card.unknown_province",
    "a province code that is no province: INVALID_ARGUMENT naming province_code",
)
async def _(ctx: Context) -> str:
    request = card_request(ctx, ctx.today - dt.timedelta(days=3))
    request.province_code = NOT_A_PROVINCE
    return await refusal(
        stub(ctx).IssueChildHealthInsuranceCard(request, timeout=T),
        Code.INVALID_ARGUMENT,
        fields=["province_code"],
    )


@rule(
    "issue_child_health_insurance_card.field_violations",
    "an empty request: INVALID_ARGUMENT with a BadRequest naming every required field",
)
async def _(ctx: Context) -> str:
    return await refusal(
        stub(ctx).IssueChildHealthInsuranceCard(
            pb.IssueChildHealthInsuranceCardRequest(), timeout=T
        ),
        Code.INVALID_ARGUMENT,
        fields=[
            "request_id",
            "personal_id_number",
            "full_name",
            "date_of_birth",
            "sex",
            "province_code",
            "initial_facility_code",
        ],
    )


# ---- participants and the funeral allowance -------------------------------------------


def member(ctx: Context, **fields: Any) -> pb.Participant:
    born = adult_birthday(1940, 1975)
    values: dict[str, Any] = {
        "social_insurance_number": ctx.fresh.digits(10),
        "personal_id_number": id_number(ctx, "001", born, SEX_MALE),
        "full_name": "Trần Văn Nam",
        "date_of_birth": born.isoformat(),
    }
    values.update(fields)
    return pb.Participant(**values)


def seed_call(ctx: Context, *batches: pb.SeedParticipantsRequest) -> Any:
    async def stream() -> AsyncIterator[pb.SeedParticipantsRequest]:
        for batch in batches:
            yield batch

    return stub(ctx).SeedParticipants(stream(), timeout=T)


async def seeded(ctx: Context, **fields: Any) -> pb.Participant:
    one = member(ctx, **fields)
    await answer(seed_call(ctx, pb.SeedParticipantsRequest(participants=[one])), "SeedParticipants")
    return one


def settle_request(
    ctx: Context, personal_id: str, died: dt.date, **fields: Any
) -> pb.SettleFuneralAllowanceRequest:
    payee_born = adult_birthday(1965)
    values: dict[str, Any] = {
        "request_id": ctx.fresh.request_id(),
        "personal_id_number": personal_id,
        "date_of_death": died.isoformat(),
        "payee": pb.Payee(
            full_name="Trần Thị Hoa",
            personal_id_number=id_number(ctx, "001", payee_born, SEX_FEMALE),
            payment_method=PAYMENT_METHOD_BANK_TRANSFER,
            bank_account=ctx.fresh.digits(12),
            bank_name="Vietcombank",
        ),
    }
    values.update(fields)
    return pb.SettleFuneralAllowanceRequest(**values)


async def settle(ctx: Context, request: pb.SettleFuneralAllowanceRequest) -> Any:
    reply = await answer(
        stub(ctx).SettleFuneralAllowance(request, timeout=T), "SettleFuneralAllowance"
    )
    return reply.allowance


@rule(
    "settle_funeral_allowance.happy_path",
    "a compulsory participant with 24 months who died in March 2025: eligible, paid "
    "10 × 2,340,000 = 23,400,000 VND to the payee, with a payment reference",
)
async def _(ctx: Context) -> str:
    deceased = await seeded(ctx, compulsory_contribution_months=24)
    request = settle_request(ctx, deceased.personal_id_number, dt.date(2025, 3, 10))
    allowance = await settle(ctx, request)
    expect(allowance.eligible, f"not eligible: {allowance.reason!r}")
    expect(
        (allowance.amount_vnd, allowance.base_salary_vnd) == (23_400_000, 2_340_000),
        f"amount {allowance.amount_vnd}, base salary {allowance.base_salary_vnd}",
    )
    expect(allowance.payee == request.payee, f"payee {_short(allowance.payee)}")
    expect(bool(allowance.payment_reference), "no payment reference")
    expect(allowance.personal_id_number == deceased.personal_id_number, _short(allowance))
    return f"{allowance.amount_vnd:,} VND, reference {allowance.payment_reference}"


@rule(
    "settle_funeral_allowance.base_salary_of_the_month_of_death",
    "the amount is 10 × the base salary in force in the month of death, from the history "
    "(1,150,000 from 2013-07 ... 2,340,000 from 2024-07), however late the claim",
)
async def _(ctx: Context) -> str:
    evidence = []
    for died in DEATHS:
        salary = salary_in_force(died)
        deceased = await seeded(ctx, compulsory_contribution_months=120)
        allowance = await settle(ctx, settle_request(ctx, deceased.personal_id_number, died))
        wanted = ALLOWANCE_MULTIPLIER * salary
        expect(
            allowance.eligible
            and (allowance.amount_vnd, allowance.base_salary_vnd) == (wanted, salary),
            f"died {died}: amount {allowance.amount_vnd}, base salary "
            f"{allowance.base_salary_vnd}; should be {wanted} and {salary}",
        )
        evidence.append(f"{died}: {allowance.amount_vnd:,}")
    return "; ".join(evidence)


ELIGIBLE: dict[str, dict[str, Any]] = {
    "12 compulsory months": {"compulsory_contribution_months": 12},
    "60 voluntary months": {"voluntary_contribution_months": 60},
    "a pensioner": {"pensioner": True},
    "a monthly occupational allowance": {"receives_monthly_occupational_allowance": True},
}
NOT_ELIGIBLE: dict[str, dict[str, Any]] = {
    "11 compulsory months": {"compulsory_contribution_months": 11},
    "59 voluntary months": {"voluntary_contribution_months": 59},
}


@rule(
    "settle_funeral_allowance.eligibility",
    "eligible: 12 compulsory months, 60 voluntary months, a pensioner, a monthly "
    "occupational allowance, a work accident; not: 11 compulsory, 59 voluntary months",
)
async def _(ctx: Context) -> str:
    died = dt.date(2025, 3, 10)
    cases: list[tuple[str, dict[str, Any], bool, bool]] = [
        (name, fields, True, False) for name, fields in ELIGIBLE.items()
    ]
    cases += [(name, fields, False, False) for name, fields in NOT_ELIGIBLE.items()]
    cases.append(("a work accident", {}, True, True))
    for name, fields, eligible, accident in cases:
        deceased = await seeded(ctx, **fields)
        allowance = await settle(
            ctx,
            settle_request(
                ctx,
                deceased.personal_id_number,
                died,
                work_accident_or_occupational_disease=accident,
            ),
        )
        expect(
            allowance.eligible == eligible,
            f"{name}: eligible is {allowance.eligible} ({allowance.reason!r})",
        )
        if not eligible:
            expect(allowance.amount_vnd == 0, f"{name}: not eligible yet {allowance.amount_vnd}")
            expect(bool(allowance.reason), f"{name}: not eligible and no reason given")
    return f"{len(cases)} cases judged as the law says"


@rule(
    "settle_funeral_allowance.no_record_not_eligible",
    "a person the registry has no record of: an answer (not an error), not eligible, with "
    "the reason",
)
async def _(ctx: Context) -> str:
    stranger = id_number(ctx, "001", adult_birthday(), SEX_MALE)
    allowance = await settle(ctx, settle_request(ctx, stranger, dt.date(2025, 3, 10)))
    expect(not allowance.eligible and bool(allowance.reason), _short(allowance))
    return f"not eligible: {allowance.reason}"


@rule(
    "settle_funeral_allowance.paid_once",
    "a second claim for the same death, under a new request id: ALREADY_EXISTS "
    "ALLOWANCE_ALREADY_SETTLED",
)
async def _(ctx: Context) -> str:
    deceased = await seeded(ctx, compulsory_contribution_months=24)
    await settle(ctx, settle_request(ctx, deceased.personal_id_number, dt.date(2025, 3, 10)))
    again = settle_request(ctx, deceased.personal_id_number, dt.date(2025, 3, 10))
    return await refusal(
        stub(ctx).SettleFuneralAllowance(again, timeout=T),
        Code.ALREADY_EXISTS,
        reason="ALLOWANCE_ALREADY_SETTLED",
    )


@rule(
    "settle_funeral_allowance.idempotent_repeat",
    "the same request sent again returns the first answer (not ALLOWANCE_ALREADY_SETTLED)",
)
async def _(ctx: Context) -> str:
    deceased = await seeded(ctx, compulsory_contribution_months=24)
    request = settle_request(ctx, deceased.personal_id_number, dt.date(2025, 3, 10))
    first = await settle(ctx, request)
    repeat = await settle(ctx, request)
    expect(first == repeat, f"first {_short(first)}, repeat {_short(repeat)}")
    return f"both: {first.payment_reference}"


@rule(
    "settle_funeral_allowance.request_id_reused",
    "a request id reused with another body is refused INVALID_ARGUMENT naming request_id",
)
async def _(ctx: Context) -> str:
    deceased = await seeded(ctx, compulsory_contribution_months=24)
    request = settle_request(ctx, deceased.personal_id_number, dt.date(2025, 3, 10))
    await settle(ctx, request)
    other = settle_request(
        ctx, deceased.personal_id_number, dt.date(2025, 3, 9), request_id=request.request_id
    )
    return await refusal(
        stub(ctx).SettleFuneralAllowance(other, timeout=T),
        Code.INVALID_ARGUMENT,
        fields=["request_id"],
    )


@rule(
    "settle_funeral_allowance.death_date_conflict",
    "a date of death other than the one recorded: FAILED_PRECONDITION DEATH_DATE_CONFLICT",
)
async def _(ctx: Context) -> str:
    deceased = await seeded(ctx, compulsory_contribution_months=24, date_of_death="2025-03-10")
    request = settle_request(ctx, deceased.personal_id_number, dt.date(2025, 3, 11))
    return await refusal(
        stub(ctx).SettleFuneralAllowance(request, timeout=T),
        Code.FAILED_PRECONDITION,
        reason="DEATH_DATE_CONFLICT",
    )


@rule(
    "settle_funeral_allowance.bank_transfer_needs_account",
    "a bank transfer without a bank account: INVALID_ARGUMENT naming payee",
)
async def _(ctx: Context) -> str:
    deceased = await seeded(ctx, compulsory_contribution_months=24)
    request = settle_request(ctx, deceased.personal_id_number, dt.date(2025, 3, 10))
    request.payee.bank_account = ""
    return await refusal(
        stub(ctx).SettleFuneralAllowance(request, timeout=T),
        Code.INVALID_ARGUMENT,
        fields=["payee"],
    )


@rule(
    "settle_funeral_allowance.future_death",
    "a date of death a month from now: INVALID_ARGUMENT naming date_of_death",
)
async def _(ctx: Context) -> str:
    deceased = await seeded(ctx, compulsory_contribution_months=24)
    request = settle_request(ctx, deceased.personal_id_number, ctx.today + dt.timedelta(days=30))
    return await refusal(
        stub(ctx).SettleFuneralAllowance(request, timeout=T),
        Code.INVALID_ARGUMENT,
        fields=["date_of_death"],
    )


@rule(
    "settle_funeral_allowance.field_violations",
    "an empty request: INVALID_ARGUMENT with a BadRequest naming every required field",
)
async def _(ctx: Context) -> str:
    return await refusal(
        stub(ctx).SettleFuneralAllowance(pb.SettleFuneralAllowanceRequest(), timeout=T),
        Code.INVALID_ARGUMENT,
        fields=["request_id", "personal_id_number", "date_of_death", "payee"],
    )


# ---- EndCoverage ---------------------------------------------------------------------


def end_request(ctx: Context, personal_id: str, died: dt.date, **fields: Any) -> Any:
    values: dict[str, Any] = {
        "request_id": ctx.fresh.request_id(),
        "personal_id_number": personal_id,
        "date_of_death": died.isoformat(),
    }
    values.update(fields)
    return pb.EndCoverageRequest(**values)


async def end(ctx: Context, request: pb.EndCoverageRequest) -> Any:
    return await answer(stub(ctx).EndCoverage(request, timeout=T), "EndCoverage")


@rule(
    "end_coverage.happy_path",
    "the death of a child with a card ends the card on the day of death; GetParticipant "
    "shows it ENDED",
)
async def _(ctx: Context) -> str:
    request = card_request(ctx, ctx.today - dt.timedelta(days=40))
    await issue(ctx, request)
    died = ctx.today - dt.timedelta(days=5)
    reply = await end(ctx, end_request(ctx, request.personal_id_number, died))
    expect(
        reply.participant_found and reply.card_ended_on == died.isoformat(),
        f"answer {_short(reply)}",
    )
    expect(not reply.pension_stopped_from, f"no pension, yet {_short(reply)}")
    found = await participant(ctx, request.personal_id_number)
    expect(
        found.card.status == pb.CARD_STATUS_ENDED and found.card.ended_on == died.isoformat(),
        f"GetParticipant's card {_short(found.card)}",
    )
    expect(found.date_of_death == died.isoformat(), f"participant {_short(found)}")
    return f"card ended on {reply.card_ended_on}"


@rule(
    "end_coverage.pension_stops_from_next_month",
    "a pensioner's pension stops from the first day of the month after the death (a "
    "December death: 1 January)",
)
async def _(ctx: Context) -> str:
    evidence = []
    for died, wanted in (
        (dt.date(2025, 3, 10), "2025-04-01"),
        (dt.date(2024, 12, 31), "2025-01-01"),
    ):
        pensioner = await seeded(ctx, pensioner=True)
        reply = await end(ctx, end_request(ctx, pensioner.personal_id_number, died))
        expect(
            reply.pension_stopped_from == wanted,
            f"died {died}: pension stopped from {reply.pension_stopped_from!r}, should be {wanted}",
        )
        evidence.append(f"died {died}: stopped from {reply.pension_stopped_from}")
    return "; ".join(evidence)


@rule(
    "end_coverage.unknown_person",
    "a person without an insurance record: an answer saying participant_found false, not an error",
)
async def _(ctx: Context) -> str:
    stranger = id_number(ctx, "001", adult_birthday(), SEX_MALE)
    reply = await end(ctx, end_request(ctx, stranger, ctx.today - dt.timedelta(days=3)))
    expect(not reply.participant_found, f"answer {_short(reply)}")
    return "participant_found: false"


@rule(
    "end_coverage.idempotent_repeat",
    "the same request sent again returns the first answer",
)
async def _(ctx: Context) -> str:
    pensioner = await seeded(ctx, pensioner=True)
    request = end_request(ctx, pensioner.personal_id_number, dt.date(2025, 3, 10))
    first = await end(ctx, request)
    repeat = await end(ctx, request)
    expect(first == repeat, f"first {_short(first)}, repeat {_short(repeat)}")
    return f"both: {_short(first)}"


@rule(
    "end_coverage.request_id_reused",
    "a request id reused with another body is refused INVALID_ARGUMENT naming request_id",
)
async def _(ctx: Context) -> str:
    pensioner = await seeded(ctx, pensioner=True)
    request = end_request(ctx, pensioner.personal_id_number, dt.date(2025, 3, 10))
    await end(ctx, request)
    other = end_request(
        ctx, pensioner.personal_id_number, dt.date(2025, 3, 9), request_id=request.request_id
    )
    return await refusal(
        stub(ctx).EndCoverage(other, timeout=T), Code.INVALID_ARGUMENT, fields=["request_id"]
    )


@rule(
    "end_coverage.death_date_conflict",
    "a date of death other than the one recorded: FAILED_PRECONDITION DEATH_DATE_CONFLICT",
)
async def _(ctx: Context) -> str:
    deceased = await seeded(ctx, date_of_death="2025-03-10")
    request = end_request(ctx, deceased.personal_id_number, dt.date(2025, 3, 11))
    return await refusal(
        stub(ctx).EndCoverage(request, timeout=T),
        Code.FAILED_PRECONDITION,
        reason="DEATH_DATE_CONFLICT",
    )


@rule(
    "end_coverage.field_violations",
    "an empty request: INVALID_ARGUMENT with a BadRequest naming every required field",
)
async def _(ctx: Context) -> str:
    return await refusal(
        stub(ctx).EndCoverage(pb.EndCoverageRequest(), timeout=T),
        Code.INVALID_ARGUMENT,
        fields=["request_id", "personal_id_number", "date_of_death"],
    )


# ---- GetParticipant, SeedParticipants ---------------------------------------------------


@rule(
    "get_participant.happy_path",
    "GetParticipant answers a seeded participant as seeded, without a card",
)
async def _(ctx: Context) -> str:
    one = await seeded(ctx, compulsory_contribution_months=30, voluntary_contribution_months=7)
    found = await participant(ctx, one.personal_id_number)
    expect(found == one, f"seeded {_short(one)}, got {_short(found)}")
    return f"found {found.social_insurance_number} as seeded"


@rule(
    "get_participant.not_found",
    "a person without an insurance record: NOT_FOUND PARTICIPANT_NOT_FOUND",
)
async def _(ctx: Context) -> str:
    stranger = id_number(ctx, "001", adult_birthday(), SEX_MALE)
    return await refusal(
        stub(ctx).GetParticipant(pb.GetParticipantRequest(personal_id_number=stranger), timeout=T),
        Code.NOT_FOUND,
        reason="PARTICIPANT_NOT_FOUND",
    )


@rule(
    "get_participant.field_violations",
    "a number that is not 12 digits: INVALID_ARGUMENT naming personal_id_number",
)
async def _(ctx: Context) -> str:
    return await refusal(
        stub(ctx).GetParticipant(pb.GetParticipantRequest(personal_id_number="42"), timeout=T),
        Code.INVALID_ARGUMENT,
        fields=["personal_id_number"],
    )


@rule(
    "seed_participants.happy_path",
    "a stream of two batches is loaded: the answer counts every participant added",
)
async def _(ctx: Context) -> str:
    people = [member(ctx), member(ctx), member(ctx, pensioner=True)]
    reply = await answer(
        seed_call(
            ctx,
            pb.SeedParticipantsRequest(participants=people[:1]),
            pb.SeedParticipantsRequest(participants=people[1:]),
        ),
        "SeedParticipants",
    )
    expect(reply.participants == 3, f"sent 3, the answer counts {reply.participants}")
    for one in people:
        found = await participant(ctx, one.personal_id_number)
        expect(found == one, f"seeded {_short(one)}, got {_short(found)}")
    return "3 participants, each found as seeded"


@rule(
    "seed_participants.replay_changes_nothing",
    "the same seed sent again adds nothing: the answer counts 0",
)
async def _(ctx: Context) -> str:
    batch = pb.SeedParticipantsRequest(participants=[member(ctx)])
    await answer(seed_call(ctx, batch), "SeedParticipants")
    again = await answer(seed_call(ctx, batch), "SeedParticipants again")
    expect(again.participants == 0, f"the replay counts {again.participants}")
    return "replay added 0"


@rule(
    "seed_participants.number_taken",
    "a social insurance number seeded for another person (one number per person for life): "
    "ALREADY_EXISTS SOCIAL_INSURANCE_NUMBER_TAKEN",
)
async def _(ctx: Context) -> str:
    first = await seeded(ctx)
    other = member(ctx, social_insurance_number=first.social_insurance_number)
    return await refusal(
        seed_call(ctx, pb.SeedParticipantsRequest(participants=[other])),
        Code.ALREADY_EXISTS,
        reason="SOCIAL_INSURANCE_NUMBER_TAKEN",
    )


@rule(
    "seed_participants.field_violations",
    "a participant with a malformed number: INVALID_ARGUMENT naming its social_insurance_number",
)
async def _(ctx: Context) -> str:
    bad = member(ctx, social_insurance_number="12")
    got = await wire.refused(
        seed_call(ctx, pb.SeedParticipantsRequest(participants=[bad])), Code.INVALID_ARGUMENT
    )
    named = [f for f in got.fields if f.endswith("social_insurance_number")]
    expect(bool(named), f"the BadRequest names no social_insurance_number: {got}")
    return str(got)


# ---- CheckCoverage: a hospital's lookup by personal ID number -------------------------

# The card's own validity (from birth, to the day before the 6th birthday or
# to 30 September) is judged by the issue_child_health_insurance_card rules;
# these judge that the lookup tells the card truthfully, day by day.


async def coverage(ctx: Context, personal_id: str, on: dt.date | None = None) -> Any:
    request = pb.CheckCoverageRequest(
        personal_id_number=personal_id, on_date=on.isoformat() if on is not None else ""
    )
    return await answer(
        stub(ctx).CheckCoverage(request, timeout=T), f"CheckCoverage({personal_id}, {on})"
    )


def _reason(reply: Any) -> str:
    return pb.NotCoveredReason.Name(reply.not_covered_reason)


def expect_covered(reply: Any, on: dt.date) -> None:
    expect(
        reply.covered and reply.not_covered_reason == pb.NOT_COVERED_REASON_UNSPECIFIED,
        f"{on}: not covered ({_reason(reply)}), should be covered",
    )


def expect_not_covered(reply: Any, on: dt.date, reason: int) -> None:
    wanted = pb.NotCoveredReason.Name(reason)  # type: ignore[arg-type]
    expect(
        not reply.covered and reply.not_covered_reason == reason,
        f"{on}: covered {reply.covered} ({_reason(reply)}), should be not covered ({wanted})",
    )


@rule(
    "check_coverage.happy_path",
    "a child with a card is covered today: the answer carries that card (code, group TE, "
    "level 1, initial facility, validity) and the day judged",
)
async def _(ctx: Context) -> str:
    request = card_request(ctx, ctx.today - dt.timedelta(days=10))
    card = await issue(ctx, request)
    reply = await coverage(ctx, request.personal_id_number, ctx.today)
    expect_covered(reply, ctx.today)
    expect(reply.card == card, f"the answer's card {_short(reply.card)}, issued {_short(card)}")
    expect(reply.on_date == ctx.today.isoformat(), f"on_date {reply.on_date!r}")
    today = await coverage(ctx, request.personal_id_number)
    expect(today.covered, f"no on_date (today): not covered ({_reason(today)})")
    return (
        f"covered on {reply.on_date}: card {card.card_code}, facility {card.initial_facility_code}"
    )


@rule(
    "check_coverage.validity_boundaries",
    "covered on the card's valid_from and valid_to; not the day before (CARD_NOT_YET_VALID) "
    "nor the day after (CARD_EXPIRED)",
)
async def _(ctx: Context) -> str:
    # Turned 6 in March of last year: a card whose validity is over, asked
    # for while the child was entitled.
    born = dt.date(ctx.today.year - 7, 3, 10)
    request = card_request(ctx, born, requested_on=(born + dt.timedelta(days=30)).isoformat())
    card = await issue(ctx, request)
    first = dt.date.fromisoformat(card.valid_from)
    last = dt.date.fromisoformat(card.valid_to)
    one = dt.timedelta(days=1)
    person = request.personal_id_number
    expect_covered(await coverage(ctx, person, first), first)
    expect_covered(await coverage(ctx, person, last), last)
    expect_not_covered(
        await coverage(ctx, person, first - one),
        first - one,
        pb.NOT_COVERED_REASON_CARD_NOT_YET_VALID,
    )
    expect_not_covered(
        await coverage(ctx, person, last + one), last + one, pb.NOT_COVERED_REASON_CARD_EXPIRED
    )
    return f"valid {first} to {last}: covered on both, not on {first - one} nor {last + one}"


@rule(
    "check_coverage.ended_by_death",
    "a card ended by a death (EndCoverage) covers the day of death and not the day after "
    "(CARD_ENDED), the card shown ENDED",
)
async def _(ctx: Context) -> str:
    request = card_request(ctx, ctx.today - dt.timedelta(days=40))
    await issue(ctx, request)
    died = ctx.today - dt.timedelta(days=5)
    await end(ctx, end_request(ctx, request.personal_id_number, died))
    after = died + dt.timedelta(days=1)
    expect_covered(await coverage(ctx, request.personal_id_number, died), died)
    reply = await coverage(ctx, request.personal_id_number, after)
    expect_not_covered(reply, after, pb.NOT_COVERED_REASON_CARD_ENDED)
    expect(
        reply.card.status == pb.CARD_STATUS_ENDED and reply.card.ended_on == died.isoformat(),
        f"the answer's card {_short(reply.card)}",
    )
    return f"died {died}: covered that day, CARD_ENDED on {after}"


@rule(
    "check_coverage.no_card",
    "an insured person without a card: an answer (not an error), not covered, NO_CARD, no card",
)
async def _(ctx: Context) -> str:
    one = await seeded(ctx, compulsory_contribution_months=30)
    reply = await coverage(ctx, one.personal_id_number, ctx.today)
    expect_not_covered(reply, ctx.today, pb.NOT_COVERED_REASON_NO_CARD)
    expect(not reply.HasField("card"), f"a card in the answer: {_short(reply.card)}")
    return "not covered: NO_CARD"


@rule(
    "check_coverage.not_found",
    "a person without an insurance record: NOT_FOUND PARTICIPANT_NOT_FOUND",
)
async def _(ctx: Context) -> str:
    stranger = id_number(ctx, "001", adult_birthday(), SEX_MALE)
    return await refusal(
        stub(ctx).CheckCoverage(pb.CheckCoverageRequest(personal_id_number=stranger), timeout=T),
        Code.NOT_FOUND,
        reason="PARTICIPANT_NOT_FOUND",
    )


@rule(
    "check_coverage.future_day",
    "a day a month from now (coverage then is not known yet): INVALID_ARGUMENT naming on_date",
)
async def _(ctx: Context) -> str:
    request = card_request(ctx, ctx.today - dt.timedelta(days=10))
    await issue(ctx, request)
    later = (ctx.today + dt.timedelta(days=30)).isoformat()
    return await refusal(
        stub(ctx).CheckCoverage(
            pb.CheckCoverageRequest(personal_id_number=request.personal_id_number, on_date=later),
            timeout=T,
        ),
        Code.INVALID_ARGUMENT,
        fields=["on_date"],
    )


@rule(
    "check_coverage.field_violations",
    "a number that is not 12 digits and a day not written YYYY-MM-DD: INVALID_ARGUMENT naming "
    "personal_id_number and on_date",
)
async def _(ctx: Context) -> str:
    return await refusal(
        stub(ctx).CheckCoverage(
            pb.CheckCoverageRequest(personal_id_number="42", on_date="15/09/2025"), timeout=T
        ),
        Code.INVALID_ARGUMENT,
        fields=["personal_id_number", "on_date"],
    )


# ---- the wire ------------------------------------------------------------------------

wire.add_wire_rules(book, SERVICE)
