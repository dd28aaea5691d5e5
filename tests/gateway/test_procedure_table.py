"""Procedures as data: a third procedure group, described only here, runs
through the saga, the lanes, the executor's step lookup, the time limits and
the API without any of them knowing its kind; a kind the table does not hold
is refused with a message naming it, never run as a death.

The third group is a made-up "death extract" (a certified copy of a death
record): kind 99, which the contract's enum does not name (proto3 enums are
open), on the death form (Form 02), with its own required fields, its own
time limit (1 working day) and two steps at two agencies with fake handlers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import grpc
import pytest
from aiokafka import AIOKafkaProducer

from common.clock import SystemClock
from gateway import saga, time_limits
from gateway.agencies import Agencies
from gateway.events import Event, PoisonEventError, Topics
from gateway.executor import StepExecutor, plan_of, step_outcome
from gateway.forms import check_death_declaration
from gateway.procedures import (
    GATEWAY,
    PROCEDURES,
    ProcedureGroup,
    ProcedureOfStep,
    StepPlan,
    UnknownProcedureError,
)
from gateway.steps import StepDone, StepInput, succeeded
from gateway.store import PendingEvent, SagaStore
from gateway.worker import SagaWorker, command_topic
from lienthong.events.v1 import events_pb2 as ev
from lienthong.gateway.v1 import gateway_pb2 as pb
from tests.gateway import test_api
from tests.gateway.test_api import NOW, Starter, refused

# The API tests' gateway (real gRPC on loopback, a real saga store file).
start_gateway = test_api.start_gateway

# 09:00 in Hà Nội on a Monday, before the daily cut-off.
MONDAY = dt.datetime(2026, 11, 23, 2, 0, tzinfo=dt.UTC)
EXTRACT_KIND = pb.DossierKind.ValueType(99)
UNKNOWN_KIND = pb.DossierKind.ValueType(98)
TOPICS = Topics.with_prefix("t")
DECEASED = "001050000123"
NO_AGENCIES = cast(Agencies, None)  # the fake handlers call no agency


async def find_record(_agencies: Agencies, step: StepInput) -> StepDone:
    return succeeded(
        f"death record of {step.dossier.death_declaration.deceased_id_number} found",
        pb.DeathResult(death_registered_on="2026-11-20"),
    )


async def certify_copy(_agencies: Agencies, _step: StepInput) -> StepDone:
    return succeeded("copy certified", pb.DeathResult(residence_removed_from="HH-7"))


def missing_extract_fields(form: pb.DeathDeclaration) -> list[str]:
    # Not the death group's: the notice is required, the place of death is not.
    return [
        name for name in ("deceased_id_number", "death_notice_number") if not getattr(form, name)
    ]


EXTRACT: ProcedureGroup[pb.DeathDeclaration] = ProcedureGroup(
    kind=EXTRACT_KIND,
    name="death_extract",
    title="copy of a death extract",
    form_field="death_declaration",
    result_field="death_result",
    check_form=check_death_declaration,
    missing_fields=missing_extract_fields,
    steps=(
        StepPlan("find_death_record", "population", find_record),
        StepPlan(
            "certify_copy",
            "insurance",
            certify_copy,
            needs=("find_death_record",),
            procedure=ProcedureOfStep("death_extract_copy", "certified copy"),
        ),
        StepPlan("deliver_result", GATEWAY),
    ),
)


@pytest.fixture
def extract(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ProcedureGroup[Any]]:
    """The third group in the table, and its time limit in a copy of the
    time-limit table (a new group needs both, nothing else)."""
    limits = tmp_path / "time_limits.csv"
    limits.write_text(
        time_limits.BUNDLED.read_text(encoding="utf-8") + "group.death_extract,1\n",
        encoding="utf-8",
    )
    monkeypatch.setenv(time_limits.ENV_VAR, str(limits))
    time_limits.time_limits.cache_clear()
    with PROCEDURES.registered(EXTRACT) as group:
        yield group
    time_limits.time_limits.cache_clear()


def extract_dossier(**form: object) -> pb.Dossier:
    declaration = pb.DeathDeclaration(
        deceased_id_number=DECEASED,
        date_of_death="2025-09-10",
        death_notice_number="GBT-01001-0000001",
        delivery_method=pb.DELIVERY_METHOD_POST,
    )
    for name, value in form.items():
        setattr(declaration, name, value)
    return pb.Dossier(
        dossier_id="death_extract-1",
        kind=EXTRACT_KIND,
        state=pb.DOSSIER_STATE_RECEIVED,
        submitted_at=saga.timestamp(MONDAY),
        version=1,
        death_declaration=declaration,
    )


async def run_step(command: ev.StepCommand, at: dt.datetime) -> ev.StepOutcome:
    """What the executor does with a command, without Kafka: its step, its
    handler, its outcome."""
    plan = plan_of(command)
    assert plan.handler is not None
    done = await plan.handler(NO_AGENCIES, StepInput(command.dossier, command.step))
    return step_outcome(command, agency=plan.agency, done=done, attempts=1, started=at, finished=at)


@pytest.mark.usefixtures("extract")
async def test_a_third_procedure_defined_only_here_runs_to_completion() -> None:
    # No place of death (which a death requires), yet nothing is missing.
    dossier, commands = saga.on_submitted(
        None, ev.DossierSubmitted(dossier=extract_dossier(place_of_death="")), MONDAY
    )
    lanes: list[str] = []
    while commands:
        assert dossier is not None and dossier.state == pb.DOSSIER_STATE_IN_PROGRESS
        (command,) = commands
        lanes.append(command_topic(TOPICS, command))
        dossier, commands = saga.on_step_outcome(dossier, await run_step(command, MONDAY), MONDAY)
    assert dossier is not None
    assert dossier.state == pb.DOSSIER_STATE_COMPLETED
    assert lanes == ["t.step-commands.population", "t.step-commands.insurance"]
    assert [(s.name, s.agency, s.state) for s in dossier.timeline] == [
        ("find_death_record", "population", pb.STEP_STATE_SUCCEEDED),
        ("certify_copy", "insurance", pb.STEP_STATE_SUCCEEDED),
        ("deliver_result", "gateway", pb.STEP_STATE_SUCCEEDED),
    ]
    # Each step's part of the result, merged in the field the group names.
    assert dossier.death_result == pb.DeathResult(
        death_registered_on="2026-11-20", residence_removed_from="HH-7"
    )
    assert [(r.procedure, r.agency, r.state) for r in dossier.procedures] == [
        ("death_extract_copy", "insurance", pb.PROCEDURE_STATE_DONE)
    ]
    assert "by public postal service" in dossier.timeline[-1].outcome
    # Its own limit: 1 working day from Monday morning is the end of Tuesday.
    assert dossier.due_at.ToDatetime(dt.UTC).date() == dt.date(2026, 11, 24)


@pytest.mark.usefixtures("extract")
async def test_the_third_procedures_required_fields_are_its_own() -> None:
    dossier, commands = saga.on_submitted(
        None, ev.DossierSubmitted(dossier=extract_dossier(death_notice_number="")), MONDAY
    )
    assert dossier is not None and commands == []
    assert dossier.state == pb.DOSSIER_STATE_NEEDS_SUPPLEMENT
    assert list(dossier.supplement.missing_fields) == ["death_notice_number"]
    supplemented, commands = saga.on_supplemented(
        dossier,
        ev.DossierSupplemented(
            dossier_id=dossier.dossier_id,
            supplement_id="s1",
            death_declaration=pb.DeathDeclaration(death_notice_number="GBT-01001-0000002"),
        ),
        MONDAY,
    )
    assert supplemented is not None
    assert supplemented.state == pb.DOSSIER_STATE_IN_PROGRESS
    assert [c.step for c in commands] == ["find_death_record"]


@pytest.mark.usefixtures("extract")
def test_a_group_without_its_time_limit_is_refused_when_the_limits_are_read(
    tmp_path: Path,
) -> None:
    bundled_only = tmp_path / "bundled.csv"
    bundled_only.write_text(time_limits.BUNDLED.read_text(encoding="utf-8"), encoding="utf-8")
    with pytest.raises(ValueError, match=r"missing: group\.death_extract"):
        time_limits.read_limits(bundled_only)


def test_a_group_reusing_a_step_name_for_another_step_is_refused() -> None:
    clash = ProcedureGroup(
        kind=EXTRACT_KIND,
        name="clash",
        title="a clash",
        form_field="death_declaration",
        result_field="death_result",
        check_form=check_death_declaration,
        missing_fields=missing_extract_fields,
        steps=(StepPlan("register_death", "insurance", certify_copy),),
    )
    with pytest.raises(ValueError, match="step register_death of clash is another step of death"):
        PROCEDURES.register(clash)
    assert EXTRACT_KIND not in {group.kind for group in PROCEDURES}


def test_a_step_naming_no_handler_at_an_agency_is_refused() -> None:
    with pytest.raises(ValueError, match="names its handler"):
        StepPlan("find_death_record", "population")


# --- A kind the table does not hold: refused, never run as a death -------------


def unknown_dossier(kind: pb.DossierKind.ValueType) -> pb.Dossier:
    # The death form on it: the old code ran anything not a birth as a death.
    dossier = extract_dossier()
    dossier.kind = kind
    return dossier


@pytest.mark.parametrize("kind", [UNKNOWN_KIND, pb.DOSSIER_KIND_UNSPECIFIED])
def test_the_saga_refuses_a_kind_it_does_not_hold(kind: pb.DossierKind.ValueType) -> None:
    with pytest.raises(UnknownProcedureError, match=f"dossier kind {kind} is not a procedure"):
        saga.on_submitted(None, ev.DossierSubmitted(dossier=unknown_dossier(kind)), MONDAY)


async def test_the_consumers_dead_letter_a_kind_they_do_not_hold() -> None:
    worker = SagaWorker(
        cast(SagaStore, None),
        cast(AIOKafkaProducer, None),
        TOPICS,
        SystemClock(),
        asyncio.Condition(),
    )
    submitted = ev.DossierSubmitted(dossier=unknown_dossier(UNKNOWN_KIND))
    with pytest.raises(PoisonEventError, match="dossier kind 98 is not a procedure"):
        worker.check(Event("d/submitted", "d", submitted, MONDAY))
    executor = StepExecutor(
        NO_AGENCIES,
        cast(AIOKafkaProducer, None),
        TOPICS,
        SystemClock(),
        retry_base_seconds=0.1,
        retry_cap_seconds=1,
    )
    # A death's step name on a dossier of another kind: not run as a death.
    dossier = unknown_dossier(UNKNOWN_KIND)
    dossier.timeline.add(name="register_death", agency="population")
    command = ev.StepCommand(dossier_id="d", step="register_death", dossier=dossier)
    with pytest.raises(PoisonEventError, match="dossier kind 98 is not a procedure"):
        executor.check(Event("d/register_death", "d", command, MONDAY))


async def store_awaiting_supplement(store: SagaStore, dossier: pb.Dossier) -> None:
    """As a gateway that runs the kind would have left it."""
    dossier.state = pb.DOSSIER_STATE_NEEDS_SUPPLEMENT
    dossier.supplement.due_at.CopyFrom(saga.timestamp(NOW + dt.timedelta(days=7)))
    await store.apply(
        PendingEvent(f"{dossier.dossier_id}/submitted", dossier.dossier_id, lambda _: (dossier, []))
    )


async def test_the_api_refuses_a_supplement_to_a_kind_it_does_not_run(
    start_gateway: Starter,
) -> None:
    gateway = await start_gateway()
    await store_awaiting_supplement(gateway.store, unknown_dossier(UNKNOWN_KIND))
    error = await refused(
        gateway.stub.SupplementDossier(
            pb.SupplementDossierRequest(
                dossier_id="death_extract-1",
                idempotency_key="s1",
                death_declaration=pb.DeathDeclaration(deceased_id_number=DECEASED),
            )
        )
    )
    assert error.code == grpc.StatusCode.FAILED_PRECONDITION
    assert error.reason == "UNKNOWN_PROCEDURE"
    assert "dossier kind 98 is not a procedure this gateway runs" in error.message
    assert gateway.producer.sent == []


@pytest.mark.usefixtures("extract")
async def test_the_api_takes_a_supplement_by_the_third_groups_form_and_rules(
    start_gateway: Starter,
) -> None:
    gateway = await start_gateway()
    await store_awaiting_supplement(gateway.store, extract_dossier(death_notice_number=""))
    birth_form = await refused(
        gateway.stub.SupplementDossier(
            pb.SupplementDossierRequest(
                dossier_id="death_extract-1",
                idempotency_key="s1",
                birth_declaration=pb.BirthDeclaration(ethnicity="Kinh"),
            )
        )
    )
    assert birth_form.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "copy of a death extract" in birth_form.field_violations["birth_declaration"]
    bad_id = await refused(
        gateway.stub.SupplementDossier(
            pb.SupplementDossierRequest(
                dossier_id="death_extract-1",
                idempotency_key="s1",
                death_declaration=pb.DeathDeclaration(deceased_id_number="000150000001"),
            )
        )
    )
    assert bad_id.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "not a province" in bad_id.field_violations["death_declaration.deceased_id_number"]
    await gateway.stub.SupplementDossier(
        pb.SupplementDossierRequest(
            dossier_id="death_extract-1",
            idempotency_key="s1",
            death_declaration=pb.DeathDeclaration(
                deceased_id_number=DECEASED, death_notice_number="GBT-01001-0000002"
            ),
        )
    )
    (topic, event) = gateway.producer.sent[-1]
    assert topic == "test.dossiers"
    assert event.message.death_declaration.death_notice_number == "GBT-01001-0000002"
