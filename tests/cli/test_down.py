"""`lienthong down`: it stops a running `up` from another process, and
leaves a stale stack.json's process id alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cli.state import STATE_FILE, StackState, write_state
from tests.cli.running import fixed_ports_stay_taken, fixed_ports_taken, read_until, run, spawn
from tests.processes import alive


def env(tmp_path: Path) -> dict[str, str]:
    return os.environ | {"LIENTHONG_DATA_DIR": str(tmp_path / "no-such-data-dir")}


def down(tmp_path: Path, data_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return run(
        ["down", "--data-dir", str(data_dir), *extra],
        cwd=tmp_path,
        env=env(tmp_path),
        timeout=120,
    )


def recorded(data_dir: Path, pid: int) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    write_state(
        data_dir,
        StackState(
            gateway="127.0.0.1:1",
            agencies={},
            bootstrap_servers="",
            broker="",
            data_dir=str(data_dir),
            pid=pid,
        ),
    )


def test_nothing_recorded_is_nothing_to_stop(tmp_path: Path) -> None:
    answer = down(tmp_path, tmp_path / "empty")
    assert answer.returncode == 0, answer.stderr
    assert "No stack is running" in answer.stdout


def test_a_live_process_that_is_not_up_is_not_signalled(tmp_path: Path) -> None:
    # A stale stack.json whose process id now belongs to some other program.
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        data_dir = tmp_path / "stale"
        recorded(data_dir, bystander.pid)
        answer = down(tmp_path, data_dir)
        assert answer.returncode == 0, answer.stderr
        assert "removed the stale file" in answer.stdout
        assert bystander.poll() is None
        assert not (data_dir / STATE_FILE).exists()
    finally:
        bystander.kill()
        bystander.wait()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_down_stops_a_running_up_and_everything_it_started(tmp_path: Path) -> None:
    if fixed_ports_stay_taken():
        pytest.skip("a default registry port is taken (a stack is running here)")
    data_dir = tmp_path / "up"
    up = spawn(["up", "--no-gateway", "--data-dir", str(data_dir)], cwd=tmp_path, env=env(tmp_path))
    try:
        read_until(up, "Press Ctrl-C to stop", [])
        state = json.loads((data_dir / STATE_FILE).read_text(encoding="utf-8"))
        children = list(state["processes"].values())
        assert len(children) == 3 and all(alive(pid) for pid in children)

        answer = down(tmp_path, data_dir)

        # `down` returns only once `up` has gone: no wait needed here.
        assert answer.returncode == 0, answer.stdout + answer.stderr
        assert f"Stopped the stack (`lienthong up`, process {up.pid})" in answer.stdout
        assert up.wait(timeout=5) == 0
        assert not (data_dir / STATE_FILE).exists()
        assert not any(alive(pid) for pid in children)
        assert not fixed_ports_taken()
        # Nothing left to stop: a second `down` says so and succeeds.
        again = down(tmp_path, data_dir)
        assert again.returncode == 0 and "No stack is running" in again.stdout
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
