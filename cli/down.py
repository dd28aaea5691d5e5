"""`lienthong down`: stop the stack a `lienthong up` runs, from another
terminal or a script.

`up` already stops cleanly on SIGTERM, as on Ctrl-C: its children in order,
our PostgreSQL last, then it removes stack.json. So `down` only has to find
that process and signal it, then wait until it has gone: a script that runs
`lienthong down && lienthong up` must find the ports free.

stack.json may outlive its `up` (SIGKILL, a reboot), and its process id may
since belong to someone else: `down` signals it only if it still is a
`lienthong up`, and otherwise just removes the stale file.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from cli.errors import CliError
from cli.state import STATE_FILE, default_data_dir, read_state, remove_state
from common.processes import pid_alive

POLL_SECONDS = 0.1


def run_down(
    console: Console,
    *,
    data_dir: Path | None,
    timeout_s: float,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    directory = data_dir or default_data_dir()
    state = read_state(directory)
    if state is None:
        console.print(
            f"No stack is running from {escape(str(directory))} (no readable {STATE_FILE}); "
            "nothing to stop.",
            highlight=False,
        )
        return 0
    if not is_up_process(state.pid):
        remove_state(directory)
        console.print(
            f"The stack recorded in {escape(str(directory / STATE_FILE))} is gone "
            f"(process {state.pid} is not a running `lienthong up`); removed the stale file.",
            highlight=False,
        )
        return 0
    os.kill(state.pid, signal.SIGTERM)
    deadline = clock() + timeout_s
    while pid_alive(state.pid):
        if clock() >= deadline:
            raise CliError(
                f"`lienthong up` (process {state.pid}) did not stop within {timeout_s:g} s",
                [
                    f"its log says why: the components' logs are in {directory}",
                    "wait longer with --timeout SECONDS, or stop it with "
                    f"`kill -KILL {state.pid}` (its children then stay up: "
                    f"{_children(state.processes)})",
                ],
            )
        time.sleep(POLL_SECONDS)  # polling another process's exit: no handle to wait on
    console.print(f"Stopped the stack (`lienthong up`, process {state.pid}).", highlight=False)
    return 0


def _children(processes: dict[str, int]) -> str:
    return ", ".join(f"{name} {pid}" for name, pid in processes.items()) or "none recorded"


def is_up_process(pid: int) -> bool:
    """Whether `pid` is a running `lienthong up` (by its command line where
    /proc has it; elsewhere, alive is all we can tell)."""
    if not pid_alive(pid):
        return False
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self").exists()
    except OSError:
        return False
    arguments = [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]
    launched_as_lienthong = any(
        Path(argument).name == "lienthong" or argument in ("cli", "cli.main")
        for argument in arguments
    )
    return launched_as_lienthong and "up" in arguments
