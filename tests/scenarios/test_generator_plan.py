"""The declaration plan: dates in order, mothers of age, deaths of the old,
faults at their shares with the outcome each should have, and the seed
batches that carry it all."""

from __future__ import annotations

import datetime as dt
import math
import statistics
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from common.dates import age_in_years
from common.rpc import validate_message
from gateway.procedures import missing_birth_fields, missing_death_fields
from lienthong.common.v1.common_pb2 import SEX_FEMALE
from lienthong.gateway.v1 import gateway_pb2 as gw
from scenarios.declarations import DeclarationPlan, PlannedDeclaration, plan_declarations
from scenarios.faults import (
    ALREADY_DEAD,
    BIRTH_FAULTS,
    DEATH_FAULTS,
    DUPLICATE_SUBMISSION,
    MISSING_FIELDS,
    MOTHER_ID_MISMATCH,
    UNKNOWN_BIRTH_CERTIFICATE,
)
from scenarios.population import SyntheticPopulation, generate_population
from scenarios.seed_batches import seed_requests

TODAY = dt.date(2026, 3, 10)
FAULTS = {
    MOTHER_ID_MISMATCH: 0.1,
    UNKNOWN_BIRTH_CERTIFICATE: 0.1,
    ALREADY_DEAD: 0.1,
    DUPLICATE_SUBMISSION: 0.1,
    MISSING_FIELDS: 0.1,
}


@pytest.fixture(scope="module")
def population() -> SyntheticPopulation:
    return generate_population(6_000, seed=5, today=TODAY)


@pytest.fixture(scope="module")
def plan(population: SyntheticPopulation) -> DeclarationPlan:
    return plan_declarations(population, births=300, deaths=200, faults=FAULTS, seed=9, today=TODAY)


def births(plan: DeclarationPlan) -> list[gw.BirthDeclaration]:
    return [
        d.request.declaration
        for d in plan.declarations
        if isinstance(d.request, gw.SubmitBirthDeclarationRequest)
    ]


def deaths(plan: DeclarationPlan) -> list[gw.DeathDeclaration]:
    return [
        d.request.declaration
        for d in plan.declarations
        if isinstance(d.request, gw.SubmitDeathDeclarationRequest)
    ]


def plan_bytes(plan: DeclarationPlan) -> list[bytes]:
    messages = [
        *plan.birth_certificates,
        *plan.death_notices,
        *plan.already_dead,
        *plan.already_dead_participants,
        *(d.request for d in plan.declarations),
    ]
    return [m.SerializeToString(deterministic=True) for m in messages]


def test_the_same_seed_plans_the_same_and_another_seed_does_not(
    population: SyntheticPopulation, plan: DeclarationPlan
) -> None:
    again = plan_declarations(
        population, births=300, deaths=200, faults=FAULTS, seed=9, today=TODAY
    )
    other = plan_declarations(
        population, births=300, deaths=200, faults=FAULTS, seed=10, today=TODAY
    )
    assert plan_bytes(plan) == plan_bytes(again)
    assert [d.key for d in plan.declarations] == [d.key for d in again.declarations]
    assert plan_bytes(plan) != plan_bytes(other)


def test_planning_leaves_the_population_as_it_was() -> None:
    population = generate_population(1_500, seed=2, today=TODAY)
    before = [c.SerializeToString() for c in population.citizens]
    plan_declarations(population, births=30, deaths=30, faults=FAULTS, seed=1, today=TODAY)
    assert [c.SerializeToString() for c in population.citizens] == before


def test_every_request_keeps_the_gateway_contract(plan: DeclarationPlan) -> None:
    for declaration in plan.declarations:
        validate_message(declaration.request)
    for record in (*plan.birth_certificates, *plan.death_notices, *plan.already_dead):
        validate_message(record)


def test_mothers_are_18_to_45_and_certificates_come_first(
    population: SyntheticPopulation, plan: DeclarationPlan
) -> None:
    certificates = {c.certificate_number: c for c in plan.birth_certificates}
    for certificate in plan.birth_certificates:
        born = dt.date.fromisoformat(certificate.date_of_birth)
        issued = dt.date.fromisoformat(certificate.issued_on)
        assert born <= issued < TODAY
        assert (TODAY - born).days <= 10
        mother = population.citizens[population.index_of[certificate.mother_id_number]]
        assert mother.sex == SEX_FEMALE and mother.household_id
        assert 18 <= age_in_years(dt.date.fromisoformat(mother.date_of_birth), born) <= 45
        assert certificate.mother_full_name == mother.full_name
    mothers = [c.mother_id_number for c in plan.birth_certificates]
    assert len(set(mothers)) == len(mothers)
    for form in births(plan):
        on_file = certificates.get(form.birth_certificate_number)
        if on_file is not None:
            assert form.child_date_of_birth in ("", on_file.date_of_birth)
            assert form.child_sex == on_file.child_sex


def test_notices_come_first_and_deaths_skew_old(
    population: SyntheticPopulation, plan: DeclarationPlan
) -> None:
    notices = {n.notice_number: n for n in plan.death_notices}
    for notice in plan.death_notices:
        died = dt.date.fromisoformat(notice.date_of_death)
        assert died <= dt.date.fromisoformat(notice.issued_on) < TODAY
    ages = []
    for form in deaths(plan):
        if form.death_notice_number:
            assert form.date_of_death in ("", notices[form.death_notice_number].date_of_death)
        ages.append(population.people.ages[population.index_of[form.deceased_id_number]])
    assert statistics.mean(ages) > statistics.mean(population.people.ages) + 25
    assert statistics.median(ages) >= 65


def test_payees_are_living_relatives_and_both_allowance_outcomes_occur(
    population: SyntheticPopulation, plan: DeclarationPlan
) -> None:
    dead = {form.deceased_id_number for form in deaths(plan)}
    for form in deaths(plan):
        assert form.declarant.personal_id_number not in dead
        if form.claim_funeral_allowance:
            assert form.payee.personal_id_number == form.declarant.personal_id_number
        if form.declarant.relationship != "relative":
            declarant = population.index_of[form.declarant.personal_id_number]
            deceased = population.index_of[form.deceased_id_number]
            household_of = population.families.household_of
            assert household_of[declarant] == household_of[deceased]
    outcomes = Counter(d.funeral_allowance_eligible for d in plan.declarations)
    assert outcomes[True] > 0 and outcomes[False] > 0


def test_each_fault_has_its_expected_outcome(
    population: SyntheticPopulation, plan: DeclarationPlan
) -> None:
    certificates = {c.certificate_number: c for c in plan.birth_certificates}
    dead = {c.personal_id_number: c for c in plan.already_dead}
    for declaration in plan.declarations:
        outcome = (
            declaration.expected_state,
            declaration.expected_agency,
            declaration.expected_reason,
        )
        form = declaration.request.declaration
        missing = (
            missing_birth_fields(form)
            if isinstance(form, gw.BirthDeclaration)
            else missing_death_fields(form)
        )
        assert missing == list(declaration.missing_fields)
        if declaration.fault in (None, DUPLICATE_SUBMISSION):
            assert outcome == ("COMPLETED", None, None)
        elif declaration.fault == MISSING_FIELDS:
            assert outcome == ("NEEDS_SUPPLEMENT", None, None) and missing
        elif declaration.fault == MOTHER_ID_MISMATCH:
            assert outcome == ("REJECTED", "health", "MOTHER_ID_MISMATCH")
            certificate = certificates[declaration.birth_certificate_number or ""]
            assert isinstance(form, gw.BirthDeclaration)
            assert form.mother_id_number != certificate.mother_id_number
            assert form.mother_id_number in population.index_of
        elif declaration.fault == UNKNOWN_BIRTH_CERTIFICATE:
            assert outcome == ("REJECTED", "health", "BIRTH_CERTIFICATE_NOT_FOUND")
            assert declaration.birth_certificate_number not in certificates
        elif declaration.fault == ALREADY_DEAD:
            assert outcome == ("REJECTED", "population", "ALREADY_DEAD")
            assert isinstance(form, gw.DeathDeclaration)
            record = dead[form.deceased_id_number]
            assert record.date_of_death == form.date_of_death and not record.household_id
    assert len(dead) == sum(d.fault == ALREADY_DEAD for d in plan.declarations)


def test_a_duplicate_is_the_same_request_under_the_same_key(plan: DeclarationPlan) -> None:
    by_key: dict[str, list[PlannedDeclaration]] = {}
    for declaration in plan.declarations:
        by_key.setdefault(declaration.key, []).append(declaration)
    duplicated = [group for group in by_key.values() if len(group) > 1]
    assert duplicated
    assert all(len(group) <= 2 for group in by_key.values())
    for first, second in duplicated:
        assert (first.fault, second.fault) == (None, DUPLICATE_SUBMISSION)
        assert first.request.SerializeToString() == second.request.SerializeToString()
        assert first.request.idempotency_key == first.key


@settings(max_examples=20, deadline=None)
@given(
    shares=st.fixed_dictionaries(
        {
            kind: st.floats(0, 0.2)
            for kind in (MOTHER_ID_MISMATCH, UNKNOWN_BIRTH_CERTIFICATE, ALREADY_DEAD)
        },
        optional={kind: st.floats(0, 0.2) for kind in (DUPLICATE_SUBMISSION, MISSING_FIELDS)},
    ),
    births_count=st.integers(0, 120),
    deaths_count=st.integers(0, 80),
    seed=st.integers(0, 1000),
)
def test_fault_shares_are_honoured(
    population: SyntheticPopulation,
    shares: dict[str, float],
    births_count: int,
    deaths_count: int,
    seed: int,
) -> None:
    plan = plan_declarations(
        population,
        births=births_count,
        deaths=deaths_count,
        faults=shares,
        seed=seed,
        today=TODAY,
    )
    for kind, faults, total in (
        ("birth", BIRTH_FAULTS, births_count),
        ("death", DEATH_FAULTS, deaths_count),
    ):
        counted = Counter(d.fault for d in plan.declarations if d.kind == kind)
        for fault in faults:
            # Largest remainder: never more than one off the exact share.
            assert abs(counted[fault] - shares.get(fault, 0.0) * total) < 1 + 1e-9
        originals = sum(n for f, n in counted.items() if f != DUPLICATE_SUBMISSION)
        assert originals == total


@pytest.mark.parametrize(
    ("faults", "message"),
    [
        ({"typo": 0.1}, "unknown fault kind"),
        ({MISSING_FIELDS: -0.1}, "between 0 and 1"),
        ({MISSING_FIELDS: 1.5}, "between 0 and 1"),
        ({MISSING_FIELDS: math.nan}, "between 0 and 1"),
        ({MISSING_FIELDS: True}, "must be a number"),
        ({MISSING_FIELDS: 0.6, ALREADY_DEAD: 0.6}, "must not exceed 1"),
    ],
)
def test_bad_fault_shares_are_refused(
    population: SyntheticPopulation, faults: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        plan_declarations(population, births=1, deaths=1, faults=faults, seed=1, today=TODAY)


def test_more_births_than_women_makes_some_mothers_twice() -> None:
    population = generate_population(300, seed=1, today=TODAY)
    plan = plan_declarations(population, births=400, deaths=0, faults={}, seed=1, today=TODAY)
    mothers = Counter(c.mother_id_number for c in plan.birth_certificates)
    assert sum(mothers.values()) == 400
    assert max(mothers.values()) - min(mothers.values()) <= 1


def test_births_without_any_woman_of_age_are_refused() -> None:
    population = next(
        p
        for seed in range(50)
        if (p := generate_population(1, seed=seed, today=TODAY)).citizens[0].sex != SEX_FEMALE
    )
    with pytest.raises(ValueError, match="no women of 18-45"):
        plan_declarations(population, births=1, deaths=0, faults={}, seed=1, today=TODAY)


def test_seed_batches_put_the_already_dead_in_place_of_the_living(
    population: SyntheticPopulation, plan: DeclarationPlan
) -> None:
    requests = seed_requests(population, plan, batch_size=1_000)
    batches = list(requests.population)
    assert batches == list(requests.population)  # re-iterable: a refused stream can be resent
    assert len(batches) == len(requests.population)
    assert all(len(b.households) + len(b.citizens) <= 1_000 for b in batches)
    first_citizens = next(i for i, b in enumerate(batches) if b.citizens)
    assert not any(b.households for b in batches[first_citizens:])
    citizens = {c.personal_id_number: c for b in batches for c in b.citizens}
    assert len(citizens) == requests.expected.citizens == len(population.citizens)
    for record in plan.already_dead:
        assert citizens[record.personal_id_number].date_of_death == record.date_of_death
    dead_participants = {
        p.personal_id_number: p
        for b in requests.insurance
        for p in b.participants
        if p.date_of_death
    }
    assert set(dead_participants) == {p.personal_id_number for p in plan.already_dead_participants}
    health = list(requests.health)
    assert sum(len(b.birth_certificates) for b in health) == len(plan.birth_certificates)
    assert sum(len(b.death_notices) for b in health) == len(plan.death_notices)
