"""The audit checks each kind of declaration by its own entry, and refuses a
kind it has none for rather than check it as a death."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lienthong.gateway.v1 import gateway_pb2 as gw
from scenarios.audit import audit
from scenarios.declarations import PlannedDeclaration
from services.insurance.store import open_store as open_insurance_store
from services.population.store import open_store


@pytest.fixture
def registries(tmp_path: Path) -> dict[str, Path]:
    """Empty registries, with the registries' own schemas."""
    paths = {"population_db": tmp_path / "p.sqlite3", "insurance_db": tmp_path / "i.sqlite3"}
    open_store(paths["population_db"]).close()
    open_insurance_store(paths["insurance_db"]).close()
    return paths


def planned(key: str, kind: Any) -> PlannedDeclaration:
    return PlannedDeclaration(
        key=key,
        kind=kind,
        request=gw.SubmitDeathDeclarationRequest(
            idempotency_key=key,
            declaration=gw.DeathDeclaration(
                deceased_id_number="001050000123", date_of_death="2026-11-20"
            ),
        ),
        fault=None,
        expected_state="COMPLETED",
        expected_reason=None,
        birth_certificate_number="GCS-01001-0000001",
        deceased_id_number="001050000123",
    )


def test_each_kind_is_checked_by_its_own_effects(registries: dict[str, Path]) -> None:
    # Nothing in the registries: the birth and the death are both lost.
    declared = [planned("b-1", "birth"), planned("d-1", "death")]
    found = audit(declared, {"b-1", "d-1"}, **registries)
    assert (found.checked, found.lost) == (2, 2)
    assert found.examples["lost"] == ["b-1", "d-1"]


def test_a_kind_the_audit_has_no_effects_for_is_refused(registries: dict[str, Path]) -> None:
    with pytest.raises(ValueError, match="the audit knows no effects of a marriage declaration"):
        audit([planned("m-1", "marriage")], {"m-1"}, **registries)
