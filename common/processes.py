"""Child processes (registries, gateways, brokers): spawn with a log file, stop
with a deadline, never leak. Shared by the stack supervisor (cli/) and the
broker launcher (brokers/).

Three layers make sure a child dies with the CLI that started it:
- `Stack.stop()` stops every child in order (the normal path, also on Ctrl-C);
- an `atexit` sweep SIGKILLs any child still registered (an exception that
  escaped everything, `sys.exit` from a signal handler);
- on Linux, PR_SET_PDEATHSIG asks the kernel to SIGTERM the child when the CLI
  itself is SIGKILLed and no Python code runs at all.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import ctypes.util
import os
import pwd
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

LOOPBACK = "127.0.0.1"
# Maven 3.8 writes colour codes even in batch mode; they garble quoted logs.
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")

_live: set[subprocess.Popen[bytes]] = set()
_live_lock = threading.Lock()
_PR_SET_PDEATHSIG = 1


def _pdeathsig_hook(death_signal: signal.Signals = signal.SIGTERM) -> Callable[[], None] | None:
    """A preexec_fn making the kernel SIGTERM the child when its parent dies.

    Only from the main thread: the kernel ties the signal to the thread that
    forked, so a child spawned from a short-lived worker thread would be
    killed when that thread ends. prctl is looked up before fork because the
    child must not import or allocate between fork and exec.
    """
    if not sys.platform.startswith("linux"):
        return None
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, death_signal, 0, 0, 0)

    return hook


def spawn(
    argv: Sequence[str | os.PathLike[str]],
    *,
    log_file: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
    death_signal: signal.Signals = signal.SIGTERM,
) -> subprocess.Popen[bytes]:
    """Start a child with stdout and stderr appended to `log_file` (env None: inherit).

    `user`: run the child as that account, with its primary group and no
    supplementary groups (only root may; PostgreSQL refuses to run as root).
    `death_signal`: what the kernel sends the child if this process dies
    (PostgreSQL's clean "fast" shutdown is SIGINT; its SIGTERM waits for clients).
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    account = None if user is None else pwd.getpwnam(user)
    with log_file.open("ab") as sink:
        proc = subprocess.Popen(
            [os.fspath(a) for a in argv],
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=None if env is None else dict(env),
            cwd=cwd,
            # Its own process group: a Ctrl-C in the terminal reaches only the
            # parent, which then stops the children in order (gateway before the
            # registries it calls, broker last) instead of racing their shutdowns.
            process_group=0,
            # Safe with threads: the hook only calls a function looked up before fork.
            # Python runs it after switching to `user`: the kernel clears the
            # death signal when the credentials change, so it must come after.
            preexec_fn=_pdeathsig_hook(death_signal),  # noqa: PLW1509
            user=None if account is None else account.pw_uid,
            group=None if account is None else account.pw_gid,
            extra_groups=None if account is None else [],
        )
    with _live_lock:
        _live.add(proc)
    return proc


def terminate(procs: Sequence[subprocess.Popen[bytes]], *, grace_seconds: float) -> None:
    """SIGTERM all of `procs` at once, wait up to `grace_seconds`, SIGKILL stragglers."""
    try:
        for proc in procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.terminate()
        _wait_all(procs, grace_seconds)
    finally:
        for proc in procs:
            kill(proc)


def kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL (if still running) and reap; forget the child."""
    try:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            # SIGKILL cannot be ignored; the wait only reaps it.
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=10)
    finally:
        with _live_lock:
            _live.discard(proc)


def _wait_all(procs: Sequence[subprocess.Popen[bytes]], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    for proc in procs:
        remaining = max(0.0, deadline - time.monotonic())
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=remaining)


@atexit.register
def _kill_leftovers() -> None:
    with _live_lock:
        leftovers = list(_live)
    for proc in leftovers:
        kill(proc)


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-returncode).name}"
    return f"exited with code {returncode}"


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


# Where the kernel picks ports for outgoing connections (Linux's default if
# /proc does not say).
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LISTEN_PORTS_FROM = 20_000


def _ephemeral_low() -> int:
    try:
        return int(_EPHEMERAL_RANGE.read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


def listen_port(rng: random.Random | None = None) -> int:
    """A free loopback port for a server that may stop and start again while
    clients keep reconnecting to it (a broker, a registry): chosen below the
    ephemeral range. A port from that range can be taken, while its server is
    down, by a client's own reconnecting socket (a TCP self-connect on
    loopback), and the server then cannot bind it again: seen as "Address
    already in use" when a chaos replay restarted the broker."""
    rng = rng or random.Random()
    high = _ephemeral_low() - 1
    for _ in range(200):
        port = rng.randint(_LISTEN_PORTS_FROM, high)
        if not port_in_use(port):
            return port
    return free_port()


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs: not one that is gone, nor a
    zombie (exited, not yet reaped by its parent, which may not be us).
    Someone else's process we may not signal counts as running."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        fields = proc_stat(pid)
        if fields and fields[0] == "Z":
            return False
    return True


def proc_stat(pid: int) -> list[str]:
    """A process's /proc/<pid>/stat fields after its command name (Linux),
    from the state on: the name, in parentheses, may hold spaces. OSError if
    there is no such process."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def port_in_use(port: int, host: str = LOOPBACK) -> bool:
    """Whether something listens on the port. SO_REUSEADDR, as the brokers
    themselves bind (the JVM and tokio both set it): the sockets a stopped
    broker leaves in TIME_WAIT for a minute do not make the port taken, so a
    broker restarts on its own port at once."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def tail(path: Path, lines: int = 25) -> str:
    """The last `lines` lines of a log file ('' if there is none)."""
    try:
        with path.open("rb") as handle:
            # Logs grow: read only the end.
            handle.seek(0, os.SEEK_END)
            handle.seek(max(0, handle.tell() - 64 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(_ANSI_ESCAPE.sub("", text).splitlines()[-lines:])
