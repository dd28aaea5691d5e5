"""Child broker processes: spawn, stop (SIGTERM, deadline, SIGKILL), ports, log tails.

A broker left running after a test run or a crashed CLI holds ports and memory
(a JVM: half a gigabyte), so three layers make sure children die with us:
an explicit ``stop()``, an ``atexit`` sweep of every child still registered,
and, on Linux, ``PR_SET_PDEATHSIG`` so that the kernel sends SIGTERM to the
child even when this process is SIGKILLed and atexit never runs.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from brokers._core import BrokerStartError

LOOPBACK = "127.0.0.1"

_live: set[subprocess.Popen[bytes]] = set()
_live_lock = threading.Lock()

_PR_SET_PDEATHSIG = 1
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@functools.cache
def _prctl() -> Any:
    try:
        # The symbols already loaded into this process, libc's among them.
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None


def _pdeathsig_hook() -> Callable[[], None] | None:
    """A preexec_fn asking the kernel to SIGTERM the child when its parent dies.

    Looked up before fork: the child must not import or allocate. Only used when
    spawning from the main thread, because the kernel ties the signal to the
    *thread* that forked: a broker started from a short-lived worker thread
    would be killed when that thread ends.
    """
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    prctl = _prctl()
    if prctl is None:
        return None

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)

    return hook


def spawn(
    argv: Sequence[str | os.PathLike[str]],
    *,
    output: Path,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start a broker process with stdout and stderr appended to ``output``."""
    output.parent.mkdir(parents=True, exist_ok=True)
    with output.open("ab") as sink:
        try:
            proc = subprocess.Popen(
                [os.fspath(a) for a in argv],
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=env,
                # Own process group: a Ctrl-C in the terminal reaches only us, and we
                # stop the broker in order instead of racing its own shutdown.
                process_group=0,
                # Safe despite threads: the hook only calls a prctl looked up before fork.
                preexec_fn=_pdeathsig_hook(),  # noqa: PLW1509
            )
        except OSError as exc:
            raise BrokerStartError(f"could not run {os.fspath(argv[0])}: {exc}") from exc
    with _live_lock:
        _live.add(proc)
    return proc


def stop_process(proc: subprocess.Popen[bytes], *, grace_seconds: float) -> None:
    """SIGTERM, wait up to ``grace_seconds`` for a clean exit, then SIGKILL."""
    try:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=grace_seconds)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
    finally:
        with _live_lock:
            _live.discard(proc)


@atexit.register
def _stop_leftovers() -> None:
    with _live_lock:
        leftovers = list(_live)
    for proc in leftovers:
        stop_process(proc, grace_seconds=5)


def free_port() -> int:
    """A TCP port on the loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def ensure_port_free(port: int) -> None:
    """Fail early and clearly when a requested port is taken (a broker's own error is buried)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError as exc:
            raise BrokerStartError(
                f"port {port} on {LOOPBACK} is already in use ({exc.strerror}); "
                "stop whatever listens there or choose another port"
            ) from exc


def tail(path: Path, lines: int = 25) -> str:
    """The last ``lines`` lines of a log file, or '' if it does not exist."""
    try:
        with path.open("rb") as handle:
            # Logs can be large: read only the end.
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    # Maven 3.8 writes colour codes even in batch mode.
    text = _ANSI_ESCAPE.sub("", text)
    return "\n".join(text.splitlines()[-lines:])


def describe_logs(paths: Sequence[Path], lines: int = 25) -> str:
    """A message suffix quoting the tail of each non-empty log."""
    parts = []
    for path in paths:
        text = tail(path, lines)
        if text.strip():
            parts.append(f"\n--- last lines of {path} ---\n{text}")
    return "".join(parts)


def exit_description(proc: subprocess.Popen[bytes]) -> str:
    code = proc.returncode
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
    return f"exited with code {code}"
