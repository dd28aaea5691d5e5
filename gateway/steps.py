"""What each step does at its agency. One small function per step, each taking
the dossier snapshot from its command and returning what happened; which
group runs it, at which agency, is said once, in gateway/procedures.py.

Agency request ids are `<dossier id>/<step>[/<call>]`, and every date sent is
read from the snapshot (the day the step started), so a redelivered command
sends the very same request and the agency answers it from its idempotency
ledger instead of acting twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from google.protobuf.message import Message

from common.clock import VIETNAM
from gateway.agencies import Agencies, AgencyRefusalError
from lienthong.events.v1 import events_pb2 as ev
from lienthong.gateway.v1 import gateway_pb2 as pb
from lienthong.health.v1 import health_pb2
from lienthong.insurance.v1 import insurance_pb2
from lienthong.population.v1 import population_pb2


@dataclass
class StepDone:
    kind: ev.StepOutcomeKind.ValueType
    outcome: str
    reason: str = ""
    # The step's part of its group's result (a BirthResult, a DeathResult):
    # the executor sends it in the outcome, the saga merges it in.
    result: Message | None = None


def succeeded(outcome: str, result: Message | None = None) -> StepDone:
    return StepDone(ev.STEP_OUTCOME_KIND_SUCCEEDED, outcome, result=result)


def skipped(outcome: str, reason: str) -> StepDone:
    return StepDone(ev.STEP_OUTCOME_KIND_SKIPPED, outcome, reason)


@dataclass(frozen=True)
class StepInput:
    dossier: pb.Dossier
    step: str

    def request_id(self, call: str = "") -> str:
        return f"{self.dossier.dossier_id}/{self.step}" + (f"/{call}" if call else "")

    @property
    def day(self) -> str:
        """The local (Vietnam) day the step started, as YYYY-MM-DD."""
        started = self.dossier.timeline[-1].started_at.ToDatetime(dt.UTC)
        return started.astimezone(VIETNAM).date().isoformat()

    @property
    def correlation_id(self) -> str:
        return self.dossier.dossier_id


Handler = Callable[[Agencies, StepInput], Awaitable[StepDone]]


# --- Group 1: birth -------------------------------------------------------


async def verify_birth_certificate(agencies: Agencies, step: StepInput) -> StepDone:
    form = step.dossier.birth_declaration
    answer = await agencies.call(
        "health",
        agencies.health.VerifyBirthCertificate,
        health_pb2.VerifyBirthCertificateRequest(
            certificate_number=form.birth_certificate_number,
            mother_id_number=form.mother_id_number,
        ),
        step.correlation_id,
    )
    certificate = answer.certificate
    if (certificate.child_sex, certificate.date_of_birth) != (
        form.child_sex,
        form.child_date_of_birth,
    ):
        raise AgencyRefusalError(
            "health",
            "BIRTH_DETAILS_MISMATCH",
            "the child's sex or date of birth differs from the birth certificate",
        )
    await _check_initial_facility(agencies, step)
    return succeeded(f"birth certificate {certificate.certificate_number} verified")


async def _check_initial_facility(agencies: Agencies, step: StepInput) -> None:
    """The initial health-care facility chosen for the child's card (Form 01)
    is a code the hospital registry owns, so the health step checks it there,
    before any agency acts on the dossier: VSS would otherwise record a card
    naming a facility that does not exist."""
    code = step.dossier.birth_declaration.initial_facility_code
    try:
        await agencies.call(
            "health",
            agencies.health.GetFacility,
            health_pb2.GetFacilityRequest(code=code),
            step.correlation_id,
        )
    except AgencyRefusalError as refusal:
        if refusal.reason != "FACILITY_NOT_FOUND":
            raise
        raise AgencyRefusalError(
            "health",
            refusal.reason,
            f"the initial health-care facility chosen for the card ({code}) "
            "is not a known medical facility",
        ) from refusal


async def register_birth(agencies: Agencies, step: StepInput) -> StepDone:
    form = step.dossier.birth_declaration
    answer = await agencies.call(
        "population",
        agencies.population.RegisterBirth,
        population_pb2.RegisterBirthRequest(
            request_id=step.request_id(),
            birth_certificate_number=form.birth_certificate_number,
            child=population_pb2.ChildParticulars(
                full_name=form.child_full_name,
                sex=form.child_sex,
                date_of_birth=form.child_date_of_birth,
                place_of_birth=form.place_of_birth,
                ethnicity=form.ethnicity,
                nationality=form.nationality,
            ),
            mother_id_number=form.mother_id_number,
            father_id_number=form.father_id_number,
            registration_province_code=form.registration_province_code,
            registered_on=step.day,
        ),
        step.correlation_id,
    )
    number = answer.citizen.personal_id_number
    return succeeded(
        f"birth registered; personal ID number {number}",
        pb.BirthResult(personal_id_number=number),
    )


async def _parent_household(agencies: Agencies, step: StepInput) -> str:
    form = step.dossier.birth_declaration
    if form.residence_household_id:
        return form.residence_household_id
    # Normally the child lives where a parent's permanent residence is.
    for parent in (form.mother_id_number, form.father_id_number):
        if not parent:
            continue
        answer = await agencies.call(
            "population",
            agencies.population.GetCitizen,
            population_pb2.GetCitizenRequest(personal_id_number=parent),
            step.correlation_id,
        )
        if answer.citizen.household_id:
            return answer.citizen.household_id
    raise AgencyRefusalError(
        "population",
        "NO_HOUSEHOLD_FOR_CHILD",
        "neither parent has a permanent residence and no household was declared",
    )


async def register_permanent_residence(agencies: Agencies, step: StepInput) -> StepDone:
    household_id = await _parent_household(agencies, step)
    answer = await agencies.call(
        "population",
        agencies.population.RegisterPermanentResidence,
        population_pb2.RegisterPermanentResidenceRequest(
            request_id=step.request_id(),
            personal_id_number=step.dossier.birth_result.personal_id_number,
            household_id=household_id,
            registered_on=step.day,
        ),
        step.correlation_id,
    )
    address = answer.household.address
    return succeeded(
        f"permanent residence registered at {address}",
        pb.BirthResult(
            household_id=household_id,
            residence_address=address,
            residence_province_code=answer.household.province_code,
        ),
    )


async def issue_health_insurance_card(agencies: Agencies, step: StepInput) -> StepDone:
    form = step.dossier.birth_declaration
    # The card is managed by the VSS office of the province where the child's
    # permanent residence is registered, and its code carries that province
    # (Decision 1351/QD-BHXH), not the province that registered the birth. A
    # dossier begun by an older gateway has no residence province recorded.
    province = step.dossier.birth_result.residence_province_code or form.registration_province_code
    answer = await agencies.call(
        "insurance",
        agencies.insurance.IssueChildHealthInsuranceCard,
        insurance_pb2.IssueChildHealthInsuranceCardRequest(
            request_id=step.request_id(),
            personal_id_number=step.dossier.birth_result.personal_id_number,
            full_name=form.child_full_name,
            date_of_birth=form.child_date_of_birth,
            sex=form.child_sex,
            province_code=province,
            initial_facility_code=form.initial_facility_code,
            requested_on=step.day,
        ),
        step.correlation_id,
    )
    card = answer.card
    return succeeded(
        f"health insurance card {card.social_insurance_number} valid "
        f"{card.valid_from} to {card.valid_to}",
        pb.BirthResult(card=card),
    )


# --- Group 2: death -------------------------------------------------------


async def _death_notice(agencies: Agencies, step: StepInput) -> health_pb2.DeathNotice | None:
    form = step.dossier.death_declaration
    if not form.death_notice_number:
        return None
    answer = await agencies.call(
        "health",
        agencies.health.VerifyDeathNotice,
        health_pb2.VerifyDeathNoticeRequest(
            notice_number=form.death_notice_number, deceased_id_number=form.deceased_id_number
        ),
        step.correlation_id,
    )
    return answer.notice


async def verify_death_notice(agencies: Agencies, step: StepInput) -> StepDone:
    notice = await _death_notice(agencies, step)
    if notice is None:
        return skipped("no death notice declared (death outside a facility)", "NO_DEATH_NOTICE")
    if notice.date_of_death != step.dossier.death_declaration.date_of_death:
        raise AgencyRefusalError(
            "health",
            "DEATH_DETAILS_MISMATCH",
            "the date of death differs from the death notice",
        )
    return succeeded(f"death notice {notice.notice_number} verified")


async def register_death(agencies: Agencies, step: StepInput) -> StepDone:
    form = step.dossier.death_declaration
    submitted = step.dossier.submitted_at.ToDatetime(dt.UTC).astimezone(VIETNAM).date()
    answer = await agencies.call(
        "population",
        agencies.population.RegisterDeath,
        population_pb2.RegisterDeathRequest(
            request_id=step.request_id(),
            personal_id_number=form.deceased_id_number,
            date_of_death=form.date_of_death,
            time_of_death=form.time_of_death,
            place_of_death=form.place_of_death,
            death_notice_number=form.death_notice_number,
            declared_on=submitted.isoformat(),
        ),
        step.correlation_id,
    )
    registration = answer.registration
    late = " (declared late)" if registration.declared_late else ""
    return succeeded(
        f"death registered on {registration.registered_on}{late}",
        pb.DeathResult(
            death_registered_on=registration.registered_on,
            declared_late=registration.declared_late,
        ),
    )


async def remove_permanent_residence(agencies: Agencies, step: StepInput) -> StepDone:
    try:
        answer = await agencies.call(
            "population",
            agencies.population.RemovePermanentResidence,
            population_pb2.RemovePermanentResidenceRequest(
                request_id=step.request_id(),
                personal_id_number=step.dossier.death_declaration.deceased_id_number,
                reason=population_pb2.REMOVAL_REASON_DECEASED,
                removed_on=step.day,
            ),
            step.correlation_id,
        )
    except AgencyRefusalError as refusal:
        if refusal.reason == "NO_PERMANENT_RESIDENCE":
            return skipped("the deceased had no permanent residence to remove", refusal.reason)
        raise
    return succeeded(
        f"permanent residence removed from household {answer.household_id}",
        pb.DeathResult(residence_removed_from=answer.household_id),
    )


async def settle_insurance(agencies: Agencies, step: StepInput) -> StepDone:
    """End the card and pension (VSS, Decision 1449/QD-BHXH), then settle the
    funeral allowance when claimed. 'Not eligible' completes the dossier."""
    form = step.dossier.death_declaration
    coverage = await agencies.call(
        "insurance",
        agencies.insurance.EndCoverage,
        insurance_pb2.EndCoverageRequest(
            request_id=step.request_id("end-coverage"),
            personal_id_number=form.deceased_id_number,
            date_of_death=form.date_of_death,
        ),
        step.correlation_id,
    )
    result = pb.DeathResult(
        card_ended=bool(coverage.card_ended_on),
        pension_stopped_from=coverage.pension_stopped_from,
    )
    parts = ["card ended" if coverage.card_ended_on else "no card to end"]
    if coverage.pension_stopped_from:
        parts.append(f"pension stopped from {coverage.pension_stopped_from}")
    if form.claim_funeral_allowance:
        notice = await _death_notice(agencies, step)
        answer = await agencies.call(
            "insurance",
            agencies.insurance.SettleFuneralAllowance,
            insurance_pb2.SettleFuneralAllowanceRequest(
                request_id=step.request_id("funeral-allowance"),
                personal_id_number=form.deceased_id_number,
                date_of_death=form.date_of_death,
                work_accident_or_occupational_disease=bool(
                    notice and notice.work_accident_or_occupational_disease
                ),
                payee=form.payee,
                requested_on=step.day,
            ),
            step.correlation_id,
        )
        allowance = answer.allowance
        result.funeral_allowance.CopyFrom(allowance)
        parts.append(
            f"funeral allowance {allowance.amount_vnd:,} VND"
            if allowance.eligible
            else f"not eligible for the funeral allowance: {allowance.reason}"
        )
    else:
        parts.append("funeral allowance not claimed")
    return succeeded("; ".join(parts), result)
