"""The saga state machine, without a broker: every transition is pure."""

from __future__ import annotations

import datetime as dt

from gateway import saga
from gateway.procedures import BIRTH, DEATH
from lienthong.common.v1.common_pb2 import SEX_FEMALE
from lienthong.events.v1 import events_pb2 as ev
from lienthong.gateway.v1 import gateway_pb2 as pb
from lienthong.insurance.v1.insurance_pb2 import Payee

# 09:00 in Hà Nội (UTC+7), before the 15:00 cut-off.
MONDAY = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)


def birth_dossier(**form: object) -> pb.Dossier:
    declaration = pb.BirthDeclaration(
        declarant=pb.Declarant(
            personal_id_number="001190123456", full_name="Lan", relationship="mother"
        ),
        child_full_name="An",
        child_sex=SEX_FEMALE,
        child_date_of_birth="2026-11-20",
        place_of_birth="Hà Nội",
        ethnicity="Kinh",
        nationality="Việt Nam",
        birth_certificate_number="GCS-01001-0000001",
        mother_id_number="001190123456",
        registration_province_code="001",
        initial_facility_code="01001",
        delivery_method=pb.DELIVERY_METHOD_ONLINE,
    )
    for name, value in form.items():
        setattr(declaration, name, value)
    return pb.Dossier(
        dossier_id="birth-1",
        kind=pb.DOSSIER_KIND_BIRTH,
        state=pb.DOSSIER_STATE_RECEIVED,
        submitted_at=saga.timestamp(MONDAY),
        version=1,
        birth_declaration=declaration,
    )


def outcome(
    step: str, kind: ev.StepOutcomeKind.ValueType = ev.STEP_OUTCOME_KIND_SUCCEEDED, **fields: object
) -> ev.StepOutcome:
    return ev.StepOutcome(dossier_id="birth-1", step=step, kind=kind, **fields)  # type: ignore[arg-type]


def test_complete_birth_dossier_runs_every_step_in_order_then_completes() -> None:
    dossier, commands = saga.on_submitted(
        None, ev.DossierSubmitted(dossier=birth_dossier()), MONDAY
    )
    assert dossier is not None
    assert dossier.state == pb.DOSSIER_STATE_IN_PROGRESS
    # 3 working days from Monday: due by the end of Thursday.
    assert dossier.due_at.ToDatetime(dt.UTC).date() == dt.date(2026, 11, 26)
    agency_steps = [plan.name for plan in BIRTH.steps if plan.agency != "gateway"]
    for name in agency_steps:
        assert [c.step for c in commands] == [name]
        dossier, commands = saga.on_step_outcome(dossier, outcome(name), MONDAY)
        assert dossier is not None
    assert commands == []
    assert dossier.state == pb.DOSSIER_STATE_COMPLETED
    assert [s.name for s in dossier.timeline] == [plan.name for plan in BIRTH.steps]
    # The gateway's own last step is done by the saga, with no command.
    delivered = dossier.timeline[-1]
    assert (delivered.name, delivered.state) == ("deliver_result", pb.STEP_STATE_SUCCEEDED)
    assert delivered.outcome == "result delivered to the declarant online (portal / VNeID)"
    assert not dossier.deadline_breached


def test_rejection_stops_the_saga_with_agency_and_reason() -> None:
    dossier, _ = saga.on_submitted(None, ev.DossierSubmitted(dossier=birth_dossier()), MONDAY)
    dossier, commands = saga.on_step_outcome(
        dossier,
        outcome(
            BIRTH.steps[0].name,
            ev.STEP_OUTCOME_KIND_REJECTED,
            agency="health",
            reason="MOTHER_ID_MISMATCH",
            message="the mother's ID does not match",
        ),
        MONDAY,
    )
    assert dossier is not None and not commands
    assert dossier.state == pb.DOSSIER_STATE_REJECTED
    assert dossier.rejection.agency == "health"
    assert dossier.rejection.reason == "MOTHER_ID_MISMATCH"
    assert dossier.timeline[-1].state == pb.STEP_STATE_REJECTED


def test_repeated_or_stale_outcomes_change_nothing() -> None:
    dossier, _ = saga.on_submitted(None, ev.DossierSubmitted(dossier=birth_dossier()), MONDAY)
    advanced, _ = saga.on_step_outcome(dossier, outcome(BIRTH.steps[0].name), MONDAY)
    again, commands = saga.on_step_outcome(advanced, outcome(BIRTH.steps[0].name), MONDAY)
    assert again is None and commands == []
    resubmitted, commands = saga.on_submitted(advanced, ev.DossierSubmitted(), MONDAY)
    assert resubmitted is None and commands == []


def test_missing_fields_ask_for_a_supplement_within_seven_working_days() -> None:
    dossier, commands = saga.on_submitted(
        None,
        ev.DossierSubmitted(dossier=birth_dossier(ethnicity="", initial_facility_code="")),
        MONDAY,
    )
    assert dossier is not None and commands == []
    assert dossier.state == pb.DOSSIER_STATE_NEEDS_SUPPLEMENT
    assert list(dossier.supplement.missing_fields) == ["ethnicity", "initial_facility_code"]
    # 7 working days from Monday 23 Nov 2026: Wednesday 2 December.
    assert dossier.supplement.due_at.ToDatetime(dt.UTC).date() == dt.date(2026, 12, 2)

    partial = pb.BirthDeclaration(ethnicity="Kinh")
    still, _ = saga.on_supplemented(
        dossier, ev.DossierSupplemented(birth_declaration=partial), MONDAY
    )
    assert still is not None
    assert list(still.supplement.missing_fields) == ["initial_facility_code"]
    assert still.birth_declaration.child_full_name == "An"  # the rest stays as declared

    done, commands = saga.on_supplemented(
        still,
        ev.DossierSupplemented(
            birth_declaration=pb.BirthDeclaration(initial_facility_code="01001")
        ),
        MONDAY,
    )
    assert done is not None and done.state == pb.DOSSIER_STATE_IN_PROGRESS
    assert [c.step for c in commands] == [BIRTH.steps[0].name]


def test_supplement_window_expiry_rejects_only_after_the_due_date() -> None:
    dossier, _ = saga.on_submitted(
        None, ev.DossierSubmitted(dossier=birth_dossier(ethnicity="")), MONDAY
    )
    early, _ = saga.on_supplement_window_expired(
        dossier, ev.SupplementWindowExpired(), MONDAY + dt.timedelta(days=3)
    )
    assert early is None
    late, _ = saga.on_supplement_window_expired(
        dossier, ev.SupplementWindowExpired(), MONDAY + dt.timedelta(days=10)
    )
    assert late is not None and late.state == pb.DOSSIER_STATE_REJECTED
    assert late.rejection.reason == "SUPPLEMENT_NOT_RECEIVED"


def test_breach_is_visible_while_open_and_kept_when_finished_late() -> None:
    dossier, _ = saga.on_submitted(None, ev.DossierSubmitted(dossier=birth_dossier()), MONDAY)
    assert dossier is not None
    assert not saga.breached(dossier, MONDAY + dt.timedelta(days=2))
    assert saga.breached(dossier, MONDAY + dt.timedelta(days=4))
    for plan in BIRTH.steps:
        if plan.agency != "gateway":
            dossier, _ = saga.on_step_outcome(
                dossier, outcome(plan.name), MONDAY + dt.timedelta(days=5)
            )
    assert dossier is not None and dossier.state == pb.DOSSIER_STATE_COMPLETED
    assert dossier.deadline_breached


def test_death_group_steps() -> None:
    assert [s.name for s in DEATH.steps] == [
        "verify_death_notice",
        "register_death",
        "remove_permanent_residence",
        "settle_insurance",
        "deliver_result",
    ]


# --- Per-procedure results (Decree 63/2024/ND-CP: each procedure its own result) ---


def run_birth(*outcomes: ev.StepOutcome) -> tuple[pb.Dossier, list[ev.StepCommand]]:
    dossier, commands = saga.on_submitted(
        None, ev.DossierSubmitted(dossier=birth_dossier()), MONDAY
    )
    for next_outcome in outcomes:
        assert dossier is not None
        assert [c.step for c in commands] == [next_outcome.step]
        dossier, commands = saga.on_step_outcome(dossier, next_outcome, MONDAY)
    assert dossier is not None
    return dossier, commands


def refusal(step: str, agency: str, reason: str) -> ev.StepOutcome:
    return outcome(
        step, ev.STEP_OUTCOME_KIND_REJECTED, agency=agency, reason=reason, message=f"{reason} words"
    )


def results(dossier: pb.Dossier) -> list[tuple[str, str, str, str]]:
    return [
        (p.procedure, p.agency, pb.ProcedureState.Name(p.state), p.reason)
        for p in dossier.procedures
    ]


def test_card_refused_after_the_birth_took_effect_keeps_the_earlier_results() -> None:
    dossier, commands = run_birth(
        outcome("verify_birth_certificate"),
        outcome("register_birth", outcome="personal ID number 001326000001"),
        outcome("register_permanent_residence"),
        refusal("issue_health_insurance_card", "insurance", "CHILD_TOO_OLD"),
    )
    assert commands == []
    assert dossier.state == pb.DOSSIER_STATE_COMPLETED_WITH_REFUSALS
    assert results(dossier) == [
        ("birth_registration", "population", "PROCEDURE_STATE_DONE", ""),
        ("permanent_residence", "population", "PROCEDURE_STATE_DONE", ""),
        ("health_insurance_card", "insurance", "PROCEDURE_STATE_REFUSED", "CHILD_TOO_OLD"),
    ]
    assert dossier.procedures[0].outcome == "personal ID number 001326000001"
    assert dossier.procedures[2].outcome == "CHILD_TOO_OLD words"
    assert (dossier.rejection.agency, dossier.rejection.reason) == ("insurance", "CHILD_TOO_OLD")
    # The result is still delivered, and says what was done and what was refused.
    delivered = dossier.timeline[-1]
    assert (delivered.name, delivered.state) == ("deliver_result", pb.STEP_STATE_SUCCEEDED)
    assert "done: birth_registration, permanent_residence" in delivered.outcome
    assert "health_insurance_card refused by insurance (CHILD_TOO_OLD" in delivered.outcome
    assert dossier.HasField("finished_at")


def test_a_procedure_that_needs_a_refused_one_is_not_run() -> None:
    dossier, commands = run_birth(
        outcome("verify_birth_certificate"),
        outcome("register_birth"),
        refusal("register_permanent_residence", "population", "NO_HOUSEHOLD_FOR_CHILD"),
    )
    # No card without a residence whose province the card carries: no command for it.
    assert commands == []
    assert dossier.state == pb.DOSSIER_STATE_COMPLETED_WITH_REFUSALS
    card_step = dossier.timeline[3]
    assert (card_step.name, card_step.state) == (
        "issue_health_insurance_card",
        pb.STEP_STATE_NOT_RUN,
    )
    assert results(dossier)[1:] == [
        ("permanent_residence", "population", "PROCEDURE_STATE_REFUSED", "NO_HOUSEHOLD_FOR_CHILD"),
        ("health_insurance_card", "insurance", "PROCEDURE_STATE_SKIPPED", "PREREQUISITE_REFUSED"),
    ]


def test_refused_before_anything_took_effect_is_rejected_and_nothing_runs() -> None:
    dossier, commands = run_birth(
        outcome("verify_birth_certificate"),
        refusal("register_birth", "population", "MOTHER_NOT_FOUND"),
    )
    assert commands == []
    assert dossier.state == pb.DOSSIER_STATE_REJECTED
    assert [s.name for s in dossier.timeline] == ["verify_birth_certificate", "register_birth"]
    assert results(dossier) == [
        ("birth_registration", "population", "PROCEDURE_STATE_REFUSED", "MOTHER_NOT_FOUND"),
        ("permanent_residence", "population", "PROCEDURE_STATE_SKIPPED", "MOTHER_NOT_FOUND"),
        ("health_insurance_card", "insurance", "PROCEDURE_STATE_SKIPPED", "MOTHER_NOT_FOUND"),
    ]


def test_procedures_are_pending_until_decided() -> None:
    dossier, _ = run_birth(outcome("verify_birth_certificate"))
    assert [pb.ProcedureState.Name(p.state) for p in dossier.procedures] == [
        "PROCEDURE_STATE_PENDING"
    ] * 3


def death_dossier(claim: bool) -> pb.Dossier:
    return pb.Dossier(
        dossier_id="birth-1",
        kind=pb.DOSSIER_KIND_DEATH,
        state=pb.DOSSIER_STATE_RECEIVED,
        submitted_at=saga.timestamp(MONDAY),
        version=1,
        death_declaration=pb.DeathDeclaration(
            declarant=pb.Declarant(
                personal_id_number="001190123456", full_name="Lan", relationship="child"
            ),
            deceased_id_number="001150000123",
            date_of_death="2026-11-20",
            place_of_death="Hà Nội",
            claim_funeral_allowance=claim,
            payee=Payee(full_name="Lan", personal_id_number="001190123456") if claim else None,
            delivery_method=pb.DELIVERY_METHOD_ONLINE,
        ),
    )


def run_death(claim: bool, *outcomes: ev.StepOutcome) -> tuple[pb.Dossier, list[str]]:
    dossier, commands = saga.on_submitted(
        None, ev.DossierSubmitted(dossier=death_dossier(claim)), MONDAY
    )
    for next_outcome in outcomes:
        assert dossier is not None
        assert [c.step for c in commands] == [next_outcome.step]
        dossier, commands = saga.on_step_outcome(dossier, next_outcome, MONDAY)
    assert dossier is not None
    return dossier, [c.step for c in commands]


def test_a_refused_residence_removal_does_not_hold_up_the_insurance_settlement() -> None:
    dossier, commands = run_death(
        True,
        outcome("verify_death_notice"),
        outcome("register_death"),
        refusal("remove_permanent_residence", "population", "RESIDENT_ELSEWHERE"),
    )
    # The allowance needs the death registered, not the residence removed.
    assert commands == ["settle_insurance"]
    dossier, commands = run_death(
        True,
        outcome("verify_death_notice"),
        outcome("register_death"),
        refusal("remove_permanent_residence", "population", "RESIDENT_ELSEWHERE"),
        outcome("settle_insurance"),
    )
    assert commands == []
    assert dossier.state == pb.DOSSIER_STATE_COMPLETED_WITH_REFUSALS
    assert results(dossier) == [
        ("death_registration", "population", "PROCEDURE_STATE_DONE", ""),
        ("residence_removal", "population", "PROCEDURE_STATE_REFUSED", "RESIDENT_ELSEWHERE"),
        ("funeral_allowance", "insurance", "PROCEDURE_STATE_DONE", ""),
    ]


def test_an_allowance_not_claimed_is_not_requested() -> None:
    dossier, _ = run_death(
        False,
        outcome("verify_death_notice", ev.STEP_OUTCOME_KIND_SKIPPED, reason="NO_DEATH_NOTICE"),
        outcome("register_death"),
        outcome("remove_permanent_residence"),
        outcome("settle_insurance"),
    )
    assert dossier.state == pb.DOSSIER_STATE_COMPLETED
    assert results(dossier)[2] == (
        "funeral_allowance",
        "insurance",
        "PROCEDURE_STATE_NOT_REQUESTED",
        "",
    )


# --- Time limits (Decree 63/2024/ND-CP; per step as the press reported it) ---


def test_a_dossier_complete_after_15_00_counts_from_the_next_working_day() -> None:
    at_16_00 = MONDAY + dt.timedelta(hours=7)  # 16:00 in Hà Nội
    dossier, _ = saga.on_submitted(None, ev.DossierSubmitted(dossier=birth_dossier()), at_16_00)
    assert dossier is not None
    # From Tuesday: 3 working days end on Friday (Hà Nội's day).
    due = dossier.due_at.ToDatetime(dt.UTC) + dt.timedelta(hours=7)
    assert due.date() == dt.date(2026, 11, 27)


def test_each_step_has_its_own_limit_and_a_late_one_is_marked() -> None:
    dossier, _ = run_birth(outcome("verify_birth_certificate"))
    registration = dossier.timeline[1]
    assert registration.name == "register_birth"
    # A birth is registered the same working day: by the end of Monday in Hà Nội.
    assert registration.due_at.ToDatetime(dt.UTC) == dt.datetime(
        2026, 11, 23, 16, 59, 59, tzinfo=dt.UTC
    )
    assert not dossier.timeline[0].HasField("due_at")  # the hospital's check has none
    tuesday = int((MONDAY + dt.timedelta(days=1)).timestamp() * 1000)
    late, _ = saga.on_step_outcome(
        dossier, outcome("register_birth", finished_at_unix_ms=tuesday), MONDAY
    )
    assert late is not None and late.timeline[1].deadline_breached
    on_time, _ = saga.on_step_outcome(dossier, outcome("register_birth"), MONDAY)
    assert on_time is not None and not on_time.timeline[1].deadline_breached
