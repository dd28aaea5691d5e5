"""`lienthong demo` with its console, as a user runs it: the address printed,
deep links to both dossiers, both timelines served, and `--stay` keeping the
stack and console up until SIGTERM (stdout piped, so only because asked)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.cli.test_commands_end_to_end import cli_env, remove_kept_stack

LIENTHONG = [sys.executable, "-m", "cli.main"]


@pytest.mark.kafka
@pytest.mark.slow
@pytest.mark.timeout(200)
def test_demo_prints_its_console_which_shows_both_dossiers_and_stays(tmp_path: Path) -> None:
    demo = subprocess.Popen(
        [*LIENTHONG, "demo", "--console-port", "0", "--stay"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=cli_env(tmp_path),
        cwd=tmp_path,
    )
    seen: list[str] = []
    try:
        assert demo.stdout is not None
        for line in demo.stdout:
            seen.append(line)
            if "Ctrl-C stops the stack" in line:
                break
        output = "".join(seen)
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
