"""The insurance kit against our social security registry (in-process, real
gRPC, a real SQLite file, and once a real PostgreSQL database): ours passes
every rule; a card valid one day too long, an allowance at today's base
salary, a coverage lookup that covers one day past the card and one that
answers a person without a card with an error each fail the rules named for
them."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest

from common.errors import NotFound
from conformance.contracts import CONTRACTS
from conformance.runner import run
from lienthong.insurance.v1 import insurance_pb2 as pb
from services.insurance import child_card
from services.insurance.app import build
from services.insurance.base_salary import BaseSalaryTable, load_table
from services.insurance.servicer import InsuranceRegistryServicer
from tests.conformance.variants import failed, with_servicer

RULES = CONTRACTS["insurance"].rules


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
async def test_our_registry_passes_every_rule(
    start: Any, engine: str, request: pytest.FixtureRequest
) -> None:
    database = request.getfixturevalue("postgres_url") if engine == "postgres" else None
    registry = await start(build, database=database)
    assert failed(await run(registry.address, RULES)) == {}


async def test_a_card_valid_one_day_too_long_fails_the_validity_rules(
    start: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    last_day = child_card.valid_to
    monkeypatch.setattr(child_card, "valid_to", lambda born: last_day(born) + dt.timedelta(days=1))
    registry = await start(build)
    broken = failed(await run(registry.address, RULES))
    card = "insurance.issue_child_health_insurance_card"
    assert set(broken) == {
        f"{card}.valid_to_day_before_sixth_birthday",
        f"{card}.valid_to_30_september",
        f"{card}.entitled_after_sixth_birthday_until_30_september",
    }
    evidence = broken[f"{card}.valid_to_day_before_sixth_birthday"]
    assert re.search(r"valid_to \d{4}-11-15, should be \d{4}-11-14", evidence), evidence


class SalaryOfToday(BaseSalaryTable):
    """A table that does not reach back: every death paid at today's salary."""

    def in_force_on(self, day: dt.date) -> int | None:
        return super().in_force_on(dt.date.today())


async def test_an_allowance_at_todays_salary_fails_the_month_of_death_rule(start: Any) -> None:
    table = load_table()

    def broken_build(database: Path) -> Any:
        return build(database, base_salaries=SalaryOfToday(table.effective_from, table.amount_vnd))

    registry = await start(broken_build)
    broken = failed(await run(registry.address, RULES))
    assert set(broken) == {"insurance.settle_funeral_allowance.base_salary_of_the_month_of_death"}
    assert "died 2016-04-30: amount 23400000" in next(iter(broken.values()))


class CoveredOneDayTooLong(InsuranceRegistryServicer):
    """Says covered on the day after the card's valid_to."""

    async def CheckCoverage(self, request: Any, context: Any) -> pb.CheckCoverageResponse:
        reply = await super().CheckCoverage(request, context)
        day_after = dt.date.fromisoformat(reply.card.valid_to or "0001-01-01") + dt.timedelta(1)
        if reply.on_date == day_after.isoformat():
            reply.covered = True
            reply.not_covered_reason = pb.NOT_COVERED_REASON_UNSPECIFIED
        return reply


async def test_coverage_one_day_past_the_card_fails_the_boundary_rule(start: Any) -> None:
    registry = await start(with_servicer(build, CoveredOneDayTooLong))
    broken = failed(await run(registry.address, RULES))
    assert set(broken) == {"insurance.check_coverage.validity_boundaries"}
    evidence = broken["insurance.check_coverage.validity_boundaries"]
    assert re.search(r"\d{4}-10-01: covered True .*should be not covered", evidence), evidence


class NoCardIsAnError(InsuranceRegistryServicer):
    """Answers an insured person without a card NOT_FOUND, as if unknown."""

    async def CheckCoverage(self, request: Any, context: Any) -> pb.CheckCoverageResponse:
        reply = await super().CheckCoverage(request, context)
        if reply.not_covered_reason == pb.NOT_COVERED_REASON_NO_CARD:
            raise NotFound("no card", reason="PARTICIPANT_NOT_FOUND")
        return reply


async def test_no_card_as_an_error_fails_the_no_card_rule(start: Any) -> None:
    registry = await start(with_servicer(build, NoCardIsAnError))
    broken = failed(await run(registry.address, RULES))
    assert set(broken) == {"insurance.check_coverage.no_card"}
    assert "NOT_FOUND reason PARTICIPANT_NOT_FOUND" in broken["insurance.check_coverage.no_card"]
