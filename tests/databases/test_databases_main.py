"""`python -m databases postgres` as a real process: prints its URLs once ready,
stays up, stops its server on SIGTERM and exits 0; a start error exits 2."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.processes import port_in_use
from databases import PostgresBinaries, PostgresServer
from tests.databases._kit import accepts_connections

ROOT = Path(__file__).resolve().parents[2]
COMMAND = (sys.executable, "-m", "databases", "postgres")


@pytest.fixture
def data_dir(postgres_binaries: PostgresBinaries) -> Iterator[Path]:
    # Its own top directory under /tmp: as root the server's account can reach it.
    top = Path(tempfile.mkdtemp(prefix="lienthong-test-"))
    top.chmod(0o755)
    yield top / "pg"
    PostgresServer(top / "pg").remove()  # Nothing runs by now; this deletes the files.
    shutil.rmtree(top, ignore_errors=True)


def test_runs_until_sigterm_then_stops_the_server(data_dir: Path) -> None:
    proc = subprocess.Popen(
        [*COMMAND, "--dir", str(data_dir), "--database", "gateway", "--database", "population"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        # readline() returns '' if the process dies, which fails the test instead of hanging.
        urls = [proc.stdout.readline().strip() for _ in range(2)]
        assert all(urls), proc.stderr.read() if proc.stderr else ""
        port = int(urls[0].split(":")[2].split("/")[0])
        assert urls == [
            f"postgresql://lienthong@127.0.0.1:{port}/gateway",
            f"postgresql://lienthong@127.0.0.1:{port}/population",
        ]
        assert all(accepts_connections(url) for url in urls)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        assert not port_in_use(port)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_taken_port_exits_2_with_one_message(data_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [*COMMAND, "--dir", str(data_dir), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=ROOT,
        )
    assert done.returncode == 2
    assert done.stderr == f"error: port {port} on 127.0.0.1 is already in use; " + (
        "stop whatever listens there or choose another port\n"
    )
