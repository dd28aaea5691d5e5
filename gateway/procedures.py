"""The procedure groups as data: each group is one description (its steps,
each naming its agency and its handler once; its form and what the form must
hold; its time limit; its result), and one table holds them. The saga, the
executor, the lanes, the API and the time limits read the table and know no
kinds: a dossier of a kind the table does not hold is refused, never run as
another kind.

Group 1 (birth): verify the e-birth certificate (hospital) → register the
birth and assign the ID number (civil status) → register the child's permanent
residence (police) → issue the child's health insurance card (VSS) → deliver
the result. Group 2 (death): verify the death notice → register the death →
remove the permanent residence → end card and pension, settle the funeral
allowance (VSS) → deliver. Decree 63/2024/ND-CP; Decision 296/QD-VPCP.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from google.protobuf.message import Message

from gateway import steps
from gateway.forms import check_birth_declaration, check_death_declaration
from gateway.steps import Handler
from lienthong.common.v1 import common_pb2
from lienthong.events.v1 import events_pb2 as ev
from lienthong.gateway.v1 import gateway_pb2 as pb

# The agency name of the gateway's own steps, which no registry runs.
GATEWAY = "gateway"

Form = TypeVar("Form", bound=Message)
Form_contra = TypeVar("Form_contra", bound=Message, contravariant=True)


class UnknownProcedureError(LookupError):
    """A dossier kind, or a step of a group, that the table does not hold."""


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
    # The registry that runs it (its lane), or GATEWAY for the gateway's own
    # step, which the saga does itself.
    agency: str
    # What the step does at its agency (gateway/steps.py); None only for a
    # GATEWAY step.
    handler: Handler | None = None
    # Steps that must have taken effect (succeeded, or skipped with nothing to
    # do) before this one runs; when one was refused this step is not run.
    needs: tuple[str, ...] = ()
    # None for a step that is not a procedure of its own (a hospital's
    # verification, the delivery of the result).
    procedure: ProcedureOfStep | None = field(default=None)

    def __post_init__(self) -> None:
        if (self.handler is None) != (self.agency == GATEWAY):
            raise ValueError(
                f"step {self.name}: an agency's step names its handler, the gateway's own none"
            )


class FormRules(Protocol[Form_contra]):
    """The rules of a form the contract cannot express (gateway/forms.py):
    raises InvalidArgument naming each bad field as `<field>.<name>`."""

    def __call__(self, form: Form_contra, *, field: str, latest: dt.date) -> None: ...


@dataclass(frozen=True)
class ProcedureGroup(Generic[Form]):
    """One procedure group, whole."""

    kind: pb.DossierKind.ValueType
    # The group's name: dossier ids start with it, and its time limit is the
    # row `group.<name>` of gateway/data/time_limits.csv.
    name: str
    # In words, for the declarant: "birth declaration (Form 01)".
    title: str
    # The field of the form in the `declaration` oneof of Dossier,
    # DossierSupplemented and SupplementDossierRequest (the same name in each).
    form_field: str
    # The field of the result in the `result` oneof of Dossier and
    # StepOutcome: each step's outcome carries its part, merged in.
    result_field: str
    # The form's rules, at submission and on the form a supplement makes.
    check_form: FormRules[Form]
    # The fields the procedures cannot run without: missing ones are asked for.
    missing_fields: Callable[[Form], list[str]]
    steps: tuple[StepPlan, ...]

    def __post_init__(self) -> None:
        # The saga, the executor and the API move the form and the result
        # between these messages by the field's name.
        for message, oneof, name in (
            (pb.Dossier, "declaration", self.form_field),
            (ev.DossierSupplemented, "declaration", self.form_field),
            (pb.SupplementDossierRequest, "declaration", self.form_field),
            (pb.Dossier, "result", self.result_field),
            (ev.StepOutcome, "result", self.result_field),
        ):
            fields = message.DESCRIPTOR.oneofs_by_name[oneof].fields
            if name not in {f.name for f in fields}:
                raise ValueError(
                    f"group {self.name}: {message.DESCRIPTOR.name} has no {oneof} field {name}"
                )
        names = [plan.name for plan in self.steps]
        if len(set(names)) != len(names):
            raise ValueError(f"group {self.name}: a step name appears twice")
        for at, plan in enumerate(self.steps):
            earlier = set(names[:at])
            if not set(plan.needs) <= earlier:
                raise ValueError(f"group {self.name}: {plan.name} needs a step not before it")

    def form(self, dossier: pb.Dossier) -> Form:
        form: Form = getattr(dossier, self.form_field)
        return form

    def missing(self, dossier: pb.Dossier) -> list[str]:
        """The form fields the dossier still lacks."""
        return self.missing_fields(self.form(dossier))

    def step(self, name: str) -> StepPlan:
        for plan in self.steps:
            if plan.name == name:
                return plan
        raise UnknownProcedureError(f"the {self.name} procedure has no step {name!r}")

    def add_result(self, dossier: pb.Dossier, part: Message) -> None:
        """A step's part of the result, merged into the dossier's."""
        getattr(dossier, self.result_field).MergeFrom(part)


class ProcedureTable:
    """The procedure groups by dossier kind."""

    def __init__(self, *groups: ProcedureGroup[Any]) -> None:
        self._groups: dict[int, ProcedureGroup[Any]] = {}
        for group in groups:
            self.register(group)

    def register(self, group: ProcedureGroup[Any]) -> None:
        if group.kind in self._groups:
            raise ValueError(f"dossier kind {group.kind} is already the {group.name} procedure")
        if group.name in {known.name for known in self}:
            raise ValueError(f"a procedure group is already named {group.name}")
        # A step's name is its row in the time-limit table and part of its
        # agency request ids: a name in two groups must be the same step.
        for plan in group.steps:
            for known in self:
                other = next((p for p in known.steps if p.name == plan.name), None)
                if other is not None and (other.agency, other.handler) != (
                    plan.agency,
                    plan.handler,
                ):
                    raise ValueError(
                        f"step {plan.name} of {group.name} is another step of {known.name}"
                    )
        self._groups[group.kind] = group

    @contextmanager
    def registered(self, group: ProcedureGroup[Any]) -> Iterator[ProcedureGroup[Any]]:
        """The group in the table for a while (a test's own procedure)."""
        self.register(group)
        try:
            yield group
        finally:
            del self._groups[group.kind]

    def __iter__(self) -> Iterator[ProcedureGroup[Any]]:
        return iter(self._groups.values())

    def of_kind(self, kind: int) -> ProcedureGroup[Any]:
        group = self._groups.get(kind)
        if group is None:
            known = ", ".join(f"{g.kind} ({g.name})" for g in self)
            raise UnknownProcedureError(
                f"dossier kind {kind} is not a procedure this gateway runs (it runs {known})"
            )
        return group

    def of(self, dossier: pb.Dossier) -> ProcedureGroup[Any]:
        return self.of_kind(dossier.kind)

    def plan(self, dossier: pb.Dossier, step: str) -> StepPlan:
        """The step of the dossier's group by its name."""
        return self.of(dossier).step(step)


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


BIRTH: ProcedureGroup[pb.BirthDeclaration] = ProcedureGroup(
    kind=pb.DOSSIER_KIND_BIRTH,
    name="birth",
    title="birth declaration (Form 01)",
    form_field="birth_declaration",
    result_field="birth_result",
    check_form=check_birth_declaration,
    missing_fields=missing_birth_fields,
    steps=(
        StepPlan("verify_birth_certificate", "health", steps.verify_birth_certificate),
        StepPlan(
            "register_birth",
            "population",
            steps.register_birth,
            needs=("verify_birth_certificate",),
            procedure=ProcedureOfStep("birth_registration", "birth registration"),
        ),
        StepPlan(
            "register_permanent_residence",
            "population",
            steps.register_permanent_residence,
            needs=("register_birth",),
            procedure=ProcedureOfStep("permanent_residence", "permanent residence"),
        ),
        # The card's province is the residence's, so the card waits for it.
        StepPlan(
            "issue_health_insurance_card",
            "insurance",
            steps.issue_health_insurance_card,
            needs=("register_birth", "register_permanent_residence"),
            procedure=ProcedureOfStep("health_insurance_card", "health insurance card"),
        ),
        StepPlan("deliver_result", GATEWAY),
    ),
)

DEATH: ProcedureGroup[pb.DeathDeclaration] = ProcedureGroup(
    kind=pb.DOSSIER_KIND_DEATH,
    name="death",
    title="death declaration (Form 02)",
    form_field="death_declaration",
    result_field="death_result",
    check_form=check_death_declaration,
    missing_fields=missing_death_fields,
    steps=(
        StepPlan("verify_death_notice", "health", steps.verify_death_notice),
        StepPlan(
            "register_death",
            "population",
            steps.register_death,
            needs=("verify_death_notice",),
            procedure=ProcedureOfStep("death_registration", "death registration"),
        ),
        StepPlan(
            "remove_permanent_residence",
            "population",
            steps.remove_permanent_residence,
            needs=("register_death",),
            procedure=ProcedureOfStep("residence_removal", "removal of the permanent residence"),
        ),
        # Ending the card and pension always runs; the allowance is the
        # procedure the declarant may choose.
        StepPlan(
            "settle_insurance",
            "insurance",
            steps.settle_insurance,
            needs=("register_death",),
            procedure=ProcedureOfStep(
                "funeral_allowance", "funeral allowance", requested=_funeral_allowance_claimed
            ),
        ),
        StepPlan("deliver_result", GATEWAY),
    ),
)

# Every procedure the gateway runs, by dossier kind. The legal time limits
# (of each group, each step, the supplement window) are data:
# gateway/time_limits.py.
PROCEDURES = ProcedureTable(BIRTH, DEATH)
