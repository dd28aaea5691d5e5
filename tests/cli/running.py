"""The `lienthong` command run as a process by the tests: start it, read its
output until it says something, and whether the stack's fixed ports are free
for an `up` (a developer's own stack may hold them)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from common.config import DEFAULT_METRICS_PORTS, DEFAULT_PORTS
from common.processes import port_in_use

LIENTHONG = [sys.executable, "-m", "cli.main"]
REGISTRIES = ("population", "insurance", "health")


def spawn(arguments: Sequence[str], *, cwd: Path, env: Mapping[str, str]) -> subprocess.Popen[str]:
    """`lienthong ARGUMENTS`, its stdout and stderr as one text stream."""
    return subprocess.Popen(
        [*LIENTHONG, *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=dict(env),
        cwd=cwd,
    )


def run(
    arguments: Sequence[str], *, cwd: Path, env: Mapping[str, str], timeout: float
) -> subprocess.CompletedProcess[str]:
    """`lienthong ARGUMENTS` to its end (or the timeout), its output captured."""
    return subprocess.run(
        [*LIENTHONG, *arguments],
        capture_output=True,
        text=True,
        env=dict(env),
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def read_until(process: subprocess.Popen[str], marker: str, seen: list[str]) -> str:
    """Read lines into `seen` until one holds `marker` (the test's timeout
    bounds the wait); everything seen so far. Fails if the process ends first."""
    assert process.stdout is not None
    for line in process.stdout:
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"the command ended before saying {marker!r}:\n{''.join(seen)}")


def fixed_ports_taken(names: Sequence[str] = REGISTRIES) -> bool:
    """Whether a component's fixed port or metrics port is taken."""
    return any(
        port_in_use(port)
        for name in names
        for port in (DEFAULT_PORTS[name], DEFAULT_METRICS_PORTS[name])
    )


def fixed_ports_stay_taken(names: Sequence[str] = REGISTRIES, within_s: float = 30.0) -> bool:
    """Whether a fixed port is still taken after up to `within_s`: a stack an
    earlier test stopped may still be letting its ports go (then the test
    runs), a developer's own stack keeps them (then it is skipped)."""
    deadline = time.monotonic() + within_s
    while fixed_ports_taken(names):
        if time.monotonic() >= deadline:
            return True
        time.sleep(0.2)
    return False
