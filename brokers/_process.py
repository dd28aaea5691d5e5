"""Broker processes over common/processes.py: errors as BrokerStartError,
port checks before a start, log tails quoted in messages.

A broker left running after a test run or a crashed CLI holds ports and memory
(a JVM: half a gigabyte); common/processes.py makes sure children die with us
(explicit stop, an atexit sweep, and PR_SET_PDEATHSIG on Linux)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

from brokers._core import BrokerStartError
from common import processes
from common.processes import LOOPBACK, describe_exit, free_port, listen_port, port_in_use, tail

__all__ = [
    "LOOPBACK",
    "describe_logs",
    "ensure_port_free",
    "exit_description",
    "free_port",
    "listen_port",
    "spawn",
    "stop_process",
    "tail",
]


def spawn(
    argv: Sequence[str | os.PathLike[str]],
    *,
    output: Path,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a broker process with stdout and stderr appended to ``output``."""
    try:
        return processes.spawn(argv, log_file=output, env=env, cwd=cwd)
    except OSError as exc:
        raise BrokerStartError(f"could not run {os.fspath(argv[0])}: {exc}") from exc


def stop_process(proc: subprocess.Popen[bytes], *, grace_seconds: float) -> None:
    """SIGTERM, wait up to ``grace_seconds`` for a clean exit, then SIGKILL."""
    processes.terminate([proc], grace_seconds=grace_seconds)


def ensure_port_free(port: int) -> None:
    """Fail early and clearly when a requested port is taken (a broker's own error is buried)."""
    if port_in_use(port):
        raise BrokerStartError(
            f"port {port} on {LOOPBACK} is already in use; "
            "stop whatever listens there or choose another port"
        )


def describe_logs(paths: Sequence[Path], lines: int = 25) -> str:
    """A message suffix quoting the tail of each non-empty log."""
    parts = []
    for path in paths:
        text = tail(path, lines)
        if text.strip():
            parts.append(f"\n--- last lines of {path} ---\n{text}")
    return "".join(parts)


def exit_description(proc: subprocess.Popen[bytes]) -> str:
    if proc.returncode is None:
        return "is still running"
    return describe_exit(proc.returncode)
