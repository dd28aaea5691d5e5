"""The console's web server: a free port, a taken one, and a prompt stop
with an event stream open."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from rich.console import Console

from cli.errors import CliError
from cli.web.app import build_app
from cli.web.launch import serve
from cli.web.live import LiveState
from cli.web.server import ConsoleServer, PortTaken
from cli.web.switchboard import NoSwitches
from tests.cli.web.test_app import AGENCIES, FakeGateway, FakePeople


def new_server() -> ConsoleServer:
    app = build_app(
        live=LiveState(AGENCIES),
        gateway=FakeGateway(),
        people=FakePeople(),
        switchboard=NoSwitches(AGENCIES),
        mode="replay",
    )
    return ConsoleServer(app)


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        yield holder.getsockname()[1]


def test_port_zero_serves_on_a_free_port() -> None:
    server = new_server()
    address = server.start(0)
    try:
        assert server.port > 0
        assert httpx.get(f"{address}/api/overview").json()["mode"] == "replay"
    finally:
        server.stop()


def test_a_taken_port_is_an_error_for_up_and_gives_way_for_demo(taken_port: int) -> None:
    with pytest.raises(PortTaken):
        new_server().start(taken_port)
    with pytest.raises(CliError) as refused:
        serve(Console(quiet=True), new_server(), taken_port, fall_back=False)
    assert refused.value.headline == (
        f"port {taken_port} is taken: pass --console-port N, or --no-console"
    )
    console = Console(record=True, width=200)
    server = new_server()
    serve(console, server, taken_port, fall_back=True)
    try:
        assert server.port not in (0, taken_port)
        assert f"Port {taken_port} is taken; the console takes port {server.port}" in (
            console.export_text()
        )
    finally:
        server.stop()


def test_stop_returns_promptly_with_an_event_stream_open() -> None:
    server = new_server()
    address = server.start(0)
    opened = threading.Event()
    lines: list[str] = []

    def listen() -> None:
        try:
            with httpx.stream("GET", f"{address}/api/stream", timeout=None) as response:
                for line in response.iter_lines():
                    lines.append(line)
                    opened.set()
        except httpx.HTTPError:
            return

    reader = threading.Thread(target=listen, daemon=True)
    reader.start()
    assert opened.wait(10), "the stream did not open"
    # Published just before the stop (a replay's final stats): still sent.
    server.app.state.hub.publish_threadsafe([("replay", {"final": {"lost": 0}})])
    began = time.monotonic()
    server.stop()
    took = time.monotonic() - began
    assert took < 2.0, f"stop took {took:.1f} s"
    reader.join(5)
    assert not reader.is_alive()
    assert "event: overview" in lines
    assert "event: replay" in lines


def test_an_unexpected_error_is_a_500_sentence() -> None:
    class Broken(FakePeople):
        def fresh(self) -> dict[str, Any]:
            raise RuntimeError("a bug " + "z" * 500)

    app = build_app(
        live=LiveState(AGENCIES),
        gateway=FakeGateway(),
        people=Broken(),
        switchboard=NoSwitches(AGENCIES),
        mode="up",
    )
    server = ConsoleServer(app)
    address = server.start(0)
    try:
        answer = httpx.get(f"{address}/api/people")
        assert answer.status_code == 500
        assert answer.json() == {
            "message": "the console failed unexpectedly (RuntimeError); see its log"
        }
    finally:
        server.stop()
