"""The console's page in a real Chromium, over a real stack: `lienthong demo
--new-stack --stay --console-port 0` (a fresh stack on free ports, the demo's
birth and death, then the console kept up until Ctrl-C), shared by the tests
of this module.

What the page shows is checked against what a user is told elsewhere: the
demo's printed links and results, the contract's wording of a result, the
POST's status; never against the page's own code.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.async_api import Locator, Page, Response, Route, expect

from tests.browser.console_process import ConsoleProcess

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

DEMO_START_TIMEOUT_S = 150.0
END_TIMEOUT_MS = 60_000
SHOTS = Path(__file__).resolve().parents[2] / "out" / "screenshots"


@dataclass(frozen=True)
class Demo:
    address: str
    # (dossier id, procedure) in the order the demo printed them: birth, death.
    links: list[tuple[str, str]]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    tmp_path = tmp_path_factory.mktemp("demo")
    process = ConsoleProcess(
        ["demo", "--new-stack", "--stay", "--console-port", "0", "--broker", "embedded"],
        tmp_path,
    )
    try:
        process.wait_for(r"The console stays at", DEMO_START_TIMEOUT_S)
        address = process.console_address(1)
        ids = re.findall(re.escape(address) + r"/#dossier=([0-9A-Za-z_-]+)", process.output)
        assert len(ids) == 2, process.output
        yield Demo(address, [(ids[0], "birth"), (ids[1], "death")])
    finally:
        code = process.stop()
    # Ctrl-C ends a demo that stayed: not an error, and not a traceback.
    assert "Traceback" not in process.output, process.output
    assert code in (0, 130), process.output


async def open_form(page: Page, address: str, kind: str) -> None:
    await page.goto(address)
    await page.get_by_role("button", name=f"Declare a {kind}").click()
    first = "child_full_name" if kind == "birth" else "deceased_id_number"
    # Filled from GET /api/people: a freshly seeded family.
    await expect(page.locator(f"#declaration-form [name='{first}']")).not_to_have_value(
        "", timeout=20_000
    )


async def test_the_demos_links_open_timelines_that_completed(
    demo: Demo, page: Page, page_errors: list[str]
) -> None:
    for number, (dossier_id, procedure) in enumerate(demo.links, start=1):
        await page.goto(f"{demo.address}/#dossier={dossier_id}")
        heading = page.locator("#drawer-heading")
        await expect(heading).to_contain_text(dossier_id, timeout=20_000)
        await expect(heading).to_contain_text(procedure.capitalize())
        state = page.locator("#dossier-state [data-state]")
        await expect(state).to_have_attribute("data-state", "COMPLETED", timeout=20_000)
        steps = page.locator("#timeline tbody tr")
        # Birth and death each run at least three agencies' steps.
        assert await steps.count() >= 3
        step_states = [
            await state.get_attribute("data-step-state")
            for state in await page.locator("#timeline [data-step-state]").all()
        ]
        assert len(step_states) == await steps.count()
        assert "RUNNING" not in step_states, step_states
        results = await page.locator("#dossier-results").inner_text()
        if procedure == "birth":
            assert re.search(r"the child's personal ID number is \d{12}\.", results), results
        else:
            assert re.search(r"Death registered on \d{4}-\d{2}-\d{2}", results), results
        await page.screenshot(path=SHOTS / f"console-demo-link-{number}.png")
    assert page_errors == []


async def test_a_birth_submitted_from_the_page_completes_with_the_childs_number(
    demo: Demo, page: Page, page_errors: list[str]
) -> None:
    await open_form(page, demo.address, "birth")
    await page.get_by_role("button", name="Submit the birth declaration").click()
    # The new dossier's panel opens and follows it live to its end.
    heading = page.locator("#drawer-heading")
    await expect(heading).to_contain_text("Birth dossier", timeout=20_000)
    state = page.locator("#dossier-state [data-state]")
    await expect(state).to_have_attribute("data-state", "COMPLETED", timeout=END_TIMEOUT_MS)
    results = await page.locator("#dossier-results").inner_text()
    assert re.search(r"the child's personal ID number is \d{12}\.", results), results
    dossier_id = (await heading.inner_text()).split()[-1]
    # ... and it is in the recent list, ended.
    row = page.locator(f"#dossiers button[data-dossier='{dossier_id}']")
    await expect(row).to_contain_text("completed", timeout=20_000)
    await page.screenshot(path=SHOTS / "console-birth-completed.png")
    assert page_errors == []


async def test_a_death_submitted_from_the_page_completes_with_its_registration(
    demo: Demo, page: Page, page_errors: list[str]
) -> None:
    await open_form(page, demo.address, "death")
    # The form sends the checkbox as a boolean: the allowance is claimed.
    await expect(page.locator("[name='claim_funeral_allowance']")).to_be_checked()
    await page.get_by_role("button", name="Submit the death declaration").click()
    await expect(page.locator("#drawer-heading")).to_contain_text("Death dossier", timeout=20_000)
    state = page.locator("#dossier-state [data-state]")
    await expect(state).to_have_attribute("data-state", "COMPLETED", timeout=END_TIMEOUT_MS)
    results = await page.locator("#dossier-results").inner_text()
    assert re.search(r"Death registered on \d{4}-\d{2}-\d{2}", results), results
    assert re.search(r"Funeral allowance \d{1,3}(,\d{3})+ VND", results), results
    assert page_errors == []


async def test_a_field_error_shows_beside_its_field_and_nothing_is_submitted(
    demo: Demo, page: Page, page_errors: list[str]
) -> None:
    await open_form(page, demo.address, "birth")
    answers: list[int] = []

    def on_response(response: Response) -> None:
        if response.request.method == "POST":
            answers.append(response.status)

    page.on("response", on_response)
    listed = await page.locator("#dossiers button").count()
    form = page.locator("#declaration-form")
    born = form.locator("[name='child_date_of_birth']")
    good_day = await born.input_value()
    # No 30 February: the gateway's form rules refuse it (a real calendar day).
    await born.fill("2025-02-30")
    await page.get_by_role("button", name="Submit the birth declaration").click()
    await expect(born).to_have_attribute("aria-invalid", "true", timeout=20_000)
    await expect_message_beside(page, born)
    assert await form.locator("[aria-invalid='true']").count() == 1
    await expect(page.locator("#form-summary")).to_be_visible()
    await page.screenshot(path=SHOTS / "console-field-error.png")

    # An empty declarant's name breaks the contract's rule (protovalidate).
    await born.fill(good_day)
    declarant = form.locator("[name='declarant.full_name']")
    await declarant.fill("")
    await page.get_by_role("button", name="Submit the birth declaration").click()
    await expect(declarant).to_have_attribute("aria-invalid", "true", timeout=20_000)
    await expect_message_beside(page, declarant)
    # The earlier error went with the earlier submission.
    await expect(born).not_to_have_attribute("aria-invalid", "true")
    assert await form.locator("[aria-invalid='true']").count() == 1

    # Nothing was submitted: both answers were 400, no panel opened, no new row.
    assert answers == [400, 400]
    await expect(page.locator("#dossier-panel")).to_be_hidden()
    assert await page.locator("#dossiers button").count() == listed
    # Chromium logs each 4xx as a failed resource load; nothing else is allowed.
    assert [e for e in page_errors if "status of 400" not in e] == []


async def test_a_violation_of_a_field_without_an_input_is_in_the_forms_summary(
    demo: Demo, page: Page, page_errors: list[str]
) -> None:
    # The form shows the main fields and sends the rest of the example as it
    # came: here the example's ethnicity made longer than the contract's 50
    # characters, a field the form has no input for.
    async def longer_ethnicity(route: Route) -> None:
        answer = await route.fetch()
        people = await answer.json()
        people["birth"]["declaration"]["ethnicity"] = "K" * 60
        await route.fulfill(response=answer, json=people)

    await page.route(f"{demo.address}/api/people", longer_ethnicity)
    await open_form(page, demo.address, "birth")
    await page.get_by_role("button", name="Submit the birth declaration").click()
    summary = page.locator("#form-summary")
    await expect(summary.locator("li")).to_contain_text("ethnicity", timeout=20_000)
    form = page.locator("#declaration-form")
    assert await form.locator("[aria-invalid='true']").count() == 0
    await expect(page.locator("#dossier-panel")).to_be_hidden()
    assert [e for e in page_errors if "status of 400" not in e] == []


async def expect_message_beside(page: Page, field: Locator) -> None:
    """The field's own message: named by aria-describedby, visible, just below it."""
    described_by = await field.get_attribute("aria-describedby")
    assert described_by, "the invalid field names no message"
    message = page.locator(f"[id='{described_by}']")
    await expect(message).to_be_visible()
    assert (await message.inner_text()).strip()
    box = await field.bounding_box()
    beside = await message.bounding_box()
    assert box is not None and beside is not None
    # Under the field, overlapping it horizontally, within a line's height.
    assert 0 <= beside["y"] - (box["y"] + box["height"]) < 30, (box, beside)
    assert beside["x"] < box["x"] + box["width"] and box["x"] < beside["x"] + beside["width"]


async def test_the_keyboard_reaches_the_dossiers_and_the_forms(
    demo: Demo, page: Page, page_errors: list[str]
) -> None:
    await page.goto(demo.address)
    await expect(page.locator("#dossiers [data-dossier]").first).to_be_visible(timeout=20_000)
    # Tab (only Tab) until a dossier of the list has the focus.
    focused = ""
    for _ in range(40):
        await page.keyboard.press("Tab")
        focused = await page.evaluate("document.activeElement.dataset.dossier || ''")
        if focused:
            break
    assert focused, "Tab never reached the recent dossiers"
    # The focus is visible.
    outline = await page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline not in ("", "none")
    await page.keyboard.press("Enter")
    heading = page.locator("#drawer-heading")
    await expect(heading).to_contain_text(focused, timeout=20_000)
    await expect(heading).to_be_focused()
    await page.keyboard.press("Escape")
    await expect(page.locator("#drawer")).to_be_hidden()
    await expect(page.locator(f"#dossiers button[data-dossier='{focused}']")).to_be_focused()

    # The declaration forms: Tab back to "Declare a birth", Enter, then every
    # field in turn, each labelled, up to the submit button.
    for _ in range(60):
        await page.keyboard.press("Shift+Tab")
        if await page.evaluate("document.activeElement.textContent") == "Declare a birth":
            break
    else:
        pytest.fail("Shift+Tab never reached the Declare a birth button")
    await page.keyboard.press("Enter")
    form = page.locator("#declaration-form")
    await expect(form.locator("[name='child_full_name']")).to_be_focused(timeout=20_000)
    fields = await form.locator("input, select").count()
    reached: set[str] = set()
    for _ in range(fields + 5):
        name, labelled = await page.evaluate(
            "[document.activeElement.name || document.activeElement.textContent,"
            " (document.activeElement.labels || []).length > 0]"
        )
        if name == "Submit the birth declaration":
            break
        assert labelled, f"{name} has no label"
        reached.add(name)
        await page.keyboard.press("Tab")
    else:
        pytest.fail("Tab never reached the submit button")
    assert len(reached) == fields
    assert page_errors == []


async def test_an_api_error_is_said_on_the_page_which_then_recovers(
    demo: Demo, page: Page, page_errors: list[str]
) -> None:
    failing = f"{demo.address}/api/overview"

    async def refuse(route: Route) -> None:
        await route.fulfill(status=503, json={"message": "The gateway is not answering."})

    await page.route(failing, refuse)
    await page.goto(demo.address)
    banner = page.locator("#api-error")
    await expect(banner).to_contain_text("The gateway is not answering.", timeout=20_000)
    await expect(page.get_by_role("button", name="Declare a birth")).to_be_visible()
    await page.screenshot(path=SHOTS / "console-api-error.png")
    # The page asks again on its own; once the overview answers, all is shown.
    await page.unroute(failing, refuse)
    await expect(banner).to_be_hidden(timeout=20_000)
    await expect(page.locator("#parties [data-party]").first).to_be_visible()
    assert [e for e in page_errors if "status of 503" not in e] == []


async def test_an_agency_switch_slows_it_for_a_minute_and_restore_brings_it_back(
    demo: Demo, page: Page, page_errors: list[str]
) -> None:
    await page.goto(demo.address)
    # The agencies come from the overview: take the first the table lists.
    row = page.locator("#agency-table tbody tr").first
    await expect(row).to_be_visible(timeout=20_000)
    status = row.locator(".status-cell")
    await expect(status).to_contain_text("up")
    await row.get_by_role("button", name=re.compile(r"^Add 800 ms to ")).click()
    await expect(status).to_contain_text("SLOW +800 ms", timeout=20_000)
    await expect(status).to_contain_text(re.compile(r"\d+ s left"))
    name = await row.get_attribute("data-agency")
    node = page.locator(f"#parties [data-party='{name}']")
    await expect(node).to_contain_text("SLOW +800 ms")
    await page.screenshot(path=SHOTS / "console-agency-slow.png")
    # Even so, the main view fits the 1280×720 projector: nothing to scroll to.
    fits = await page.evaluate(
        """() => {
          const bottom = (id) => document.getElementById(id).getBoundingClientRect().bottom;
          const root = document.documentElement;
          return [root.scrollWidth, root.scrollHeight, bottom("agency-table"), bottom("counters")];
        }"""
    )
    assert fits[0] <= 1280 and fits[1] <= 720 and max(fits[2:]) <= 720, fits
    await row.get_by_role("button", name=re.compile(r"^Restore ")).click()
    await expect(status).to_contain_text("up", timeout=20_000)
    await expect(status).not_to_contain_text("SLOW")
    assert page_errors == []


async def test_the_page_reconnects_to_its_stream_and_reads_the_overview_again(
    demo: Demo, page: Page, page_errors: list[str]
) -> None:
    stream = f"{demo.address}/api/stream"

    async def refuse(route: Route) -> None:
        await route.abort("connectionrefused")

    # The event stream is unreachable from the start: the page says so.
    await page.route(stream, refuse)
    await page.goto(demo.address)
    connection = page.locator("#connection")
    await expect(connection).to_have_text("Reconnecting…", timeout=20_000)
    # Once it answers again, EventSource reconnects on its own and the page
    # reads the whole overview again (the events it missed are in it).
    async with page.expect_request(
        lambda request: request.url == f"{demo.address}/api/overview", timeout=30_000
    ):
        await page.unroute(stream, refuse)
    await expect(connection).to_have_text("Live", timeout=30_000)
    assert [e for e in page_errors if "ERR_CONNECTION_REFUSED" not in e] == []


async def test_a_replay_that_lost_dossiers_ends_red_and_says_so(
    demo: Demo, page: Page, page_errors: list[str]
) -> None:
    # A real replay loses nothing (test_console_replay.py); the red end is
    # shown here by putting a final verdict into the demo's real overview.
    async def with_losses(route: Route) -> None:
        answer = await route.fetch()
        overview = await answer.json()
        overview["replay"] = {
            "scenario": "lossy", "phase": "done", "planned": 10, "sent": 10, "accepted": 10,
            "settled": 8, "failed": 0, "in_flight": 0, "elapsed_s": 12.0, "duration_s": 10.0,
            "throughput_per_s": 0.0, "latency_ms": {"p50": 80.0, "p95": 90.0, "p99": 95.0},
            "final": {"lost": 2, "duplicated": 1, "completed": 8, "unexpected": 0,
                      "report_dir": "out/lossy"},
        }  # fmt: skip
        await route.fulfill(response=answer, json=overview)

    await page.route(f"{demo.address}/api/overview", with_losses)
    await page.goto(demo.address)
    lost = page.locator("#replay-final [data-verdict='Lost']")
    await expect(lost).to_contain_text("Lost 2", timeout=20_000)
    await expect(lost).to_contain_text("LOST")
    await expect(lost).to_have_class("verdict bad")
    duplicated = page.locator("#replay-final [data-verdict='Duplicated']")
    await expect(duplicated).to_contain_text("Duplicated 1")
    await expect(duplicated).to_contain_text("DUPLICATED")
    await expect(duplicated).to_have_class("verdict bad")
    assert page_errors == []
