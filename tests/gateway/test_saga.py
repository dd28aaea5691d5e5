"""The saga state machine, without a broker: every transition is pure."""

from __future__ import annotations

import datetime as dt

from gateway import saga
from gateway.procedures import BIRTH_STEPS, DEATH_STEPS
from lienthong.common.v1.common_pb2 import SEX_FEMALE
from lienthong.events.v1 import events_pb2 as ev
from lienthong.gateway.v1 import gateway_pb2 as pb

MONDAY = dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC)


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
    agency_steps = [plan.name for plan in BIRTH_STEPS if plan.agency != "gateway"]
    for name in agency_steps:
        assert [c.step for c in commands] == [name]
        dossier, commands = saga.on_step_outcome(dossier, outcome(name), MONDAY)
        assert dossier is not None
    assert commands == []
    assert dossier.state == pb.DOSSIER_STATE_COMPLETED
    assert [s.name for s in dossier.timeline] == [plan.name for plan in BIRTH_STEPS]
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
            BIRTH_STEPS[0].name,
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
    advanced, _ = saga.on_step_outcome(dossier, outcome(BIRTH_STEPS[0].name), MONDAY)
    again, commands = saga.on_step_outcome(advanced, outcome(BIRTH_STEPS[0].name), MONDAY)
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
    assert [c.step for c in commands] == [BIRTH_STEPS[0].name]


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
    for plan in BIRTH_STEPS:
        if plan.agency != "gateway":
            dossier, _ = saga.on_step_outcome(
                dossier, outcome(plan.name), MONDAY + dt.timedelta(days=5)
            )
    assert dossier is not None and dossier.state == pb.DOSSIER_STATE_COMPLETED
    assert dossier.deadline_breached


def test_death_group_steps() -> None:
    assert [s.name for s in DEATH_STEPS] == [
        "verify_death_notice",
        "register_death",
        "remove_permanent_residence",
        "settle_insurance",
        "deliver_result",
    ]
