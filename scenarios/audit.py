"""What the registries themselves recorded for a replay: dossiers lost and
effects made twice, counted from the agencies' own records (their SQLite
files or PostgreSQL databases), not from the gateway's view of its dossiers.

A declaration that was accepted and should have completed is *lost* when any
of its effects is missing: for a birth, the child's registration (found by the
birth certificate), one permanent residence and one insurance card (no card
for a birth declared after the child's entitlement ended, which completes
with that refusal); for a
death, the death registration, the removal of the permanent residence, the
death recorded by social insurance, and the funeral allowance when it was
claimed and is due. Whether it is due, and how much, the audit judges by the
scenarios' own reading of the rule (scenarios/allowance_rule.py), not the
registry's: an amount other than 10 × the base salary of the month of death
counts in *wrong_amounts*. A death declared twice expects one registration
and at most one allowance. An effect recorded more than once counts in
*duplicated_effects*, once per extra record. A declaration that should have
been refused yet left an effect counts in *unexpected_effects*.

What each kind of declaration should leave is one entry of EFFECTS, by the
kind's group name (gateway/procedures.py); a kind without one is refused,
never checked as another kind.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Callable, Collection, Iterable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from common.database_url import is_postgres
from scenarios.allowance_rule import allowance_vnd
from scenarios.declarations import PlannedDeclaration


@dataclass
class AuditResult:
    checked: int = 0
    lost: int = 0
    duplicated_effects: int = 0
    unexpected_effects: int = 0
    # Funeral allowances paid at another amount than the rule's (10 × the base
    # salary of the month of death, scenarios/allowance_rule.py).
    wrong_amounts: int = 0
    # A few examples of each finding, for the report (idempotency keys).
    examples: dict[str, list[str]] = field(default_factory=dict)
    # What the audit could not check, in words (an agency plugged in from
    # elsewhere keeps its records in files the audit cannot read); empty
    # when it checked everything.
    not_checked: list[str] = field(default_factory=list)

    def note(self, finding: str, key: str) -> None:
        found = self.examples.setdefault(finding, [])
        if len(found) < 5:
            found.append(key)


class Records(Protocol):
    """A read-only connection to a registry's records: sqlite3's, or psycopg's."""

    def execute(self, query: str) -> Iterable[Any]: ...

    def close(self) -> None: ...


def read_only(location: str | Path) -> Records:
    """The registry's SQLite file, or its PostgreSQL database (a URL), for reading only."""
    if is_postgres(location):
        import psycopg  # noqa: PLC0415  (only a PostgreSQL store needs the driver)

        # Read only, in one snapshot (REPEATABLE READ): the counts of every
        # table agree although the registries may still serve.
        connection = psycopg.connect(str(location), connect_timeout=10)
        connection.read_only = True
        connection.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        return connection
    # mode=ro: the audit can run while the registries still serve.
    return sqlite3.connect(f"file:{location}?mode=ro", uri=True)


class PopulationRecords(Protocol):
    """What the audit asks of the population registry's records."""

    def children(self, certificate: str) -> list[str]:
        """The ID numbers of the citizens registered with this birth certificate."""
        ...

    def residences(self, person: str) -> int: ...

    def current_residences(self, person: str) -> int: ...

    def death_registrations(self, person: str) -> int: ...


class InsuranceRecords(Protocol):
    """What the audit asks of the social insurance registry's records."""

    def cards(self, person: str) -> int: ...

    def insured(self, person: str) -> tuple[bool, bool]:
        """(known to social insurance, death recorded there)."""
        ...

    def allowances(self, person: str) -> list[int] | None:
        """The amounts paid to this person's funeral, one per payment; None
        when these records cannot tell (the contract has no read of them)."""
        ...


class PopulationFile:
    """Our population registry's own file, read once in bulk: one pass over
    each table instead of a query per declaration (a national-year replay
    audits 40,000 declarations against 200,000 citizens)."""

    def __init__(self, population: Records) -> None:
        self._children: dict[str, list[str]] = {}
        for certificate, person in population.execute(
            "SELECT birth_certificate_number, personal_id_number FROM citizens "
            "WHERE birth_certificate_number <> ''"
        ):
            self._children.setdefault(str(certificate), []).append(str(person))
        self._residences: dict[str, tuple[int, int]] = {
            str(person): (int(total), int(current))
            for person, total, current in population.execute(
                # CASE, not SUM(boolean): the same SQL for SQLite and PostgreSQL.
                "SELECT personal_id_number, COUNT(*), "
                "COALESCE(SUM(CASE WHEN removed_on IS NULL THEN 1 ELSE 0 END), 0) "
                "FROM residences GROUP BY personal_id_number"
            )
        }
        self._deaths: dict[str, int] = {
            str(person): int(n)
            for person, n in population.execute(
                "SELECT personal_id_number, COUNT(*) FROM deaths GROUP BY personal_id_number"
            )
        }

    def children(self, certificate: str) -> list[str]:
        return self._children.get(certificate, [])

    def residences(self, person: str) -> int:
        return self._residences.get(person, (0, 0))[0]

    def current_residences(self, person: str) -> int:
        return self._residences.get(person, (0, 0))[1]

    def death_registrations(self, person: str) -> int:
        return self._deaths.get(person, 0)


class InsuranceFile:
    """Our social insurance registry's own file, read once in bulk."""

    def __init__(self, insurance: Records) -> None:
        self._insured: dict[str, bool] = {
            str(person): bool(died)
            for person, died in insurance.execute(
                "SELECT personal_id_number, date_of_death FROM participants"
            )
        }
        self._cards: dict[str, int] = {
            str(person): int(n)
            for person, n in insurance.execute(
                "SELECT participants.personal_id_number, COUNT(*) FROM cards "
                "JOIN participants USING (social_insurance_number) "
                "GROUP BY participants.personal_id_number"
            )
        }
        self._allowances: dict[str, list[int]] = {}
        for person, amount in insurance.execute(
            "SELECT personal_id_number, amount_vnd FROM funeral_allowances"
        ):
            self._allowances.setdefault(str(person), []).append(int(amount))

    def cards(self, person: str) -> int:
        return self._cards.get(person, 0)

    def insured(self, person: str) -> tuple[bool, bool]:
        if person not in self._insured:
            return False, False
        return True, self._insured[person]

    def allowances(self, person: str) -> list[int] | None:
        return self._allowances.get(person, [])


def _birth(
    population: PopulationRecords,
    insurance: InsuranceRecords,
    planned: PlannedDeclaration,
    result: AuditResult,
) -> None:
    assert planned.birth_certificate_number is not None
    children = population.children(planned.birth_certificate_number)
    if planned.expected_state not in ("COMPLETED", "COMPLETED_WITH_REFUSALS"):
        if children:
            result.unexpected_effects += len(children)
            result.note("unexpected_effects", planned.key)
        return
    # A birth declared too late for a card: registered, resident, no card.
    card_due = planned.expected_state == "COMPLETED"
    if not children:
        result.lost += 1
        result.note("lost", planned.key)
        return
    extra = len(children) - 1
    child = children[0]
    residences = population.residences(child)
    cards = insurance.cards(child)
    extra += max(0, residences - 1) + max(0, cards - 1)
    if extra:
        result.duplicated_effects += extra
        result.note("duplicated_effects", planned.key)
    if residences == 0 or (card_due and cards == 0):
        result.lost += 1
        result.note("lost", planned.key)
    if cards and not card_due:
        result.unexpected_effects += cards
        result.note("unexpected_effects", planned.key)


def _births(
    population: PopulationRecords,
    insurance: InsuranceRecords,
    declared: list[PlannedDeclaration],
    result: AuditResult,
) -> None:
    for planned in declared:
        _birth(population, insurance, planned, result)


def _deaths(
    population: PopulationRecords,
    insurance: InsuranceRecords,
    declared: list[PlannedDeclaration],
    result: AuditResult,
) -> None:
    by_person: dict[str, list[PlannedDeclaration]] = {}
    for planned in declared:
        if planned.expected_state == "COMPLETED":
            # The already dead were seeded dead: nothing tells a new effect apart.
            assert planned.deceased_id_number is not None
            by_person.setdefault(planned.deceased_id_number, []).append(planned)
    for person, of_person in by_person.items():
        _death(population, insurance, person, of_person, result)


# The effects each kind of declaration should leave, checked over all the
# accepted declarations of that kind at once (a death declared twice is one death).
EFFECTS: dict[
    str,
    Callable[[PopulationRecords, InsuranceRecords, list[PlannedDeclaration], AuditResult], None],
] = {
    "birth": _births,
    "death": _deaths,
}


def _death(
    population: PopulationRecords,
    insurance: InsuranceRecords,
    person: str,
    declared: list[PlannedDeclaration],
    result: AuditResult,
) -> None:
    """One deceased, over every accepted declaration of that death that should
    complete: a death declared twice still has one registration and at most
    one allowance, due when any declaration claimed it and the rule says so."""
    first = declared[0]
    registrations = population.death_registrations(person)
    known, death_recorded = insurance.insured(person)
    allowances = insurance.allowances(person)
    # Unknown (read through a contract without such a read): not checked.
    paid = [] if allowances is None else allowances
    due = any(
        d.request.declaration.claim_funeral_allowance  # type: ignore[union-attr]
        and bool(d.funeral_allowance_eligible)
        for d in declared
    )
    extra = max(0, registrations - 1) + (max(0, len(paid) - 1) if due else 0)
    if extra:
        result.duplicated_effects += extra
        result.note("duplicated_effects", first.key)
    missing = (
        registrations == 0
        or population.current_residences(person) > 0
        or (known and not death_recorded)
        or (due and allowances is not None and not paid)
    )
    if missing:
        result.lost += 1
        result.note("lost", first.key)
    if paid and not due:
        result.unexpected_effects += len(paid)
        result.note("unexpected_effects", first.key)
    died = dt.date.fromisoformat(first.request.declaration.date_of_death)  # type: ignore[union-attr]
    if due and paid and paid[0] != allowance_vnd(died):
        result.wrong_amounts += 1
        result.note("wrong_amounts", first.key)


def audit(
    declarations: Iterable[PlannedDeclaration],
    accepted: Collection[str],
    *,
    population_db: str | Path,
    insurance_db: str | Path,
) -> AuditResult:
    """The audit against our registries' own records (SQLite files or PostgreSQL URLs)."""
    with (
        closing(read_only(population_db)) as population,
        closing(read_only(insurance_db)) as insurance,
    ):
        return audit_records(
            declarations, accepted, PopulationFile(population), InsuranceFile(insurance)
        )


def audit_records(
    declarations: Iterable[PlannedDeclaration],
    accepted: Collection[str],
    population: PopulationRecords,
    insurance: InsuranceRecords,
) -> AuditResult:
    """Check every distinct declaration whose submission was accepted
    (`accepted`: idempotency keys) against the registries' records."""
    result = AuditResult()
    seen: set[str] = set()
    by_kind: dict[str, list[PlannedDeclaration]] = {}
    for planned in declarations:
        if planned.key in seen or planned.key not in accepted:
            continue
        seen.add(planned.key)
        result.checked += 1
        by_kind.setdefault(planned.kind, []).append(planned)
    unknown = sorted(set(by_kind) - set(EFFECTS))
    if unknown:
        raise ValueError(f"the audit knows no effects of a {', '.join(unknown)} declaration")
    for kind, check in EFFECTS.items():
        check(population, insurance, by_kind.get(kind, []), result)
    return result
