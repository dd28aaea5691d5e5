"""`python -m common.healthcheck`, the containers' gRPC health probe, against a
real registry on loopback: run as the process a container runtime starts (exit
code, one line on stderr), and in-process for the other answers."""

from __future__ import annotations

import asyncio
import socket
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from grpc_health.v1 import health_pb2

from common import healthcheck
from common.processes import free_port
from services.health.app import SERVICE_NAME, build
from tests.conftest import Registry

ROOT = Path(__file__).resolve().parents[1]
StartRegistry = Callable[..., Any]


async def _run(*args: str) -> tuple[int, str, str]:
    """`python -m common.healthcheck ARGS` as a child process: exit code, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "common.healthcheck",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts TCP connections and never says a word (a hung server)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


async def test_serving_registry_exits_0(start: StartRegistry) -> None:
    registry: Registry = await start(build)
    code, out, err = await _run(registry.address)
    assert (code, err) == (0, "")
    assert "SERVING" in out
    code, _, err = await _run(registry.address, "--service", SERVICE_NAME)
    assert (code, err) == (0, "")


async def test_nothing_listening_exits_1_saying_so() -> None:
    address = f"127.0.0.1:{free_port()}"
    code, out, err = await _run(address)
    assert code == 1
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"unhealthy: nothing answers at {address} (UNAVAILABLE")


async def test_not_serving_exits_1(
    start: StartRegistry, capsys: pytest.CaptureFixture[str]
) -> None:
    registry: Registry = await start(build)
    await registry.running.health.set(SERVICE_NAME, health_pb2.HealthCheckResponse.NOT_SERVING)
    # In a thread: the server answers on this test's event loop.
    code = await asyncio.to_thread(healthcheck.main, [registry.address, "--service", SERVICE_NAME])
    assert code == 1
    assert capsys.readouterr().err == (
        f"unhealthy: {registry.address} answers NOT_SERVING for service {SERVICE_NAME}\n"
    )
    # The server as a whole still serves.
    assert await asyncio.to_thread(healthcheck.main, [registry.address]) == 0


async def test_unknown_service_exits_1(start: StartRegistry) -> None:
    registry: Registry = await start(build)
    reason = await asyncio.to_thread(
        healthcheck.probe, registry.address, service="lienthong.nothing.v1.Nothing"
    )
    assert reason == (
        f"{registry.address} does not know service lienthong.nothing.v1.Nothing (NOT_FOUND)"
    )


def test_no_answer_in_time_exits_1(silent_port: int, capsys: pytest.CaptureFixture[str]) -> None:
    address = f"127.0.0.1:{silent_port}"
    assert healthcheck.main([address, "--timeout", "0.3"]) == 1
    assert capsys.readouterr().err == f"unhealthy: {address} did not answer within 0.3 s\n"


@pytest.mark.parametrize(
    "argv",
    [["localhost"], ["localhost:http"], [":50051"], ["localhost:0"], ["h:1", "--timeout", "0"]],
)
def test_bad_command_line_exits_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        healthcheck.main(argv)
    assert exited.value.code == 2
    assert "python -m common.healthcheck: error:" in capsys.readouterr().err
