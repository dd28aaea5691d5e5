"""`python -m brokers.fetch_cost`: a benchmark, so only checked to run and to print
its figures (never a time asserted), and to refuse bad sizes in words."""

from __future__ import annotations

import re

import pytest

from brokers.fetch_cost import main

ROW = re.compile(r"^\s*([\d,]+)\s+([\d,]+)\s+([\d.]+)$")


@pytest.mark.kafka
def test_prints_one_row_per_size_on_the_embedded_broker(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--sizes", "30,0", "--probes", "3"]) == 0
    rows = [m.groups() for line in capsys.readouterr().out.splitlines() if (m := ROW.match(line))]
    assert [size for size, _, _ in rows] == ["0", "30"]  # ascending, one row per size
    assert all(int(cpu.replace(",", "")) >= 0 and float(trip) > 0 for _, cpu, trip in rows)


@pytest.mark.parametrize("sizes", ["", "ten", "-1", "5,x"])
def test_bad_sizes_are_refused_before_any_broker_starts(
    sizes: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--sizes", sizes]) == 2
    assert "--sizes" in capsys.readouterr().out
