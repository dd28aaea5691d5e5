"""The gRPC unary echo baseline: a real echo server process, a short closed-loop
measurement, consistent numbers, and no server process left behind."""

from __future__ import annotations

import math
import socket
import subprocess
from collections.abc import Sequence
from typing import Any

import grpc
import pytest

from common import processes
from scenarios import baseline
from scenarios.baseline import BaselineResult, echo_load, echo_server, measure_echo_baseline
from scenarios.echo_server import FULL_METHOD, add_echo_to_server
from tests.processes import alive

# How much later than asked a measurement may end on a loaded machine.
SLACK_SECONDS = 5.0


@pytest.fixture
def spawned(monkeypatch: pytest.MonkeyPatch) -> list[subprocess.Popen[bytes]]:
    """Every process the baseline spawns, to check afterwards that it is gone."""
    started: list[subprocess.Popen[bytes]] = []

    def recording_spawn(argv: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        proc = processes.spawn(argv, **kwargs)
        started.append(proc)
        return proc

    monkeypatch.setattr(baseline, "spawn", recording_spawn)
    return started


def assert_consistent(result: BaselineResult, *, seconds: float, concurrency: int) -> None:
    assert result.requests > 0
    assert result.concurrency == concurrency
    # The window is timed by asyncio.sleep: it may end up to the loop's clock
    # resolution early, and later on a busy machine.
    assert seconds * 0.99 <= result.seconds < seconds + SLACK_SECONDS
    assert result.requests_per_s == pytest.approx(result.requests / result.seconds)
    assert math.isfinite(result.p50_ms) and math.isfinite(result.p99_ms)
    assert 0 < result.p50_ms <= result.p99_ms
    # A counted call began after the warm-up started and ended inside the window.
    assert result.p99_ms < (seconds + SLACK_SECONDS) * 1000


def test_measures_a_second_of_echoes_and_stops_the_server(
    spawned: list[subprocess.Popen[bytes]],
) -> None:
    result = measure_echo_baseline(seconds=1.0, concurrency=8, warmup_s=0.2)

    assert_consistent(result, seconds=1.0, concurrency=8)
    assert len(spawned) == 1
    server = spawned[0]
    # terminate() has reaped it: SIGTERM made the echo server exit cleanly.
    assert server.returncode == 0
    assert not alive(server.pid)
    assert "requests/s" in result.describe()


def test_the_server_is_stopped_when_the_caller_fails(
    spawned: list[subprocess.Popen[bytes]],
) -> None:
    with pytest.raises(RuntimeError, match="caller failed"), echo_server() as target:
        with grpc.insecure_channel(target) as channel:
            echo: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(FULL_METHOD)
            assert echo(b"\x00hello", timeout=5) == b"\x00hello"
        raise RuntimeError("caller failed")

    assert len(spawned) == 1
    assert spawned[0].returncode is not None
    assert not alive(spawned[0].pid)


async def test_echo_load_over_two_channels_in_process() -> None:
    server = grpc.aio.server()
    add_echo_to_server(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        result = await echo_load(
            f"127.0.0.1:{port}", seconds=0.3, concurrency=4, warmup_s=0.1, channels=2
        )
    finally:
        await server.stop(None)

    assert_consistent(result, seconds=0.3, concurrency=4)


async def test_rejects_a_load_without_workers() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        await echo_load("127.0.0.1:1", concurrency=0)


def test_the_command_prints_one_line_with_requests_per_second(
    capsys: pytest.CaptureFixture[str], spawned: list[subprocess.Popen[bytes]]
) -> None:
    baseline.main(["--seconds", "0.3", "--warmup", "0.1", "--concurrency", "4"])

    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1
    assert "requests/s" in lines[0]
    assert all(not alive(proc.pid) for proc in spawned)


def test_a_server_that_cannot_start_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    # A port that is taken: the echo server exits at once, and the wait says so.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        monkeypatch.setattr(baseline, "free_port", lambda: taken.getsockname()[1])
        with pytest.raises(baseline.BaselineError, match="while starting"), echo_server():
            pytest.fail("the echo server should not have started")
