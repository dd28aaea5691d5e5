"""The insurance kit against our social security registry (in-process, real
gRPC, a real SQLite file): ours passes every rule; a card valid one day too
long and an allowance at today's base salary each fail the rules named for them."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Any

import pytest

from conformance.contracts import CONTRACTS
from conformance.runner import run
from services.insurance import child_card
from services.insurance.app import build
from services.insurance.base_salary import BaseSalaryTable, load_table
from tests.conformance.variants import failed

RULES = CONTRACTS["insurance"].rules


async def test_our_registry_passes_every_rule(start: Any) -> None:
    registry = await start(build)
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
