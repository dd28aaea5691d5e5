"""The saga state machine: pure functions from (dossier, event, now) to the
updated dossier and the step commands to send. No I/O here, so every
transition is unit-tested without a broker and replayed safely.

It knows no procedure kinds: the dossier's group (gateway/procedures.py) says
its steps, its form, its time limit and its result. A dossier of a kind the
table does not hold raises UnknownProcedureError rather than run as another."""

from __future__ import annotations

import datetime as dt

from google.protobuf.timestamp_pb2 import Timestamp

from gateway.procedures import GATEWAY, PROCEDURES, StepPlan
from gateway.time_limits import time_limits
from gateway.working_days import add_working_days, due_by
from lienthong.events.v1 import events_pb2 as ev
from lienthong.gateway.v1 import gateway_pb2 as pb

Transition = tuple[pb.Dossier | None, list[ev.StepCommand]]
TERMINAL = (
    pb.DOSSIER_STATE_COMPLETED,
    pb.DOSSIER_STATE_COMPLETED_WITH_REFUSALS,
    pb.DOSSIER_STATE_REJECTED,
)
# The reason on a step that was not run because one it needs was refused.
PREREQUISITE_REFUSED = "PREREQUISITE_REFUSED"


def timestamp(at: dt.datetime) -> Timestamp:
    ts = Timestamp()
    ts.FromDatetime(at)
    return ts


def _touch(dossier: pb.Dossier, now: dt.datetime) -> None:
    dossier.version += 1
    dossier.updated_at.CopyFrom(timestamp(now))
    del dossier.procedures[:]
    dossier.procedures.extend(procedure_results(dossier))


def _procedure_result(
    dossier: pb.Dossier, plan: StepPlan, step: pb.Step | None
) -> pb.ProcedureResult:
    assert plan.procedure is not None
    result = pb.ProcedureResult(procedure=plan.procedure.name, agency=plan.agency)
    if step is not None and step.state == pb.STEP_STATE_REJECTED:
        result.state = pb.PROCEDURE_STATE_REFUSED
        result.outcome, result.reason = step.outcome, step.reason
    elif not plan.procedure.requested(dossier):
        result.state = pb.PROCEDURE_STATE_NOT_REQUESTED
        result.outcome = f"{plan.procedure.title} not requested"
    elif step is None or step.state == pb.STEP_STATE_RUNNING:
        if dossier.state == pb.DOSSIER_STATE_REJECTED:
            result.state = pb.PROCEDURE_STATE_SKIPPED
            result.reason = dossier.rejection.reason
            result.outcome = f"not run: the dossier was rejected ({dossier.rejection.reason})"
        else:
            result.state = pb.PROCEDURE_STATE_PENDING
    elif step.state == pb.STEP_STATE_SUCCEEDED:
        result.state = pb.PROCEDURE_STATE_DONE
        result.outcome = step.outcome
    else:  # skipped (nothing to do) or not run (a procedure it needs was refused)
        result.state = pb.PROCEDURE_STATE_SKIPPED
        result.outcome, result.reason = step.outcome, step.reason
    return result


def procedure_results(dossier: pb.Dossier) -> list[pb.ProcedureResult]:
    """One result per procedure of the group, read off the timeline (Decree
    63/2024/ND-CP: each procedure has its own result, and a later refusal does
    not undo an earlier one)."""
    steps = {step.name: step for step in dossier.timeline}
    return [
        _procedure_result(dossier, plan, steps.get(plan.name))
        for plan in PROCEDURES.of(dossier).steps
        if plan.procedure is not None
    ]


def _took_effect(dossier: pb.Dossier) -> bool:
    """Whether any procedure of the dossier already took effect."""
    steps = {step.name: step for step in dossier.timeline}
    return any(
        plan.procedure is not None
        and plan.name in steps
        and steps[plan.name].state == pb.STEP_STATE_SUCCEEDED
        for plan in PROCEDURES.of(dossier).steps
    )


def _unmet_need(dossier: pb.Dossier, plan: StepPlan) -> pb.Step | None:
    """The first step this one needs that did not take effect, if any."""
    steps = {step.name: step for step in dossier.timeline}
    for name in plan.needs:
        needed = steps.get(name)
        if needed is None or needed.state not in (pb.STEP_STATE_SUCCEEDED, pb.STEP_STATE_SKIPPED):
            return needed
    return None


def _finish(dossier: pb.Dossier, state: pb.DossierState.ValueType, now: dt.datetime) -> None:
    dossier.state = state
    dossier.finished_at.CopyFrom(timestamp(now))
    dossier.deadline_breached = now > dossier.due_at.ToDatetime(dt.UTC)


def delivery_note(dossier: pb.Dossier) -> str:
    """What the declarant is told: how the result reaches them, and, when a
    procedure was refused, what was done and what was refused, by whom and why."""
    # Every form of the contract says how its result is delivered.
    form = PROCEDURES.of(dossier).form(dossier)
    how = (
        "by public postal service"
        if form.delivery_method == pb.DELIVERY_METHOD_POST
        else "online (portal / VNeID)"
    )
    note = f"result delivered to the declarant {how}"
    results = procedure_results(dossier)
    refused = [r for r in results if r.state == pb.PROCEDURE_STATE_REFUSED]
    if not refused:
        return note
    done = [r.procedure for r in results if r.state == pb.PROCEDURE_STATE_DONE]
    said = "; ".join(
        f"{r.procedure} refused by {r.agency} ({r.reason}: {r.outcome})" for r in refused
    )
    return f"{note}: done: {', '.join(done) or 'nothing'}; {said}"


def _start_next_step(dossier: pb.Dossier, now: dt.datetime) -> list[ev.StepCommand]:
    """Start the first step not yet in the timeline, or finish the dossier:
    COMPLETED, or COMPLETED_WITH_REFUSALS when a procedure was refused."""
    plans = PROCEDURES.of(dossier).steps
    done = len(dossier.timeline)
    if done == len(plans):
        refused = any(step.state == pb.STEP_STATE_REJECTED for step in dossier.timeline)
        state = pb.DOSSIER_STATE_COMPLETED_WITH_REFUSALS if refused else pb.DOSSIER_STATE_COMPLETED
        _finish(dossier, state, now)
        return []
    plan = plans[done]
    unmet = _unmet_need(dossier, plan)
    if unmet is not None:
        # A procedure that needs one that was refused cannot run (no card
        # without a residence to put its province on); it is recorded as not
        # run, and the ones that do not need it go on.
        dossier.timeline.append(
            pb.Step(
                name=plan.name,
                agency=plan.agency,
                state=pb.STEP_STATE_NOT_RUN,
                started_at=timestamp(now),
                finished_at=timestamp(now),
                outcome=f"not run: {unmet.name} was refused",
                reason=PREREQUISITE_REFUSED,
            )
        )
        return _start_next_step(dossier, now)
    if plan.agency == GATEWAY:
        # The gateway's own step (delivering the result) calls no agency: it is
        # done here rather than sent round Kafka as a command and an outcome,
        # two records and a store transaction fewer per dossier.
        dossier.timeline.append(
            pb.Step(
                name=plan.name,
                agency=plan.agency,
                state=pb.STEP_STATE_SUCCEEDED,
                started_at=timestamp(now),
                finished_at=timestamp(now),
                attempts=1,
                outcome=delivery_note(dossier),
            )
        )
        return _start_next_step(dossier, now)
    step = pb.Step(
        name=plan.name,
        agency=plan.agency,
        state=pb.STEP_STATE_RUNNING,
        started_at=timestamp(now),
    )
    # The step's own limit runs from when its agency is asked (the same
    # working day for a birth registration; data, gateway/time_limits.py).
    limit = time_limits().step(plan.name)
    if limit is not None:
        step.due_at.CopyFrom(timestamp(due_by(now, limit)))
    dossier.timeline.append(step)
    snapshot = pb.Dossier()
    snapshot.CopyFrom(dossier)
    return [ev.StepCommand(dossier_id=dossier.dossier_id, step=plan.name, dossier=snapshot)]


def _begin_or_ask(dossier: pb.Dossier, now: dt.datetime) -> list[ev.StepCommand]:
    group = PROCEDURES.of(dossier)
    missing = group.missing(dossier)
    if missing:
        dossier.state = pb.DOSSIER_STATE_NEEDS_SUPPLEMENT
        dossier.supplement.CopyFrom(
            pb.SupplementRequest(
                missing_fields=missing,
                requested_at=timestamp(now),
                due_at=timestamp(add_working_days(now, time_limits().supplement_window)),
            )
        )
        return []
    dossier.state = pb.DOSSIER_STATE_IN_PROGRESS
    dossier.ClearField("supplement")
    # The legal limit runs from the day the dossier is complete (the next
    # working day when it is complete after the daily cut-off).
    days = time_limits().group(group.name)
    dossier.due_at.CopyFrom(timestamp(due_by(now, days)))
    return _start_next_step(dossier, now)


def on_submitted(
    current: pb.Dossier | None, event: ev.DossierSubmitted, now: dt.datetime
) -> Transition:
    dossier = pb.Dossier()
    dossier.CopyFrom(current if current is not None else event.dossier)
    if dossier.state != pb.DOSSIER_STATE_RECEIVED:
        return None, []  # already under way: a repeated submission changes nothing
    commands = _begin_or_ask(dossier, now)
    _touch(dossier, now)
    return dossier, commands


def on_supplemented(
    current: pb.Dossier | None, event: ev.DossierSupplemented, now: dt.datetime
) -> Transition:
    if current is None or current.state != pb.DOSSIER_STATE_NEEDS_SUPPLEMENT:
        return None, []
    dossier = pb.Dossier()
    dossier.CopyFrom(current)
    # MergeFrom copies only the fields the declarant filled in, which is what
    # a supplement is: the rest stays as first declared. The API refuses
    # another group's form; one that got here anyway changes nothing.
    group = PROCEDURES.of(dossier)
    if event.WhichOneof("declaration") == group.form_field:
        group.form(dossier).MergeFrom(getattr(event, group.form_field))
    commands = _begin_or_ask(dossier, now)
    _touch(dossier, now)
    return dossier, commands


def on_supplement_window_expired(
    current: pb.Dossier | None, _event: ev.SupplementWindowExpired, now: dt.datetime
) -> Transition:
    if current is None or current.state != pb.DOSSIER_STATE_NEEDS_SUPPLEMENT:
        return None, []
    if now < current.supplement.due_at.ToDatetime(dt.UTC):
        return None, []
    dossier = pb.Dossier()
    dossier.CopyFrom(current)
    dossier.rejection.CopyFrom(
        pb.Rejection(
            agency="gateway",
            reason="SUPPLEMENT_NOT_RECEIVED",
            message=f"the missing data ({', '.join(dossier.supplement.missing_fields)}) was "
            f"not supplied within {time_limits().supplement_window} working days",
        )
    )
    _finish(dossier, pb.DOSSIER_STATE_REJECTED, now)
    _touch(dossier, now)
    return dossier, []


def on_step_outcome(
    current: pb.Dossier | None, outcome: ev.StepOutcome, now: dt.datetime
) -> Transition:
    if current is None or current.state != pb.DOSSIER_STATE_IN_PROGRESS or not current.timeline:
        return None, []
    last = current.timeline[-1]
    if last.name != outcome.step or last.state != pb.STEP_STATE_RUNNING:
        return None, []  # a stale or repeated outcome
    dossier = pb.Dossier()
    dossier.CopyFrom(current)
    step = dossier.timeline[-1]
    step.attempts = outcome.attempts
    step.outcome = outcome.outcome
    step.reason = outcome.reason
    step.finished_at.CopyFrom(
        timestamp(dt.datetime.fromtimestamp(outcome.finished_at_unix_ms / 1000, dt.UTC))
        if outcome.finished_at_unix_ms
        else timestamp(now)
    )
    if step.HasField("due_at"):
        step.deadline_breached = step.finished_at.ToDatetime(dt.UTC) > step.due_at.ToDatetime(
            dt.UTC
        )
    # Each step's outcome carries its part of the group's result.
    group = PROCEDURES.of(dossier)
    if outcome.WhichOneof("result") == group.result_field:
        group.add_result(dossier, getattr(outcome, group.result_field))
    commands: list[ev.StepCommand] = []
    if outcome.kind == ev.STEP_OUTCOME_KIND_REJECTED:
        step.state = pb.STEP_STATE_REJECTED
        step.outcome = outcome.outcome or outcome.message
        if not dossier.HasField("rejection"):
            dossier.rejection.CopyFrom(
                pb.Rejection(agency=outcome.agency, reason=outcome.reason, message=outcome.message)
            )
        if _took_effect(dossier):
            # The earlier results stand; what does not need the refused
            # procedure still runs, and the declarant is told both.
            commands = _start_next_step(dossier, now)
        else:
            _finish(dossier, pb.DOSSIER_STATE_REJECTED, now)
    else:
        skipped = outcome.kind == ev.STEP_OUTCOME_KIND_SKIPPED
        step.state = pb.STEP_STATE_SKIPPED if skipped else pb.STEP_STATE_SUCCEEDED
        commands = _start_next_step(dossier, now)
    _touch(dossier, now)
    return dossier, commands


def breached(dossier: pb.Dossier, now: dt.datetime) -> bool:
    """A breach is visible while the dossier is still open past its due date."""
    if not dossier.HasField("due_at"):
        return False
    if dossier.state in TERMINAL:
        return dossier.deadline_breached
    return now > dossier.due_at.ToDatetime(dt.UTC)
