"""report.html from a real replay, opened in Chromium from the file alone,
offline: its plots drawn, its verdict read, no error on the page."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.async_api import Page
from rich.console import Console

from cli.replay import GATEWAY_ENV, load, run_scenario, write
from cli.stack import Stack

# A stack of real processes, a real (embedded) broker, a replay of ~30 dossiers.
pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(300)]

# A few dozen declarations, two kinds of fault planted: small enough to take
# seconds, with rejections and supplements in the report like a real one.
TINY = """\
name: tiny
description: A few dozen declarations for the HTML report's browser test.
seed: 14
population: 300
faults: {missing_fields: 0.1, already_dead: 0.1}
arrival:
  - {duration_s: 6, rate: 5}
drain_timeout_s: 30
"""


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("report-html")
    (base / "tiny.yaml").write_text(TINY)
    scenario = load(base / "tiny.yaml", rate=None, duration=None)
    console = Console(file=io.StringIO())
    with Stack(
        broker="embedded",
        data_dir=base / "stack",
        verbose_children=False,
        gateway_env=GATEWAY_ENV,
    ) as stack:
        result = run_scenario(console, scenario, stack, show_progress=False)
    # What `lienthong replay` writes, from the same function.
    paths = write(base / "report", scenario, result)
    assert paths.html == base / "report" / "report.html"
    yield base / "report"


@pytest.fixture(scope="module")
def report(report_dir: Path) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((report_dir / "report.json").read_text())
    return loaded


async def test_the_report_opens_offline_with_its_plots_and_verdict(
    page: Page,
    report_dir: Path,
    report: dict[str, object],
    page_errors: list[str],
    blocked_requests: list[str],
) -> None:
    await page.goto((report_dir / "report.html").as_uri())
    assert (await page.title()).startswith("Replay report: tiny, ")
    assert (await page.locator("h1").text_content()) == "Replay report: tiny"

    plots = page.locator("#plots figure svg")
    assert await plots.count() == 3
    for index in range(3):
        plot = plots.nth(index)
        box = await plot.bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 150, box
        # Drawn, not an empty frame: shapes with an area are the figure's and
        # the axes' backgrounds (an empty "no data" plot has just those two),
        # the legend's frame, and the data's curves and bars (grid lines and
        # spines are flat).
        drawn = await plot.evaluate(
            "svg => [...svg.querySelectorAll('path')]"
            ".filter(p => { const b = p.getBBox(); return b.width > 0 && b.height > 0; }).length"
        )
        assert drawn >= 5, (index, drawn)
        assert await plot.get_attribute("aria-label")

    verdict = page.locator("#verdict")
    text = " ".join((await verdict.inner_text()).split())
    assert "lost 0" in text and "duplicated 0" in text, text
    assert await verdict.get_attribute("class") == "verdict ok"
    # The figures of report.json, on the page.
    for outcome in ("submitted", "completed", "needs_supplement"):
        header = page.get_by_role("rowheader", name=outcome, exact=True)
        row = page.locator("#outcomes tbody tr").filter(has=header)
        assert (await row.inner_text()).split() == [outcome, str(report[outcome])]

    assert page_errors == []
    assert blocked_requests == []
