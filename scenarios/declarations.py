"""The declarations a scenario replays against the gateway, with what each
should come to, and the hospital records that must be seeded first.

The plan never changes the population it is given: records that a fault needs
seeded differently (ALREADY_DEAD) come back in the plan, and seed_requests
puts them in place of the originals.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from lienthong.gateway.v1 import gateway_pb2 as gw
from lienthong.health.v1 import health_pb2 as hl
from lienthong.insurance.v1 import insurance_pb2 as ins
from lienthong.population.v1 import population_pb2 as pop
from scenarios import fault_shares
from scenarios.births import PlannedBirth, choose_mothers, plan_birth
from scenarios.deaths import PlannedDeath, choose_deceased, plan_death
from scenarios.faults import DUPLICATE_SUBMISSION
from scenarios.numbering import DocumentNumbers
from scenarios.plan_context import PlanContext
from scenarios.population import SyntheticPopulation

Kind = Literal["birth", "death"]
State = Literal["COMPLETED", "REJECTED", "NEEDS_SUPPLEMENT"]
Request = gw.SubmitBirthDeclarationRequest | gw.SubmitDeathDeclarationRequest


@dataclass(frozen=True)
class PlannedDeclaration:
    key: str  # idempotency key: unique, except that a duplicate repeats its original's
    kind: Kind
    request: Request
    fault: str | None
    expected_state: State
    expected_reason: str | None  # the rejection's reason code
    expected_agency: str | None = None  # the agency that rejects
    birth_certificate_number: str | None = None
    deceased_id_number: str | None = None
    missing_fields: tuple[str, ...] = ()  # NEEDS_SUPPLEMENT: what the gateway asks for
    # A claimed funeral allowance: whether VSS will find the deceased eligible.
    funeral_allowance_eligible: bool | None = None


@dataclass(frozen=True)
class DeclarationPlan:
    seed: int
    today: dt.date
    birth_certificates: list[hl.BirthCertificate]
    death_notices: list[hl.DeathNotice]
    # ALREADY_DEAD: seeded in place of the same person's living records.
    already_dead: list[pop.Citizen]
    already_dead_participants: list[ins.Participant]
    declarations: list[PlannedDeclaration]  # in replay order


def _expected(fault: str | None) -> tuple[State, str | None, str | None]:
    if fault is None:
        return "COMPLETED", None, None
    state, agency, reason = fault_shares.EXPECTED[fault]
    return state, agency, reason  # type: ignore[return-value]


def _birth(key: str, planned: PlannedBirth) -> PlannedDeclaration:
    fault = planned.fault
    state, agency, reason = _expected(fault)
    return PlannedDeclaration(
        key=key,
        kind="birth",
        request=gw.SubmitBirthDeclarationRequest(idempotency_key=key, declaration=planned.form),
        fault=fault,
        expected_state=state,
        expected_reason=reason,
        expected_agency=agency,
        birth_certificate_number=planned.certificate.certificate_number,
        missing_fields=planned.missing_fields,
    )


def _death(key: str, planned: PlannedDeath) -> PlannedDeclaration:
    fault = planned.fault
    state, agency, reason = _expected(fault)
    return PlannedDeclaration(
        key=key,
        kind="death",
        request=gw.SubmitDeathDeclarationRequest(idempotency_key=key, declaration=planned.form),
        fault=fault,
        expected_state=state,
        expected_reason=reason,
        expected_agency=agency,
        deceased_id_number=planned.form.deceased_id_number,
        missing_fields=planned.missing_fields,
        funeral_allowance_eligible=planned.allowance_eligible,
    )


def _mark_duplicates(planned: list[PlannedDeclaration]) -> list[PlannedDeclaration]:
    """Of the two submissions of a duplicated declaration, the one sent first is
    the original (no fault) and the other the duplicate, whichever the shuffle
    put first."""
    seen: set[str] = set()
    marked = []
    for declaration in planned:
        if declaration.fault == DUPLICATE_SUBMISSION and declaration.key not in seen:
            seen.add(declaration.key)
            marked.append(dataclasses.replace(declaration, fault=None))
        else:
            marked.append(declaration)
    return marked


class _Keys:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.taken: set[str] = set()

    def new(self, kind: str) -> str:
        while True:
            key = f"{kind}-{self.rng.getrandbits(64):016x}"
            if key not in self.taken:
                self.taken.add(key)
                return key


def plan_declarations(
    population: SyntheticPopulation,
    *,
    births: int,
    deaths: int,
    faults: Mapping[str, float],
    seed: int,
    today: dt.date,
    funeral_claim_share: float | None = None,
) -> DeclarationPlan:
    """`births` birth and `deaths` death declarations, `faults[kind]` of the
    ones each fault kind applies to carrying it (see scenarios/fault_shares.py).
    A duplicate submission adds a second, identical declaration.

    `funeral_claim_share`: the share of deaths claiming the funeral allowance
    (a scenario's mix.funeral_claims); by default the families of eligible
    deceased mostly claim and the others seldom do."""
    if births < 0 or deaths < 0:
        raise ValueError("births and deaths must not be negative")
    if funeral_claim_share is not None and not 0.0 <= funeral_claim_share <= 1.0:
        raise ValueError(f"funeral_claim_share must be between 0 and 1, not {funeral_claim_share}")
    shares = fault_shares.check_shares(faults)
    rng = random.Random(f"lienthong.declarations:{seed}")
    # The dead first: nobody who dies in the plan becomes a mother, a father or a declarant.
    deceased = choose_deceased(rng, population, deaths)
    context = PlanContext(
        rng, population, frozenset(deceased), DocumentNumbers(rng), today, funeral_claim_share
    )
    mothers = choose_mothers(rng, population, births, context.excluded, today)
    death_faults = fault_shares.death_faults(rng, shares, deaths)
    death_plans = [
        plan_death(context, person, fault)
        for person, fault in zip(deceased, death_faults, strict=True)
    ]
    birth_faults = fault_shares.birth_faults(rng, shares, births)
    birth_plans = [
        plan_birth(context, mother, fault)
        for mother, fault in zip(mothers, birth_faults, strict=True)
    ]
    keys = _Keys(rng)
    planned = [_birth(keys.new("birth"), birth) for birth in birth_plans]
    planned += [_death(keys.new("death"), death) for death in death_plans]
    planned += [p for p in planned if p.fault == DUPLICATE_SUBMISSION]
    rng.shuffle(planned)
    return DeclarationPlan(
        seed=seed,
        today=today,
        birth_certificates=[b.certificate for b in birth_plans if b.seeded],
        death_notices=[d.notice for d in death_plans if d.notice is not None],
        already_dead=[d.already_dead for d in death_plans if d.already_dead is not None],
        already_dead_participants=[
            d.already_dead_participant
            for d in death_plans
            if d.already_dead_participant is not None
        ],
        declarations=_mark_duplicates(planned),
    )
