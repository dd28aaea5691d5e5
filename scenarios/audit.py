"""What the registries themselves recorded for a replay: dossiers lost and
effects made twice, counted from the agencies' own SQLite files, not from the
gateway's view of its dossiers.

A declaration that was accepted and should have completed is *lost* when any
of its effects is missing: for a birth, the child's registration (found by the
birth certificate), one permanent residence and one insurance card; for a
death, the death registration, the removal of the permanent residence, the
death recorded by social insurance, and the funeral allowance when it was
claimed and is due. An effect recorded more than once counts in
*duplicated_effects*, once per extra record. A declaration that should have
been refused yet left an effect counts in *unexpected_effects*.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from scenarios.declarations import PlannedDeclaration


@dataclass
class AuditResult:
    checked: int = 0
    lost: int = 0
    duplicated_effects: int = 0
    unexpected_effects: int = 0
    # A few examples of each finding, for the report (idempotency keys).
    examples: dict[str, list[str]] = field(default_factory=dict)

    def _note(self, finding: str, key: str) -> None:
        found = self.examples.setdefault(finding, [])
        if len(found) < 5:
            found.append(key)


def _read_only(path: Path) -> sqlite3.Connection:
    # mode=ro: the audit can run while the registries still serve.
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True)


def _count(conn: sqlite3.Connection, sql: str, *args: str) -> int:
    return int(conn.execute(sql, args).fetchone()[0])


class _Registries:
    def __init__(self, population: sqlite3.Connection, insurance: sqlite3.Connection) -> None:
        self.population = population
        self.insurance = insurance

    def children(self, certificate: str) -> list[str]:
        rows = self.population.execute(
            "SELECT personal_id_number FROM citizens WHERE birth_certificate_number = ?",
            (certificate,),
        ).fetchall()
        return [str(r[0]) for r in rows]

    def residences(self, person: str) -> int:
        return _count(
            self.population,
            "SELECT COUNT(*) FROM residences WHERE personal_id_number = ?",
            person,
        )

    def current_residences(self, person: str) -> int:
        return _count(
            self.population,
            "SELECT COUNT(*) FROM residences WHERE personal_id_number = ? AND removed_on IS NULL",
            person,
        )

    def cards(self, person: str) -> int:
        return _count(
            self.insurance,
            "SELECT COUNT(*) FROM cards JOIN participants USING (social_insurance_number) "
            "WHERE participants.personal_id_number = ?",
            person,
        )

    def death_registrations(self, person: str) -> int:
        return _count(
            self.population, "SELECT COUNT(*) FROM deaths WHERE personal_id_number = ?", person
        )

    def insured(self, person: str) -> tuple[bool, bool]:
        """(known to social insurance, death recorded there)."""
        row = self.insurance.execute(
            "SELECT date_of_death FROM participants WHERE personal_id_number = ?", (person,)
        ).fetchone()
        return row is not None, row is not None and bool(row[0])

    def allowances(self, person: str) -> int:
        return _count(
            self.insurance,
            "SELECT COUNT(*) FROM funeral_allowances WHERE personal_id_number = ?",
            person,
        )


def _birth(registries: _Registries, planned: PlannedDeclaration, result: AuditResult) -> None:
    assert planned.birth_certificate_number is not None
    children = registries.children(planned.birth_certificate_number)
    if planned.expected_state != "COMPLETED":
        if children:
            result.unexpected_effects += len(children)
            result._note("unexpected_effects", planned.key)
        return
    if not children:
        result.lost += 1
        result._note("lost", planned.key)
        return
    extra = len(children) - 1
    child = children[0]
    residences = registries.residences(child)
    cards = registries.cards(child)
    extra += max(0, residences - 1) + max(0, cards - 1)
    if extra:
        result.duplicated_effects += extra
        result._note("duplicated_effects", planned.key)
    if residences == 0 or cards == 0:
        result.lost += 1
        result._note("lost", planned.key)


def _death(registries: _Registries, planned: PlannedDeclaration, result: AuditResult) -> None:
    person = planned.deceased_id_number
    assert person is not None
    if planned.expected_state != "COMPLETED":
        return  # the already dead were seeded dead: nothing tells a new effect apart
    registrations = registries.death_registrations(person)
    known, death_recorded = registries.insured(person)
    allowances = registries.allowances(person)
    claimed = planned.request.declaration.claim_funeral_allowance  # type: ignore[union-attr]
    due = claimed and bool(planned.funeral_allowance_eligible)
    extra = max(0, registrations - 1) + max(0, allowances - 1)
    if extra:
        result.duplicated_effects += extra
        result._note("duplicated_effects", planned.key)
    missing = (
        registrations == 0
        or registries.current_residences(person) > 0
        or (known and not death_recorded)
        or (due and allowances == 0)
    )
    if missing:
        result.lost += 1
        result._note("lost", planned.key)
    if allowances and not due:
        result.unexpected_effects += allowances
        result._note("unexpected_effects", planned.key)


def audit(
    declarations: Iterable[PlannedDeclaration],
    accepted: Collection[str],
    *,
    population_db: Path,
    insurance_db: Path,
) -> AuditResult:
    """Check every distinct declaration whose submission was accepted
    (`accepted`: idempotency keys) against the registries' records."""
    result = AuditResult()
    seen: set[str] = set()
    with (
        closing(_read_only(population_db)) as population,
        closing(_read_only(insurance_db)) as insurance,
    ):
        registries = _Registries(population, insurance)
        for planned in declarations:
            if planned.key in seen or planned.key not in accepted:
                continue
            seen.add(planned.key)
            result.checked += 1
            if planned.kind == "birth":
                _birth(registries, planned, result)
            else:
                _death(registries, planned, result)
    return result
