"""What the social security registry decides: child cards, funeral allowances,
the end of a deceased's coverage.

Requests arrive already checked against the contract (common.rpc); the rules
here are the ones a contract cannot express: a real date, a child under 6, one
card per child, one funeral allowance per deceased, one date of death.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from common.database import Row
from common.dates import first_day_of_next_month, parse_date, past_day
from common.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
)
from common.identifiers import parse_personal_id
from common.provinces import is_province
from lienthong.insurance.v1 import insurance_pb2 as pb
from services.insurance import child_card, coverage, funeral_allowance
from services.insurance.base_salary import BaseSalaryTable
from services.insurance.store import InsuranceStore


def _check_id(field: str, value: str) -> None:
    try:
        parse_personal_id(value)
    except ValueError as error:
        raise InvalidArgument.field(field, str(error)) from None


def _not_after(field: str, value: str, limit: dt.date, what: str) -> dt.date:
    day = parse_date(field, value)
    if day > limit:
        raise InvalidArgument.field(field, f"{value} is after {what} ({limit.isoformat()})")
    return day


def to_card(row: Row) -> pb.HealthInsuranceCard:
    return pb.HealthInsuranceCard(
        social_insurance_number=row["social_insurance_number"],
        card_code=row["card_code"],
        beneficiary_group=row["beneficiary_group"],
        benefit_level=row["benefit_level"],
        valid_from=row["valid_from"],
        valid_to=row["valid_to"],
        initial_facility_code=row["initial_facility_code"],
        status=row["status"],
        ended_on=row["ended_on"],
    )


def _validity(card: Row) -> coverage.Validity:
    """The stored card's dates: written by this registry, so well formed."""
    return coverage.Validity(
        valid_from=dt.date.fromisoformat(card["valid_from"]),
        valid_to=dt.date.fromisoformat(card["valid_to"]),
        ended_on=dt.date.fromisoformat(card["ended_on"]) if card["ended_on"] else None,
    )


def to_participant(row: Row, card: Row | None) -> pb.Participant:
    return pb.Participant(
        social_insurance_number=row["social_insurance_number"],
        personal_id_number=row["personal_id_number"],
        full_name=row["full_name"],
        date_of_birth=row["date_of_birth"],
        compulsory_contribution_months=row["compulsory_contribution_months"],
        voluntary_contribution_months=row["voluntary_contribution_months"],
        pensioner=bool(row["pensioner"]),
        receives_monthly_occupational_allowance=bool(
            row["receives_monthly_occupational_allowance"]
        ),
        receives_monthly_social_allowance=bool(row["receives_monthly_social_allowance"]),
        card=to_card(card) if card is not None else None,
        pension_stopped_from=row["pension_stopped_from"],
        date_of_death=row["date_of_death"],
    )


def to_history(row: Row) -> funeral_allowance.InsuranceHistory:
    return funeral_allowance.InsuranceHistory(
        compulsory_contribution_months=row["compulsory_contribution_months"],
        voluntary_contribution_months=row["voluntary_contribution_months"],
        pensioner=bool(row["pensioner"]),
        receives_monthly_occupational_allowance=bool(
            row["receives_monthly_occupational_allowance"]
        ),
        receives_monthly_social_allowance=bool(row["receives_monthly_social_allowance"]),
    )


def to_allowance(row: Row) -> pb.FuneralAllowance:
    return pb.FuneralAllowance(
        personal_id_number=row["personal_id_number"],
        eligible=True,
        amount_vnd=row["amount_vnd"],
        base_salary_vnd=row["base_salary_vnd"],
        reason=row["reason"],
        payment_reference=row["payment_reference"],
        settled_on=row["settled_on"],
        payee=pb.Payee(
            full_name=row["payee_full_name"],
            personal_id_number=row["payee_personal_id_number"],
            payment_method=row["payment_method"],
            bank_account=row["bank_account"],
            bank_name=row["bank_name"],
        ),
    )


def seed_row(participant: pb.Participant, latest: dt.date) -> tuple[object, ...]:
    """Check one seeded participant beyond the contract and turn it into a row:
    real dates, a birth and a death not after `latest` (today, plus the clock
    tolerance). The card is the registry's to issue, so a seeded one is ignored."""
    _check_id("personal_id_number", participant.personal_id_number)
    born = past_day("date_of_birth", participant.date_of_birth, latest)
    # The first day of the month after the death: it may be next month.
    if participant.pension_stopped_from:
        parse_date("pension_stopped_from", participant.pension_stopped_from)
    if participant.date_of_death and (
        past_day("date_of_death", participant.date_of_death, latest) < born
    ):
        raise InvalidArgument.field("date_of_death", "is before the date of birth")
    return (
        participant.social_insurance_number,
        participant.personal_id_number,
        participant.full_name,
        participant.date_of_birth,
        participant.compulsory_contribution_months,
        participant.voluntary_contribution_months,
        int(participant.pensioner),
        int(participant.receives_monthly_occupational_allowance),
        int(participant.receives_monthly_social_allowance),
        participant.pension_stopped_from,
        participant.date_of_death,
    )


SeedRows = Callable[[pb.SeedParticipantsRequest, int], list[tuple[object, ...]]]


def seed_rows(
    batch: pb.SeedParticipantsRequest, index: int, latest: dt.date
) -> list[tuple[object, ...]]:
    """Check one batch beyond the contract and turn it into rows; needs no store."""
    rows = []
    # Seeding loads hundreds of thousands of rows: the position is spelled
    # out only for the one that is refused.
    for i, participant in enumerate(batch.participants):
        try:
            rows.append(seed_row(participant, latest))
        except InvalidArgument as error:
            raise InvalidArgument(
                [
                    FieldViolation(f"batch[{index}].participants[{i}].{v.field}", v.description)
                    for v in error.violations
                ]
            ) from None
    return rows


class InsuranceRegistry:
    def __init__(
        self,
        store: InsuranceStore,
        base_salaries: BaseSalaryTable,
        today: Callable[[], dt.date] = dt.date.today,
        latest: Callable[[], dt.date] | None = None,
    ) -> None:
        self.store = store
        self.base_salaries = base_salaries
        self.today = today
        # The latest day a date recording the past may name (clock tolerance).
        self.latest = latest or today

    def _requested_on(self, value: str) -> dt.date:
        """The day of the request: today when empty; a day that has not come
        yet is refused, or a card or allowance would be dated in the future."""
        return past_day("requested_on", value, self.latest()) if value else self.today()

    def _require_same_death(self, participant: Row, date_of_death: str) -> None:
        """A person dies once: a second, different date is a conflict to resolve
        upstream (civil status), not something to overwrite here."""
        recorded = participant["date_of_death"]
        if recorded and recorded != date_of_death:
            raise FailedPrecondition(
                f"the registry recorded the death on {recorded}, not {date_of_death}",
                reason="DEATH_DATE_CONFLICT",
            )

    def issue_child_health_insurance_card(
        self, request: pb.IssueChildHealthInsuranceCardRequest
    ) -> pb.IssueChildHealthInsuranceCardResponse:
        requested_on = self._requested_on(request.requested_on)
        _check_id("personal_id_number", request.personal_id_number)
        if not is_province(request.province_code):
            raise InvalidArgument.field(
                "province_code", f"{request.province_code} is not a province code"
            )
        born = _not_after(
            "date_of_birth", request.date_of_birth, requested_on, "the day of the request"
        )
        participant = self.store.participant(request.personal_id_number)
        if participant is not None:
            # One card per child: a repeat declaration gets the card it already has.
            card = self.store.card(participant["social_insurance_number"])
            if card is not None:
                return pb.IssueChildHealthInsuranceCardResponse(card=to_card(card))
            if participant["date_of_birth"] != request.date_of_birth:
                raise FailedPrecondition(
                    f"the registry has this child born on {participant['date_of_birth']}, "
                    f"not {request.date_of_birth}",
                    reason="DATE_OF_BIRTH_MISMATCH",
                )
            if participant["date_of_death"]:
                raise FailedPrecondition(
                    f"the child died on {participant['date_of_death']}",
                    reason="PARTICIPANT_DECEASED",
                )
        try:
            valid_to = child_card.valid_to(born)
        except ValueError:
            # A birth near year 9999: the card would end past the last date there is.
            raise InvalidArgument.field(
                "date_of_birth", f"{born.isoformat()} is too late for a card's validity to end"
            ) from None
        # Law on Health Insurance art. 12(3): the State pays for children under
        # 6, and one who turns 6 by 30 September stays covered until then
        # (Law 46/2014/QH13 art. 1(10)), so the card is refused only after the
        # last day it could be valid.
        if not child_card.is_entitled(born, requested_on):
            raise FailedPrecondition(
                f"the child's card entitlement ended on {valid_to.isoformat()}, "
                f"before the request on {requested_on.isoformat()}",
                reason="CHILD_TOO_OLD",
            )
        if participant is None:
            number = self.store.new_social_insurance_number(request.province_code[-2:])
            self.store.insert_child(
                number, request.personal_id_number, request.full_name, request.date_of_birth
            )
        else:
            # Someone already insured keeps their number for life.
            number = participant["social_insurance_number"]
            self.store.hold_living(number)
        self.store.insert_card(
            (
                number,
                child_card.card_code(request.province_code, number),
                child_card.BENEFICIARY_GROUP,
                child_card.BENEFIT_LEVEL,
                born.isoformat(),
                valid_to.isoformat(),
                request.initial_facility_code,
                pb.CARD_STATUS_ACTIVE,
                "",
                requested_on.isoformat(),
            )
        )
        card = self.store.card(number)
        assert card is not None
        return pb.IssueChildHealthInsuranceCardResponse(card=to_card(card))

    def settle_funeral_allowance(
        self, request: pb.SettleFuneralAllowanceRequest
    ) -> pb.SettleFuneralAllowanceResponse:
        requested_on = self._requested_on(request.requested_on)
        _check_id("personal_id_number", request.personal_id_number)
        _check_id("payee.personal_id_number", request.payee.personal_id_number)
        died = _not_after(
            "date_of_death", request.date_of_death, requested_on, "the day of the request"
        )
        settled = self.store.funeral_allowance(request.personal_id_number)
        if settled is not None:
            raise AlreadyExists(
                "the funeral allowance for this person was already settled: "
                f"{settled['payment_reference']}",
                reason="ALLOWANCE_ALREADY_SETTLED",
            )
        participant = self.store.participant(request.personal_id_number)
        if participant is not None:
            self._require_same_death(participant, request.date_of_death)
        decision = funeral_allowance.eligibility(
            to_history(participant) if participant is not None else None,
            date_of_death=died,
            work_accident_or_occupational_disease=request.work_accident_or_occupational_disease,
        )
        if not decision.eligible:
            # Not an error: the dossier completes and says why nothing is paid.
            return pb.SettleFuneralAllowanceResponse(
                allowance=pb.FuneralAllowance(
                    personal_id_number=request.personal_id_number,
                    eligible=False,
                    reason=decision.reason,
                )
            )
        base_salary = self.base_salaries.in_force_on(died)
        if base_salary is None:
            raise FailedPrecondition(
                f"no base salary is known for {died.isoformat()}, so no amount can be computed",
                reason="NO_BASE_SALARY",
            )
        serial = self.store.next_serial(f"funeral_allowance:{requested_on.year}")
        payee = request.payee
        self.store.insert_funeral_allowance(
            (
                request.personal_id_number,
                request.date_of_death,
                funeral_allowance.amount_vnd(base_salary),
                base_salary,
                decision.reason,
                f"MT-{requested_on.year}-{serial:08d}",
                requested_on.isoformat(),
                payee.full_name,
                payee.personal_id_number,
                payee.payment_method,
                payee.bank_account,
                payee.bank_name,
            )
        )
        row = self.store.funeral_allowance(request.personal_id_number)
        assert row is not None
        return pb.SettleFuneralAllowanceResponse(allowance=to_allowance(row))

    def end_coverage(self, request: pb.EndCoverageRequest) -> pb.EndCoverageResponse:
        _check_id("personal_id_number", request.personal_id_number)
        died = past_day("date_of_death", request.date_of_death, self.latest())
        participant = self.store.participant(request.personal_id_number)
        if participant is None:
            return pb.EndCoverageResponse(participant_found=False)
        self._require_same_death(participant, request.date_of_death)
        number = participant["social_insurance_number"]
        # Decree 63/2024/ND-CP, group 2: the pension stops from the month after the death.
        stopped_from = first_day_of_next_month(died).isoformat() if participant["pensioner"] else ""
        # Writing the same date again changes nothing, so a repeat with a new
        # request id gets the same answer.
        self.store.record_death(number, request.date_of_death, stopped_from)
        card_ended_on = ""
        if self.store.card(number) is not None:
            self.store.end_card(number, pb.CARD_STATUS_ENDED, request.date_of_death)
            card_ended_on = request.date_of_death
        return pb.EndCoverageResponse(
            participant_found=True,
            card_ended_on=card_ended_on,
            pension_stopped_from=stopped_from,
        )

    def get_participant(self, request: pb.GetParticipantRequest) -> pb.GetParticipantResponse:
        row = self.store.participant(request.personal_id_number)
        if row is None:
            raise NotFound(
                "no insurance participant has this personal ID number",
                reason="PARTICIPANT_NOT_FOUND",
            )
        card = self.store.card(row["social_insurance_number"])
        return pb.GetParticipantResponse(participant=to_participant(row, card))

    def check_coverage(self, request: pb.CheckCoverageRequest) -> pb.CheckCoverageResponse:
        """A hospital's lookup: not covered is an answer with the reason, since
        the hospital must decide at the counter whether the care is paid by
        insurance; only a person the registry does not know is an error."""
        _check_id("personal_id_number", request.personal_id_number)
        # A past day is a claim being checked; a day to come is not known yet.
        day = (
            past_day("on_date", request.on_date, self.latest()) if request.on_date else self.today()
        )
        row = self.store.participant(request.personal_id_number)
        if row is None:
            raise NotFound(
                "no insurance participant has this personal ID number",
                reason="PARTICIPANT_NOT_FOUND",
            )
        card = self.store.card(row["social_insurance_number"])
        why = coverage.not_covered(_validity(card) if card is not None else None, day)
        return pb.CheckCoverageResponse(
            covered=why is None,
            not_covered_reason=(
                pb.NotCoveredReason.Value(f"NOT_COVERED_REASON_{why.value}")
                if why is not None
                else pb.NOT_COVERED_REASON_UNSPECIFIED
            ),
            on_date=day.isoformat(),
            card=to_card(card) if card is not None else None,
        )

    def seed(self, batches: list[list[tuple[object, ...]]]) -> int:
        """Load a checked stream (check_stream) in the unit of work; returns
        participants added. Raising rolls the whole stream back."""
        added = self.store.seed(row for rows in batches for row in rows)
        # Fewer rows added than sent: some numbers were already stored. Only
        # then look whether they are replays or someone else's, so a clean
        # seed pays nothing.
        if added != sum(len(rows) for rows in batches):
            conflict = self.stored_conflict(batches)
            if conflict is not None:
                raise conflict
        return added

    @staticmethod
    def check_stream(batches: list[list[tuple[object, ...]]]) -> None:
        """One participant per social insurance number (one number per person
        for life; since Decision 1666/QD-BHXH it is all a card shows) and per
        personal ID number within the stream: a second record under a number
        would otherwise be dropped without a word."""
        for column, field, what in (
            (0, "social_insurance_number", "social insurance number"),
            (1, "personal_id_number", "personal ID number"),
        ):
            first: dict[object, tuple[int, int]] = {}
            for index, rows in enumerate(batches):
                for i, row in enumerate(rows):
                    claimed = first.setdefault(row[column], (index, i))
                    if claimed != (index, i):
                        raise InvalidArgument.field(
                            f"batch[{index}].participants[{i}].{field}",
                            f"is also the {what} of batch[{claimed[0]}].participants[{claimed[1]}]",
                        )

    def stored_conflict(self, batches: list[list[tuple[object, ...]]]) -> AlreadyExists | None:
        """The first seeded participant whose social insurance number the
        registry holds for another person, or who already holds another
        number; None if there is none. The same person with the same number
        is a replay, left as it was."""
        holders = self.store.holders([str(row[0]) for rows in batches for row in rows])
        numbers_held = self.store.numbers_held([str(row[1]) for rows in batches for row in rows])
        for index, rows in enumerate(batches):
            for i, row in enumerate(rows):
                number, personal_id = str(row[0]), str(row[1])
                holder = holders.get(number)
                if holder is not None and holder != personal_id:
                    return AlreadyExists(
                        f"batch[{index}].participants[{i}].social_insurance_number: "
                        "the registry already gave this number to another person",
                        reason="SOCIAL_INSURANCE_NUMBER_TAKEN",
                    )
                held = numbers_held.get(personal_id)
                if held is not None and held != number:
                    return AlreadyExists(
                        f"batch[{index}].participants[{i}].personal_id_number: "
                        "this person already has another social insurance number "
                        "(one number per person for life)",
                        reason="PARTICIPANT_HAS_ANOTHER_NUMBER",
                    )
        return None
