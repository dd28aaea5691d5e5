"""`python -m brokers`: prints the bootstrap servers, stays up, stops its broker on SIGTERM."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import pytest

from brokers import answers

ADDRESS = re.compile(r"^127\.0\.0\.1:\d+$")


@pytest.mark.kafka
def test_runs_until_sigterm_then_stops_the_broker() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "brokers", "--broker", "embedded"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        # Log lines may come first; the address has a line of its own. readline()
        # returns '' if the process dies, which fails the test instead of hanging.
        bootstrap = ""
        for line in proc.stdout:
            if ADDRESS.match(line.strip()):
                bootstrap = line.strip()
                break
        assert bootstrap, proc.stderr.read() if proc.stderr else ""
        assert answers(bootstrap)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert not answers(bootstrap)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_start_error_exits_2_with_one_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    done = subprocess.run(
        [sys.executable, "-m", "brokers", "--broker", "external"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: --broker external needs KAFKA_BOOTSTRAP_SERVERS")
    assert "Traceback" not in done.stderr
