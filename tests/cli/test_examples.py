"""scenarios/examples/*.json are the declarations of the population `seed-demo` loads."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cli.declarations import read_declaration
from cli.demo_data import EXAMPLE, demo_population

EXAMPLES = Path(__file__).resolve().parents[2] / "scenarios" / "examples"


def test_example_files_match_the_seeded_population() -> None:
    assert read_declaration(EXAMPLES / "birth.json", "birth") == EXAMPLE.birth
    assert read_declaration(EXAMPLES / "death.json", "death") == EXAMPLE.death


def test_declarations_refer_to_seeded_people_and_documents() -> None:
    citizens = {c.personal_id_number: c for c in EXAMPLE.citizens}
    birth, death = EXAMPLE.birth, EXAMPLE.death
    assert {birth.mother_id_number, birth.father_id_number, birth.declarant.personal_id_number} <= (
        citizens.keys()
    )
    (certificate,) = EXAMPLE.birth_certificates
    assert certificate.certificate_number == birth.birth_certificate_number
    assert certificate.mother_id_number == birth.mother_id_number
    assert certificate.date_of_birth == birth.child_date_of_birth
    assert citizens[birth.mother_id_number].household_id == birth.residence_household_id
    (notice,) = EXAMPLE.death_notices
    assert notice.deceased_id_number == death.deceased_id_number in citizens
    assert notice.notice_number == death.death_notice_number
    (pensioner,) = EXAMPLE.participants
    assert pensioner.personal_id_number == death.deceased_id_number and pensioner.pensioner


def test_each_run_gets_its_own_identifiers() -> None:
    day = dt.date(2026, 1, 5)
    one, two = (demo_population(t, born_on=day, died_on=day) for t in (7, 8))
    ids_one = {c.personal_id_number for c in one.citizens}
    ids_two = {c.personal_id_number for c in two.citizens}
    assert len(ids_one) == 4 and not ids_one & ids_two
    assert one.birth.birth_certificate_number != two.birth.birth_certificate_number
