"""Fixtures for the tests that drive a real Chromium through Playwright.

`browser` (session): one headless Chromium, Debian's (see chromium.py), never
a browser Playwright downloads. `page` (function): a fresh context and page,
1280×720 (the projector the console is read on), offline: every request that
would leave the machine (anything but 127.0.0.1, localhost and file:) is
aborted and listed in `blocked_requests`, so a page passes only if it works
without a network, as demos must. The page's console errors and uncaught
exceptions are listed in `page_errors`; its screenshot is saved on teardown to
out/screenshots/<test name>.png.

The tests are `async def` on Playwright's async API. Its sync API cannot share
a pytest process with pytest-asyncio: from its first call until it stops it
marks its own event loop as running in the test thread (by design, between
calls too), and every async test after that fails ("Runner.run() cannot be
called from a running event loop"); tried with a session-scoped sync fixture.
So the browser lives on pytest-asyncio's session loop, and every async test
that uses it is put on that loop here (and marked `browser`).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import pytest_asyncio
from playwright.async_api import (
    Browser,
    ConsoleMessage,
    Page,
    Route,
    ViewportSize,
    async_playwright,
)
from playwright.async_api import Error as PlaywrightError

from tests.browser.chromium import chromium_or_skip

VIEWPORT: ViewportSize = {"width": 1280, "height": 720}
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)
            if pytest_asyncio.is_async_test(item):
                # First, so that it wins over the plain asyncio marker auto mode gave it.
                item.add_marker(pytest.mark.asyncio(loop_scope="session"), append=False)


def leaves_the_machine(url: str) -> bool:
    """An http(s)/ws(s) URL to another host; file:, data:, blob: and about: have none."""
    host = urlsplit(url).hostname
    return host is not None and host not in LOCAL_HOSTS


def screenshot_path(root: Path, test_name: str) -> Path:
    # Parametrised names carry brackets and whatever the parameters print as.
    return root / "out" / "screenshots" / f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', test_name)}.png"


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def browser() -> AsyncIterator[Browser]:
    executable = chromium_or_skip()
    async with async_playwright() as playwright:
        # Playwright passes --no-sandbox unless chromium_sandbox is set, which
        # Chromium needs when it runs as root (as CI does here).
        launched = await playwright.chromium.launch(executable_path=executable, headless=True)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
def page_errors() -> list[str]:
    """The page's console errors and uncaught exceptions, in order."""
    return []


@pytest.fixture
def blocked_requests() -> list[str]:
    """The URLs the page tried to fetch from off the machine (each aborted)."""
    return []


@pytest_asyncio.fixture(loop_scope="session")
async def page(
    browser: Browser,
    page_errors: list[str],
    blocked_requests: list[str],
    request: pytest.FixtureRequest,
) -> AsyncIterator[Page]:
    # A service worker would fetch past the routes below.
    context = await browser.new_context(viewport=VIEWPORT, service_workers="block")

    async def abort(route: Route) -> None:
        blocked_requests.append(route.request.url)
        await route.abort("blockedbyclient")

    # Only requests that leave the machine are routed: the console's own
    # requests (its event stream among them) go straight through.
    await context.route(leaves_the_machine, abort)
    opened = await context.new_page()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            page_errors.append(message.text)

    def on_uncaught(error: PlaywrightError) -> None:
        page_errors.append(f"uncaught {error.name}: {error.message}")

    opened.on("console", on_console)
    opened.on("pageerror", on_uncaught)
    try:
        yield opened
    finally:
        path = screenshot_path(request.config.rootpath, request.node.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            await opened.screenshot(path=path)
        except PlaywrightError as exc:
            # A page that crashed or closed has nothing to show; the test's own
            # outcome says what went wrong.
            warnings.warn(f"no screenshot for {request.node.name}: {exc}", stacklevel=1)
        await context.close()
