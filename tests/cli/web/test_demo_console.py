"""`lienthong demo` with its console, as a user runs it: the address printed,
deep links to both dossiers, both timelines served, and `--stay` keeping the
stack and console up until SIGTERM (stdout piped, so only because asked)."""

from __future__ import annotations

import json
import re
import signal
import socket
from pathlib import Path

import httpx
import pytest

from common.config import DEFAULT_PORTS
from tests.cli.running import fixed_ports_stay_taken, fixed_ports_taken, read_until, run, spawn
from tests.cli.test_commands_end_to_end import cli_env, remove_kept_stack

# Every component `up` starts on a fixed port (its metrics too).
FIXED = tuple(DEFAULT_PORTS)


@pytest.mark.kafka
@pytest.mark.slow
@pytest.mark.timeout(200)
def test_demo_prints_its_console_which_shows_both_dossiers_and_stays(tmp_path: Path) -> None:
    demo = spawn(["demo", "--console-port", "0", "--stay"], cwd=tmp_path, env=cli_env(tmp_path))
    seen: list[str] = []
    try:
        output = read_until(demo, "Ctrl-C stops the stack", seen)
        assert demo.poll() is None, output
        address = re.search(r"Console: (http://127\.0\.0\.1:\d+)", output)
        assert address is not None, output
        base = address.group(1)
        links = re.findall(re.escape(base) + r"/#dossier=(\S+)", output)
        assert len(links) == 2, output
        assert f"The console stays at {base}" in output
        with httpx.Client(base_url=base, timeout=30) as client:
            for dossier_id in links:
                detail = client.get(f"/api/dossiers/{dossier_id}").json()
                assert detail["state"] == "COMPLETED" and detail["timeline"], detail
            overview = client.get("/api/overview").json()
            assert overview["mode"] == "demo"
            assert {r["dossier_id"] for r in overview["recent"]} >= set(links)
        demo.send_signal(signal.SIGTERM)
        rest, _ = demo.communicate(timeout=60)
        seen.append(rest)
        assert demo.returncode == 0, output + rest
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{base}/api/overview", timeout=5)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        remove_kept_stack("".join(seen))


@pytest.mark.kafka
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_up_serves_its_console_records_it_and_demo_against_it_prints_it(tmp_path: Path) -> None:
    if fixed_ports_stay_taken(FIXED):
        pytest.skip("a default port is taken (a stack is running here)")
    data_dir = tmp_path / "up"
    up = spawn(
        ["up", "--console-port", "0", "--data-dir", str(data_dir)],
        cwd=tmp_path,
        env=cli_env(tmp_path),
    )
    try:
        output = read_until(up, "Press Ctrl-C to stop", [])
        address = re.search(r"Console: (http://127\.0\.0\.1:\d+)", output)
        assert address is not None, output
        base = address.group(1)
        state = json.loads((data_dir / "stack.json").read_text(encoding="utf-8"))
        assert state["console"] == base
        assert httpx.get(f"{base}/api/overview", timeout=10).json()["mode"] == "up"
        demo = run(
            ["demo", "--data-dir", str(data_dir)],
            cwd=tmp_path,
            env=cli_env(tmp_path),
            timeout=150,
        )
        assert demo.returncode == 0, demo.stdout + demo.stderr
        assert f"Console: {base}" in demo.stdout
        assert len(re.findall(re.escape(base) + r"/#dossier=\S+", demo.stdout)) == 2
        up.send_signal(signal.SIGTERM)
        rest, _ = up.communicate(timeout=60)
        assert up.returncode == 0, output + rest
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()


def test_up_on_a_taken_console_port_says_so_and_starts_nothing(tmp_path: Path) -> None:
    if fixed_ports_stay_taken(FIXED):
        pytest.skip("a default port is taken (a stack is running here)")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        port = holder.getsockname()[1]
        answer = run(
            ["up", "--console-port", str(port), "--data-dir", str(tmp_path / "up")],
            cwd=tmp_path,
            env=cli_env(tmp_path),
            timeout=120,
        )
    assert answer.returncode == 2, answer.stdout + answer.stderr
    assert f"port {port} is taken: pass --console-port N, or --no-console" in answer.stderr
    assert not (tmp_path / "up" / "stack.json").exists()
    assert not fixed_ports_taken(FIXED)
