"""The two procedure groups as ordered steps, and what each form must hold.

Group 1 (birth): verify the e-birth certificate (hospital) → register the
birth and assign the ID number (civil status) → register the child's permanent
residence (police) → issue the child's health insurance card (VSS) → deliver
the result. Group 2 (death): verify the death notice → register the death →
remove the permanent residence → end card and pension, settle the funeral
allowance (VSS) → deliver. Decree 63/2024/ND-CP; Decision 296/QD-VPCP.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from lienthong.common.v1 import common_pb2
from lienthong.gateway.v1 import gateway_pb2 as pb

# The agency name of the gateway's own steps, which no registry runs.
GATEWAY = "gateway"


def _always(_dossier: pb.Dossier) -> bool:
    return True


def _funeral_allowance_claimed(dossier: pb.Dossier) -> bool:
    return dossier.death_declaration.claim_funeral_allowance


@dataclass(frozen=True)
class ProcedureOfStep:
    """The procedure a step carries out, with its own result (Decree
    63/2024/ND-CP: each procedure of a group has its own result)."""

    name: str
    # In words, for the declarant: "birth registration".
    title: str
    # Whether the declarant asked for it (the death group lets the declarant
    # choose; the funeral allowance only when claimed).
    requested: Callable[[pb.Dossier], bool] = _always


@dataclass(frozen=True)
class StepPlan:
    name: str
    agency: str
    # Steps that must have taken effect (succeeded, or skipped with nothing to
    # do) before this one runs; when one was refused this step is not run.
    needs: tuple[str, ...] = ()
    # None for a step that is not a procedure of its own (a hospital's
    # verification, the delivery of the result).
    procedure: ProcedureOfStep | None = field(default=None)


BIRTH_STEPS = (
    StepPlan("verify_birth_certificate", "health"),
    StepPlan(
        "register_birth",
        "population",
        needs=("verify_birth_certificate",),
        procedure=ProcedureOfStep("birth_registration", "birth registration"),
    ),
    StepPlan(
        "register_permanent_residence",
        "population",
        needs=("register_birth",),
        procedure=ProcedureOfStep("permanent_residence", "permanent residence"),
    ),
    # The card's province is the residence's, so the card waits for it.
    StepPlan(
        "issue_health_insurance_card",
        "insurance",
        needs=("register_birth", "register_permanent_residence"),
        procedure=ProcedureOfStep("health_insurance_card", "health insurance card"),
    ),
    StepPlan("deliver_result", GATEWAY),
)
DEATH_STEPS = (
    StepPlan("verify_death_notice", "health"),
    StepPlan(
        "register_death",
        "population",
        needs=("verify_death_notice",),
        procedure=ProcedureOfStep("death_registration", "death registration"),
    ),
    StepPlan(
        "remove_permanent_residence",
        "population",
        needs=("register_death",),
        procedure=ProcedureOfStep("residence_removal", "removal of the permanent residence"),
    ),
    # Ending the card and pension always runs; the allowance is the procedure
    # the declarant may choose.
    StepPlan(
        "settle_insurance",
        "insurance",
        needs=("register_death",),
        procedure=ProcedureOfStep(
            "funeral_allowance", "funeral allowance", requested=_funeral_allowance_claimed
        ),
    ),
    StepPlan("deliver_result", GATEWAY),
)

# Each step's agency by the step's name (a name means one step in either group):
# the saga worker sends a step's command to its agency's lane.
AGENCY_OF_STEP = {plan.name: plan.agency for plan in (*BIRTH_STEPS, *DEATH_STEPS)}

# The legal time limits (of each group, each step, the supplement window) are
# data: gateway/time_limits.py.


def group_name(dossier: pb.Dossier) -> str:
    """The group's name in the time-limit table: "birth" or "death"."""
    return "birth" if dossier.kind == pb.DOSSIER_KIND_BIRTH else "death"


def steps_for(dossier: pb.Dossier) -> tuple[StepPlan, ...]:
    return BIRTH_STEPS if dossier.kind == pb.DOSSIER_KIND_BIRTH else DEATH_STEPS


def missing_birth_fields(form: pb.BirthDeclaration) -> list[str]:
    """Form 01 fields the procedures cannot run without."""
    required = {
        "child_full_name": form.child_full_name,
        "child_date_of_birth": form.child_date_of_birth,
        "place_of_birth": form.place_of_birth,
        "ethnicity": form.ethnicity,
        "nationality": form.nationality,
        "birth_certificate_number": form.birth_certificate_number,
        "mother_id_number": form.mother_id_number,
        "registration_province_code": form.registration_province_code,
        "initial_facility_code": form.initial_facility_code,
    }
    missing = [name for name, value in required.items() if not value]
    if not form.HasField("declarant"):
        missing.insert(0, "declarant")
    if form.child_sex == common_pb2.SEX_UNSPECIFIED:
        missing.append("child_sex")
    if form.delivery_method == pb.DELIVERY_METHOD_UNSPECIFIED:
        missing.append("delivery_method")
    return missing


def missing_death_fields(form: pb.DeathDeclaration) -> list[str]:
    """Form 02 fields the chosen procedures cannot run without."""
    missing = [
        name
        for name, value in {
            "date_of_death": form.date_of_death,
            "place_of_death": form.place_of_death,
        }.items()
        if not value
    ]
    if not form.HasField("declarant"):
        missing.insert(0, "declarant")
    if form.claim_funeral_allowance and not form.HasField("payee"):
        missing.append("payee")
    if form.delivery_method == pb.DELIVERY_METHOD_UNSPECIFIED:
        missing.append("delivery_method")
    return missing


def missing_fields(dossier: pb.Dossier) -> list[str]:
    if dossier.HasField("birth_declaration"):
        return missing_birth_fields(dossier.birth_declaration)
    return missing_death_fields(dossier.death_declaration)
