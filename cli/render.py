"""How dossiers look on screen: the timeline table and the results in words.

rich renders tables on a terminal and plain text elsewhere; off a terminal
the console is given a fixed width so piped output and logs do not wrap
identifiers at 80 columns.
"""

from __future__ import annotations

import sys
import time

from google.protobuf.timestamp_pb2 import Timestamp
from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from gateway.saga import TERMINAL
from lienthong.gateway.v1 import gateway_pb2 as gw

PIPE_WIDTH = 140

_DOSSIER_STYLES = {
    gw.DOSSIER_STATE_RECEIVED: "cyan",
    gw.DOSSIER_STATE_IN_PROGRESS: "yellow",
    gw.DOSSIER_STATE_NEEDS_SUPPLEMENT: "magenta",
    gw.DOSSIER_STATE_COMPLETED: "bold green",
    gw.DOSSIER_STATE_REJECTED: "bold red",
    gw.DOSSIER_STATE_COMPLETED_WITH_REFUSALS: "bold dark_orange",
}
_STEP_STYLES = {
    gw.STEP_STATE_RUNNING: "yellow",
    gw.STEP_STATE_SUCCEEDED: "green",
    gw.STEP_STATE_REJECTED: "red",
    gw.STEP_STATE_SKIPPED: "dim",
    gw.STEP_STATE_NOT_RUN: "dim",
}
_PROCEDURE_WORDS = {
    gw.PROCEDURE_STATE_PENDING: "pending",
    gw.PROCEDURE_STATE_DONE: "done",
    gw.PROCEDURE_STATE_REFUSED: "REFUSED",
    gw.PROCEDURE_STATE_SKIPPED: "not run",
    gw.PROCEDURE_STATE_NOT_REQUESTED: "not requested",
}
TERMINAL_STATES = TERMINAL


def make_console(*, stderr: bool = False) -> Console:
    probe = Console(stderr=stderr)
    if probe.is_terminal:
        return probe
    return Console(stderr=stderr, width=PIPE_WIDTH, soft_wrap=False)


def is_terminal() -> bool:
    return sys.stdout.isatty()


def dossier_state(state: int) -> str:
    """DOSSIER_STATE_COMPLETED → COMPLETED."""
    return gw.DossierState.Name(state).removeprefix("DOSSIER_STATE_")  # type: ignore[arg-type]


def step_state(state: int) -> str:
    return gw.StepState.Name(state).removeprefix("STEP_STATE_")  # type: ignore[arg-type]


def kind_name(kind: int) -> str:
    return gw.DossierKind.Name(kind).removeprefix("DOSSIER_KIND_").lower()  # type: ignore[arg-type]


def _is_set(stamp: Timestamp) -> bool:
    return stamp.seconds != 0 or stamp.nanos != 0


def elapsed_ms(step: gw.Step, now_ms: int | None = None) -> int | None:
    """How long the step took, or has been running; None before it started."""
    if not _is_set(step.started_at):
        return None
    if _is_set(step.finished_at):
        end = step.finished_at.ToMilliseconds()
    else:
        end = now_ms if now_ms is not None else int(time.time() * 1000)
    return max(0, end - step.started_at.ToMilliseconds())


def step_outcome(step: gw.Step) -> str:
    """A step's outcome in words, its reason in brackets: the timeline's last column."""
    outcome = step.outcome or ""
    if step.reason:
        outcome = f"{outcome} [{step.reason}]" if outcome else step.reason
    if step.deadline_breached:
        outcome = f"{outcome} (after its legal time limit)"
    return outcome


def timeline_table(dossier: gw.Dossier, *, title: str | None = None) -> Table:
    state = dossier_state(dossier.state)
    heading = title or f"{kind_name(dossier.kind)} dossier {dossier.dossier_id}"
    table = Table(
        # A Text, not markup: names and ids are data, never style tags.
        title=Text.assemble(heading, " — ", (state, _DOSSIER_STYLES.get(dossier.state, ""))),
        title_justify="left",
        expand=False,
    )
    table.add_column("#", justify="right")
    table.add_column("step")
    table.add_column("agency")
    table.add_column("state")
    table.add_column("ms", justify="right")
    table.add_column("tries", justify="right")
    table.add_column("outcome")
    now_ms = int(time.time() * 1000)
    for number, step in enumerate(dossier.timeline, start=1):
        took = elapsed_ms(step, now_ms)
        outcome = step_outcome(step)
        table.add_row(
            str(number),
            escape(step.name),
            escape(step.agency),
            Text(step_state(step.state), style=_STEP_STYLES.get(step.state, "")),
            "" if took is None else f"{took:,}",
            str(step.attempts) if step.attempts else "",
            Text(outcome),
        )
    if not dossier.timeline:
        table.add_row("", Text("(no step yet)", style="dim"), "", "", "", "", "")
    return table


def vnd(amount: int) -> str:
    return f"{amount:,} VND"


def procedure_line(procedure: gw.ProcedureResult) -> str:
    """One procedure's own result: "health_insurance_card (insurance): REFUSED — …"."""
    words = _PROCEDURE_WORDS.get(procedure.state, "unknown")
    line = f"{procedure.procedure.replace('_', ' ')} ({procedure.agency}): {words}"
    if procedure.state in (gw.PROCEDURE_STATE_REFUSED, gw.PROCEDURE_STATE_SKIPPED):
        detail = procedure.outcome or ""
        line += f" — {detail} ({procedure.reason})" if procedure.reason else f" — {detail}"
    return line


def result_lines(dossier: gw.Dossier) -> list[str]:
    """The outcome of a dossier in sentences, as the declarant would be told it."""
    lines: list[str] = []
    if dossier.state == gw.DOSSIER_STATE_COMPLETED_WITH_REFUSALS:
        lines.append(
            "Completed with refusals: what was done stands; "
            "the procedures refused and why are listed below."
        )
    if dossier.procedures and dossier.state in TERMINAL_STATES:
        lines.append("Each procedure's own result:")
        lines.extend(f"  • {procedure_line(p)}" for p in dossier.procedures)
    if dossier.state == gw.DOSSIER_STATE_REJECTED and dossier.HasField("rejection"):
        rejection = dossier.rejection
        lines.append(
            f"Rejected by {rejection.agency or 'the gateway'}: {rejection.message} "
            f"({rejection.reason})"
        )
    if dossier.state == gw.DOSSIER_STATE_NEEDS_SUPPLEMENT and dossier.HasField("supplement"):
        supplement = dossier.supplement
        due = (
            supplement.due_at.ToDatetime().date().isoformat() if _is_set(supplement.due_at) else ""
        )
        lines.append(
            "Needs a supplement: "
            + ", ".join(supplement.missing_fields)
            + (f" (due by {due})" if due else "")
        )
    result = dossier.WhichOneof("result")
    if result == "birth_result":
        lines.extend(birth_result_lines(dossier.birth_result))
    elif result == "death_result":
        lines.extend(death_result_lines(dossier.death_result))
    if dossier.deadline_breached:
        lines.append("The legal time limit for this dossier was exceeded.")
    return lines


def birth_result_lines(result: gw.BirthResult) -> list[str]:
    lines = []
    if result.personal_id_number:
        lines.append(
            f"Birth registered; the child's personal ID number is {result.personal_id_number}."
        )
    if result.household_id or result.residence_address:
        lines.append(
            f"Permanent residence registered in household {result.household_id or '?'}"
            + (f", {result.residence_address}." if result.residence_address else ".")
        )
    if result.HasField("card"):
        card = result.card
        lines.append(
            f"Health insurance card {card.social_insurance_number}"
            + (f" (code {card.card_code})" if card.card_code else "")
            + f", valid from {card.valid_from} to {card.valid_to}"
            + (
                f", group {card.beneficiary_group} level {card.benefit_level}"
                if card.beneficiary_group
                else ""
            )
            + (
                f", initial facility {card.initial_facility_code}"
                if card.initial_facility_code
                else ""
            )
            + "."
        )
    return lines


def death_result_lines(result: gw.DeathResult) -> list[str]:
    lines = []
    if result.death_registered_on:
        late = " (declared late: more than 15 days after the death)" if result.declared_late else ""
        lines.append(f"Death registered on {result.death_registered_on}{late}.")
    if result.residence_removed_from:
        lines.append(f"Permanent residence removed from household {result.residence_removed_from}.")
    lines.append(
        "Health insurance card ended." if result.card_ended else "No health insurance card to end."
    )
    if result.pension_stopped_from:
        lines.append(f"Pension stopped from {result.pension_stopped_from}.")
    if result.HasField("funeral_allowance"):
        allowance = result.funeral_allowance
        if allowance.eligible:
            paid = ""
            if allowance.HasField("payee") and allowance.payee.full_name:
                paid = f", paid to {allowance.payee.full_name}"
                payee = allowance.payee
                if payee.bank_account:
                    paid += f" (account {payee.bank_account} {payee.bank_name})".replace(" )", ")")
            base = (
                f" = 10 × base salary {vnd(allowance.base_salary_vnd)}"
                if allowance.base_salary_vnd
                else ""
            )
            reference = (
                f", reference {allowance.payment_reference}" if allowance.payment_reference else ""
            )
            why = f" Eligible: {allowance.reason}." if allowance.reason else ""
            lines.append(
                f"Funeral allowance {vnd(allowance.amount_vnd)}{base}{paid}{reference}.{why}"
            )
        else:
            lines.append(
                f"Funeral allowance: not eligible — {allowance.reason or 'no reason given'}."
            )
    else:
        lines.append("Funeral allowance: not claimed.")
    return lines


def dossier_view(dossier: gw.Dossier, *, title: str | None = None) -> RenderableType:
    """The timeline table followed by the results in words."""
    parts: list[RenderableType] = [timeline_table(dossier, title=title)]
    parts.extend(Text(line) for line in result_lines(dossier))
    return Group(*parts)
