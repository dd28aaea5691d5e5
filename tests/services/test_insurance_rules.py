"""The social security registry's pure rules: card validity, funeral allowance,
the base salary table."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.insurance import child_card, coverage, funeral_allowance
from services.insurance.base_salary import ENV_VAR, BaseSalaryTable, load_table, read_table
from services.insurance.funeral_allowance import InsuranceHistory, eligibility

births = st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2200, 12, 31))

# --- Child health insurance card ---------------------------------------------


@pytest.mark.parametrize(
    ("born", "valid_to"),
    [
        (dt.date(2024, 3, 10), dt.date(2030, 9, 30)),
        (dt.date(2024, 9, 30), dt.date(2030, 9, 30)),
        (dt.date(2024, 10, 1), dt.date(2030, 9, 30)),  # the day before 1 October
        (dt.date(2024, 11, 20), dt.date(2030, 11, 19)),
        (dt.date(2024, 1, 1), dt.date(2030, 9, 30)),
        (dt.date(2023, 12, 31), dt.date(2029, 12, 30)),
        (dt.date(2024, 2, 29), dt.date(2030, 9, 30)),
    ],
)
def test_valid_to(born: dt.date, valid_to: dt.date) -> None:
    assert child_card.valid_to(born) == valid_to


def test_a_child_born_on_29_february_turns_6_on_1_march() -> None:
    born = dt.date(2024, 2, 29)
    assert child_card.sixth_birthday(born) == dt.date(2030, 3, 1)
    assert child_card.is_under_six(born, dt.date(2030, 2, 28))
    assert not child_card.is_under_six(born, dt.date(2030, 3, 1))


@given(births)
def test_valid_to_is_72_months_or_the_september_extension(born: dt.date) -> None:
    turns_six = child_card.sixth_birthday(born)
    day_before = turns_six - dt.timedelta(days=1)
    school_starts = dt.date(turns_six.year, 9, 30)
    valid_to = child_card.valid_to(born)
    assert valid_to >= day_before
    assert valid_to <= max(day_before, school_starts)
    assert valid_to.year == turns_six.year
    if valid_to != day_before:
        # Extended only for a child who turns 6 by the end of September, and only to then.
        assert turns_six <= school_starts
        assert valid_to == school_starts


@given(births)
def test_a_child_is_under_6_up_to_the_day_before_the_birthday(born: dt.date) -> None:
    turns_six = child_card.sixth_birthday(born)
    assert child_card.is_under_six(born, born)
    assert child_card.is_under_six(born, turns_six - dt.timedelta(days=1))
    assert not child_card.is_under_six(born, turns_six)


def test_card_code_is_the_15_character_form() -> None:
    code = child_card.card_code("079", "7900000001")
    assert code == "TE1797900000001"
    assert len(code) == 15


# --- Funeral allowance --------------------------------------------------------

JULY_2024 = dt.date(2024, 7, 1)
JULY_2025 = dt.date(2025, 7, 1)


def history(
    compulsory: int = 0,
    voluntary: int = 0,
    *,
    pensioner: bool = False,
    occupational: bool = False,
    social: bool = False,
) -> InsuranceHistory:
    return InsuranceHistory(compulsory, voluntary, pensioner, occupational, social)


@pytest.mark.parametrize(
    ("record", "work_accident", "died", "reason"),
    [
        (history(pensioner=True), False, JULY_2024, "pensioner"),
        (
            history(occupational=True),
            False,
            JULY_2024,
            "receives a monthly work-accident or occupational-disease allowance",
        ),
        (history(), True, JULY_2024, "died of a work accident or occupational disease"),
        (history(12), False, JULY_2024, "compulsory contributions: 12 months"),
        (history(0, 60), False, JULY_2024, "voluntary contributions: 60 months"),
        (
            history(12, social=True),
            False,
            JULY_2025,
            "receives the monthly social allowance, with compulsory contributions 12 months "
            "and voluntary 0 months",
        ),
        (
            history(12, social=True),
            False,
            JULY_2025 - dt.timedelta(days=1),
            "compulsory contributions: 12 months",
        ),
        (history(200, pensioner=True), False, JULY_2024, "pensioner"),
    ],
)
def test_eligibility_bases(
    record: InsuranceHistory, work_accident: bool, died: dt.date, reason: str
) -> None:
    decision = eligibility(
        record, date_of_death=died, work_accident_or_occupational_disease=work_accident
    )
    assert decision == funeral_allowance.Eligibility(True, reason)


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (None, "no social insurance record"),
        (
            history(8, 20),
            "compulsory contributions 8 months (needs 12) and voluntary 20 months (needs 60)",
        ),
        (
            history(11, 59, social=True),
            "compulsory contributions 11 months (needs 12) and voluntary 59 months (needs 60)",
        ),
    ],
)
def test_not_eligible_says_why(record: InsuranceHistory | None, reason: str) -> None:
    decision = eligibility(
        record, date_of_death=JULY_2025, work_accident_or_occupational_disease=False
    )
    assert decision == funeral_allowance.Eligibility(False, reason)


def test_no_record_is_not_eligible_whatever_the_cause_of_death() -> None:
    decision = eligibility(
        None, date_of_death=JULY_2025, work_accident_or_occupational_disease=True
    )
    assert not decision.eligible


@given(
    st.builds(
        InsuranceHistory,
        st.integers(0, 1000),
        st.integers(0, 1000),
        st.booleans(),
        st.booleans(),
        st.booleans(),
    ),
    st.booleans(),
    st.dates(min_value=dt.date(2019, 7, 1), max_value=dt.date(2030, 12, 31)),
)
def test_the_social_allowance_adds_a_basis_not_a_beneficiary(
    record: InsuranceHistory, work_accident: bool, died: dt.date
) -> None:
    # Its recipients qualify on the same contributions as anyone else; the
    # 2024 Law only names the basis.
    expected = (
        record.pensioner
        or record.receives_monthly_occupational_allowance
        or work_accident
        or record.compulsory_contribution_months >= 12
        or record.voluntary_contribution_months >= 60
    )
    decision = eligibility(
        record, date_of_death=died, work_accident_or_occupational_disease=work_accident
    )
    assert decision.eligible == expected
    assert decision.reason


def test_amount_is_10_base_salaries() -> None:
    assert funeral_allowance.amount_vnd(2_340_000) == 23_400_000


# --- Base salary table ----------------------------------------------------------


@pytest.mark.parametrize(
    ("day", "amount"),
    [
        # ../shared/domain.md: the table reaches back to 2013 for late declarations.
        (dt.date(2013, 6, 30), None),
        (dt.date(2013, 7, 1), 1_150_000),
        (dt.date(2016, 4, 30), 1_150_000),
        (dt.date(2016, 5, 1), 1_210_000),
        (dt.date(2017, 7, 1), 1_300_000),
        (dt.date(2018, 7, 1), 1_390_000),
        (dt.date(2019, 6, 30), 1_390_000),
        (dt.date(2019, 7, 1), 1_490_000),
        (dt.date(2023, 6, 30), 1_490_000),
        (dt.date(2023, 7, 1), 1_800_000),
        (dt.date(2024, 6, 30), 1_800_000),
        (dt.date(2024, 7, 1), 2_340_000),
        # The proposed 2026 rise is not confirmed, so the bundled table does not have it.
        (dt.date(2026, 7, 1), 2_340_000),
    ],
)
def test_bundled_table(day: dt.date, amount: int | None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    assert load_table().in_force_on(day) == amount


def test_table_can_be_replaced_by_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    csv = tmp_path / "base_salary.csv"
    csv.write_text(
        "# with the 2026 rise\neffective_from,amount_vnd\n2024-07-01,2340000\n2026-07-01,2530000\n",
        encoding="utf-8",
    )
    monkeypatch.setenv(ENV_VAR, str(csv))
    table = load_table()
    assert table.in_force_on(dt.date(2026, 6, 30)) == 2_340_000
    assert table.in_force_on(dt.date(2026, 7, 1)) == 2_530_000


@pytest.mark.parametrize(
    "rows",
    [
        "",
        "2024-07-01,2340000\n2023-07-01,1800000\n",
        "2024-07-01,2340000\n2024-07-01,2530000\n",
        "2024-07-01,0\n",
        "2024-07-01,lots\n",
        "2024-13-01,2340000\n",
    ],
)
def test_a_broken_table_is_refused(tmp_path: Path, rows: str) -> None:
    csv = tmp_path / "base_salary.csv"
    csv.write_text("effective_from,amount_vnd\n" + rows, encoding="utf-8")
    with pytest.raises(ValueError, match="base salary"):
        read_table(csv)


def test_a_table_without_the_columns_is_refused(tmp_path: Path) -> None:
    csv = tmp_path / "base_salary.csv"
    csv.write_text("from,vnd\n2024-07-01,2340000\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not a base salary table"):
        read_table(csv)


def test_table_rows_must_pair_dates_and_amounts() -> None:
    with pytest.raises(ValueError, match="came into force"):
        BaseSalaryTable((dt.date(2024, 7, 1),), ())


def _entitled_by_the_brief(born: dt.date, on: dt.date) -> bool:
    """../shared/domain.md, written out again: covered until the day before
    the 6th birthday; a child who turns 6 on or before 30 September is
    covered (and may still be given a card) until 30 September."""
    try:
        birthday = born.replace(year=born.year + 6)
    except ValueError:  # 29 February: the birthday falls on 1 March
        birthday = dt.date(born.year + 6, 3, 1)
    school_starts = dt.date(birthday.year, 9, 30)
    last_day = school_starts if birthday <= school_starts else birthday - dt.timedelta(days=1)
    return born <= on <= last_day


@given(births, st.integers(min_value=0, max_value=8 * 366))
def test_a_card_is_due_while_it_would_still_be_valid(born: dt.date, days: int) -> None:
    on = born + dt.timedelta(days=days)
    assert child_card.is_entitled(born, on) == _entitled_by_the_brief(born, on)


# --- Coverage on a day (a hospital's lookup) ------------------------------------------

CARD = coverage.Validity(valid_from=dt.date(2024, 3, 10), valid_to=dt.date(2030, 9, 30))


@pytest.mark.parametrize(
    ("card", "day", "why"),
    [
        (None, dt.date(2025, 1, 1), coverage.NotCovered.NO_CARD),
        (CARD, dt.date(2024, 3, 9), coverage.NotCovered.CARD_NOT_YET_VALID),
        (CARD, dt.date(2024, 3, 10), None),
        (CARD, dt.date(2030, 9, 30), None),
        (CARD, dt.date(2030, 10, 1), coverage.NotCovered.CARD_EXPIRED),
        # Ended by a death on 2024-05-02: that day is still covered.
        (replace(CARD, ended_on=dt.date(2024, 5, 2)), dt.date(2024, 5, 2), None),
        (
            replace(CARD, ended_on=dt.date(2024, 5, 2)),
            dt.date(2024, 5, 3),
            coverage.NotCovered.CARD_ENDED,
        ),
        (
            replace(CARD, ended_on=dt.date(2024, 5, 2)),
            dt.date(2031, 1, 1),
            coverage.NotCovered.CARD_ENDED,
        ),
        # Expired before the holder died: what happened first is the reason.
        (
            replace(CARD, ended_on=dt.date(2032, 1, 5)),
            dt.date(2032, 2, 1),
            coverage.NotCovered.CARD_EXPIRED,
        ),
        # Died on the card's last day.
        (
            replace(CARD, ended_on=dt.date(2030, 9, 30)),
            dt.date(2030, 10, 1),
            coverage.NotCovered.CARD_ENDED,
        ),
        (
            replace(CARD, ended_on=dt.date(2024, 5, 2)),
            dt.date(2024, 3, 1),
            coverage.NotCovered.CARD_NOT_YET_VALID,
        ),
    ],
)
def test_not_covered(
    card: coverage.Validity | None, day: dt.date, why: coverage.NotCovered | None
) -> None:
    assert coverage.not_covered(card, day) == why
