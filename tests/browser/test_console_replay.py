"""The console during a short replay, in a real Chromium: `lienthong replay`
of a tiny scenario (about 30 declarations over 10 s) with its console on a
free port. The replay panel's figures rise while it runs, the counters by
state move, and at the end it says lost 0 and duplicated 0, as the replay's
own report.json does."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from tests.browser.console_process import ConsoleProcess

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

SCENARIO = """
name: console
description: A tiny steady replay for the console's browser test.
seed: 14
population: 300
faults: {}
arrival:
  - {duration_s: 10, rate: 3}
drain_timeout_s: 60
"""
SHOTS = Path(__file__).resolve().parents[2] / "out" / "screenshots"


def figure(selector: str) -> str:
    """A number the page shows, as a JavaScript expression."""
    return f"Number(document.querySelector({selector!r}).textContent.replace(/[^0-9]/g, '') || 0)"


async def test_the_replay_panel_rises_while_it_runs_and_ends_with_none_lost(
    tmp_path: Path, page: Page, page_errors: list[str]
) -> None:
    scenario = tmp_path / "console.yaml"
    scenario.write_text(SCENARIO, encoding="utf-8")
    report = tmp_path / "report"
    process = ConsoleProcess(
        [
            "replay",
            str(scenario),
            "--console-port",
            "0",
            "--broker",
            "embedded",
            "--report",
            str(report),
        ],
        tmp_path,
    )
    try:
        address = await asyncio.to_thread(process.console_address, 120)
        await page.goto(address)
        await expect(page.locator("#replay")).to_be_visible(timeout=60_000)
        # Sent, then settled, rise from what the page first showed.
        await page.wait_for_function(f"{figure('#replay-sent')} > 0", timeout=60_000)
        settled_before = await page.evaluate(figure("#replay-settled"))
        completed_before = await page.evaluate(figure("[data-state='COMPLETED'] .count"))
        await page.wait_for_function(
            f"{figure('#replay-settled')} > {settled_before}", timeout=60_000
        )
        await page.wait_for_function(
            f"{figure('[data-state=COMPLETED] .count')} > {completed_before}", timeout=60_000
        )
        # Steps light the agency they are at (from the stream's step events),
        # here halfway through the replay.
        await page.wait_for_function(
            f"{figure('#replay-settled')} * 2 >= {figure('#replay-planned')}"
            " && document.querySelector('#parties .node.lit') !== null",
            timeout=60_000,
        )
        await page.screenshot(path=SHOTS / "console-replay-running.png")
        # The end, from the audit: big, green, in words.
        lost = page.locator("#replay-final [data-verdict='Lost']")
        duplicated = page.locator("#replay-final [data-verdict='Duplicated']")
        await expect(lost).to_be_visible(timeout=120_000)
        await expect(lost).to_contain_text("Lost 0")
        await expect(lost).to_contain_text("none lost")
        await expect(lost).to_have_class("verdict good")
        await expect(duplicated).to_contain_text("Duplicated 0")
        await expect(duplicated).to_have_class("verdict good")
        await page.screenshot(path=SHOTS / "console-replay-done.png")
        code = await asyncio.to_thread(process.process.wait, 120)
        # The console ended with the replay: the page says so, and where the report is.
        await expect(page.locator("#connection")).to_contain_text(
            f"Replay ended; the console stopped with it (report: {report}/report.html)",
            timeout=30_000,
        )
    finally:
        process.stop()
    assert code == 0, process.output
    # The page said what the replay's own report says.
    written = json.loads((report / "report.json").read_text(encoding="utf-8"))
    assert written["lost"] == 0 and written["duplicated_effects"] == 0
    assert written["completed"] > 0
    assert [e for e in page_errors if "ERR_CONNECTION_REFUSED" not in e] == []
