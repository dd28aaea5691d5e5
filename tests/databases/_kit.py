"""Helpers for the launcher's tests: waiting on a condition, looking at processes."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import psycopg


def wait_until(condition: Callable[[], bool], *, within: float, what: str) -> None:
    """Poll `condition` until it holds; fail naming `what` after `within` seconds."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() >= deadline:
            raise AssertionError(f"not within {within:g} s: {what}")
        time.sleep(0.05)


def accepts_connections(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError:
        return False
    return True


def process_uid(pid: int) -> int:
    """The real uid of a running process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text(encoding="ascii").splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for pid {pid}")
