"""A generated population and plan against the three real registries (real
gRPC on loopback, real SQLite files): the seeds are accepted whole, and each
planned declaration, carried through the gateway's own step functions
(gateway/steps.py, without Kafka), ends as the plan expects."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, TypeVar

import pytest

from common.clock import VIETNAM
from gateway.agencies import Agencies, AgencyRefusalError
from gateway.procedures import PROCEDURES
from gateway.saga import timestamp
from gateway.steps import StepInput
from lienthong.gateway.v1 import gateway_pb2 as gw
from lienthong.health.v1 import health_pb2_grpc as hl_grpc
from lienthong.insurance.v1 import insurance_pb2 as ins
from lienthong.insurance.v1 import insurance_pb2_grpc as ins_grpc
from lienthong.population.v1 import population_pb2 as pop
from lienthong.population.v1 import population_pb2_grpc as pop_grpc
from scenarios.declarations import PlannedDeclaration, plan_declarations
from scenarios.faults import FAULT_KINDS
from scenarios.population import generate_population
from scenarios.seed_batches import seed_requests
from services.health.app import build as build_health
from services.insurance.app import build as build_insurance
from services.population.app import build as build_population

TODAY = dt.date(2026, 3, 10)
SUBMITTED = timestamp(dt.datetime(TODAY.year, TODAY.month, TODAY.day, 9, 0, tzinfo=VIETNAM))
M = TypeVar("M")
Outcome = tuple[str, str | None, str | None]

pytestmark = pytest.mark.timeout(300)


async def stream(batches: Iterable[M]) -> AsyncIterator[M]:
    for batch in batches:
        yield batch


async def carry(agencies: Agencies, planned: PlannedDeclaration, number: int) -> gw.Dossier:
    """The saga's path through the steps, one after the other, as the gateway's
    workers would take it; the outcome lands in dossier.state and .rejection."""
    dossier = gw.Dossier(dossier_id=f"dossier-{number}", submitted_at=SUBMITTED)
    form = planned.request.declaration
    if isinstance(form, gw.BirthDeclaration):
        dossier.kind = gw.DOSSIER_KIND_BIRTH
        dossier.birth_declaration.CopyFrom(form)
    else:
        dossier.kind = gw.DOSSIER_KIND_DEATH
        dossier.death_declaration.CopyFrom(form)
    group = PROCEDURES.of(dossier)
    if group.missing(dossier):
        dossier.state = gw.DOSSIER_STATE_NEEDS_SUPPLEMENT
        return dossier
    for plan in group.steps:
        dossier.timeline.add(name=plan.name, agency=plan.agency, started_at=SUBMITTED)
        if plan.handler is None:
            continue  # the gateway's own step (the delivery), no agency's
        try:
            done = await plan.handler(agencies, StepInput(dossier, plan.name))
        except AgencyRefusalError as refusal:
            # Refused after a procedure took effect (the birth registered, the
            # card refused): the dossier completes with that refusal.
            took_effect = dossier.WhichOneof("result") is not None
            dossier.state = (
                gw.DOSSIER_STATE_COMPLETED_WITH_REFUSALS
                if took_effect
                else gw.DOSSIER_STATE_REJECTED
            )
            dossier.rejection.CopyFrom(gw.Rejection(agency=refusal.agency, reason=refusal.reason))
            return dossier
        if done.result is not None:
            group.add_result(dossier, done.result)
    dossier.state = gw.DOSSIER_STATE_COMPLETED
    return dossier


def outcome(dossier: gw.Dossier) -> Outcome:
    state = gw.DossierState.Name(dossier.state).removeprefix("DOSSIER_STATE_")
    if dossier.HasField("rejection"):
        return state, dossier.rejection.agency, dossier.rejection.reason
    return state, None, None


async def test_a_generated_world_seeds_whole_and_every_declaration_ends_as_planned(
    start: Callable[..., Any],
) -> None:
    population = generate_population(2_000, seed=21, today=TODAY)
    plan = plan_declarations(
        population,
        births=40,
        deaths=40,
        faults={kind: 0.1 for kind in FAULT_KINDS},
        seed=21,
        today=TODAY,
    )
    assert {d.fault for d in plan.declarations} == {None, *FAULT_KINDS}
    registries = {
        "population": await start(functools.partial(build_population, today=lambda: TODAY)),
        "health": await start(functools.partial(build_health, today=lambda: TODAY)),
        "insurance": await start(functools.partial(build_insurance, today=lambda: TODAY)),
    }
    people = pop_grpc.PopulationRegistryServiceStub(registries["population"].channel)
    hospital = hl_grpc.HealthRegistryServiceStub(registries["health"].channel)
    vss = ins_grpc.InsuranceRegistryServiceStub(registries["insurance"].channel)

    requests = seed_requests(population, plan, batch_size=500)
    seeded_people = await people.SeedPopulation(stream(requests.population))
    seeded_hospital = await hospital.SeedHospitalRecords(stream(requests.health))
    seeded_insurance = await vss.SeedParticipants(stream(requests.insurance))
    expected = requests.expected
    assert (seeded_people.households, seeded_people.citizens) == (
        expected.households,
        expected.citizens,
    )
    assert (
        seeded_hospital.facilities,
        seeded_hospital.birth_certificates,
        seeded_hospital.death_notices,
    ) == (expected.facilities, expected.birth_certificates, expected.death_notices)
    assert seeded_insurance.participants == expected.participants

    agencies = Agencies(
        {"population": people, "insurance": vss, "health": hospital},
        channels=[],
        deadline_seconds=10,
    )
    dossiers: dict[str, gw.Dossier] = {}
    for number, planned in enumerate(plan.declarations):
        # The gateway keeps one dossier per idempotency key: a duplicate acts once.
        if planned.key not in dossiers:
            dossiers[planned.key] = await carry(agencies, planned, number)
        dossier = dossiers[planned.key]
        expected_outcome = (
            planned.expected_state,
            planned.expected_agency,
            planned.expected_reason,
        )
        assert outcome(dossier) == expected_outcome, (planned.fault, dossier.timeline)
        if planned.funeral_allowance_eligible is not None:
            allowance = dossier.death_result.funeral_allowance
            assert allowance.eligible == planned.funeral_allowance_eligible

    await check_effects(registries["population"].store, plan.declarations, dossiers)
    for planned in plan.declarations:
        form = planned.request.declaration
        if isinstance(form, gw.DeathDeclaration) and planned.expected_state == "COMPLETED":
            answer = await people.GetCitizen(
                pop.GetCitizenRequest(personal_id_number=form.deceased_id_number)
            )
            assert answer.citizen.date_of_death == form.date_of_death
    for participant in plan.already_dead_participants:
        found = await vss.GetParticipant(
            ins.GetParticipantRequest(personal_id_number=participant.personal_id_number)
        )
        assert found.participant.date_of_death == participant.date_of_death


async def check_effects(
    store: Any, declarations: list[PlannedDeclaration], dossiers: dict[str, gw.Dossier]
) -> None:
    """Births registered once per completed certificate, never for the others."""
    for planned in declarations:
        if planned.kind != "birth":
            continue
        certificate = planned.birth_certificate_number
        registered = store.run_sync(
            lambda conn, certificate=certificate: conn.execute(
                "SELECT COUNT(*) FROM citizens WHERE birth_certificate_number = ?",
                (certificate,),
            ).fetchone()[0]
        )
        registered_expected = dossiers[planned.key].state in (
            gw.DOSSIER_STATE_COMPLETED,
            gw.DOSSIER_STATE_COMPLETED_WITH_REFUSALS,
        )
        assert registered == (1 if registered_expected else 0)
