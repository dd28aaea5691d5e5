"""The browser fixtures themselves: a real Chromium that shows local pages and
gets nothing from off the machine, with its console errors collected."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.async_api import Page

from tests.browser.chromium import ChromiumNotFound, chromium_or_skip, find_chromium
from tests.browser.conftest import screenshot_path

CDN_SCRIPT = "https://cdn.jsdelivr.net/npm/htmx.org@2.0.4/dist/htmx.min.js"


@pytest.fixture
def local_server(tmp_path: Path) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 serving tmp_path; its base URL."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


async def test_a_file_opens_offline_and_shows_its_text(
    page: Page, tmp_path: Path, page_errors: list[str], blocked_requests: list[str]
) -> None:
    html = tmp_path / "hello.html"
    html.write_text("<!doctype html><title>t</title><p id=greeting>Xin chào, Hà Nội</p>")
    await page.goto(html.as_uri())
    assert await page.text_content("#greeting") == "Xin chào, Hà Nội"
    assert await page.evaluate("[innerWidth, innerHeight]") == [1280, 720]
    assert page_errors == []
    assert blocked_requests == []


async def test_a_script_from_a_cdn_is_not_fetched(
    page: Page, tmp_path: Path, page_errors: list[str], blocked_requests: list[str]
) -> None:
    html = tmp_path / "cdn.html"
    html.write_text(
        "<!doctype html><title>waiting</title>"
        f"<script src='{CDN_SCRIPT}' onload=\"document.title='loaded'\""
        " onerror=\"document.title='failed'\"></script>"
    )
    await page.goto(html.as_uri())
    await page.wait_for_function("document.title !== 'waiting'", timeout=10_000)
    assert await page.title() == "failed"
    assert await page.evaluate("typeof window.htmx") == "undefined"
    # Refused by the fixture itself, not merely by a machine without a network.
    assert blocked_requests == [CDN_SCRIPT]
    assert any("ERR_BLOCKED_BY_CLIENT" in error for error in page_errors), page_errors


async def test_pages_from_127_0_0_1_load(
    page: Page, tmp_path: Path, local_server: str, blocked_requests: list[str]
) -> None:
    (tmp_path / "app.js").write_text("document.getElementById('out').textContent = 'ran';")
    (tmp_path / "index.html").write_text(
        "<!doctype html><title>local</title><p id=out>not run</p><script src='app.js'></script>"
    )
    await page.goto(f"{local_server}/index.html")
    assert await page.text_content("#out") == "ran"
    assert blocked_requests == []


async def test_console_errors_and_uncaught_exceptions_are_collected(
    page: Page, page_errors: list[str]
) -> None:
    await page.set_content(
        "<script>console.log('fine'); console.error('boom');</script>"
        "<script>throw new Error('bang')</script>"
    )
    await page.wait_for_function("document.readyState === 'complete'")
    assert page_errors == ["boom", "uncaught Error: bang"]


async def test_a_screenshot_is_written_where_the_fixture_writes_it(
    page: Page, tmp_path: Path
) -> None:
    await page.set_content("<h1>shot</h1>")
    path = screenshot_path(tmp_path, "test_x[sqlite-a/b]")
    assert path == tmp_path / "out" / "screenshots" / "test_x_sqlite-a_b_.png"
    path.parent.mkdir(parents=True)
    await page.screenshot(path=path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _executable(path: Path) -> Path:
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_the_environment_variable_wins(tmp_path: Path) -> None:
    chosen = _executable(tmp_path / "my-chromium")
    debian = _executable(tmp_path / "debian-chromium")
    found = find_chromium({"LIENTHONG_CHROMIUM": str(chosen)}, debian, lambda _: None)
    assert found == chosen


def test_a_wrong_environment_variable_is_an_error(tmp_path: Path) -> None:
    debian = _executable(tmp_path / "debian-chromium")
    with pytest.raises(ChromiumNotFound, match=r"LIENTHONG_CHROMIUM=.*not an executable"):
        find_chromium({"LIENTHONG_CHROMIUM": str(tmp_path / "none")}, debian, lambda _: None)


def test_debian_then_path(tmp_path: Path) -> None:
    debian = _executable(tmp_path / "debian-chromium")
    on_path = str(_executable(tmp_path / "chromium"))
    assert find_chromium({}, debian, lambda _: on_path) == debian
    assert find_chromium({}, tmp_path / "missing", lambda _: on_path) == Path(on_path)
    with pytest.raises(ChromiumNotFound, match="apt-get install chromium"):
        find_chromium({}, tmp_path / "missing", lambda _: None)


def _missing() -> Path:
    raise ChromiumNotFound("no Chromium; apt-get install chromium")


def test_without_chromium_tests_skip_saying_why(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    # BaseException: pytest's skip and fail outcomes are not Exceptions.
    with pytest.raises(BaseException, match="apt-get install chromium") as caught:
        chromium_or_skip(_missing)
    assert caught.type is pytest.skip.Exception


def test_without_chromium_under_ci_tests_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(BaseException, match="CI is set and Chromium is missing") as caught:
        chromium_or_skip(_missing)
    assert caught.type is pytest.fail.Exception


def test_this_machine_has_chromium() -> None:
    """Where CI runs, .ci/run installs it; elsewhere this says what to do."""
    assert os.access(chromium_or_skip(), os.X_OK)
