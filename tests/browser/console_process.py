"""A `lienthong` command run for the browser tests: its output read as it comes
(a thread per process), waited on with deadlines, stopped with SIGINT as a
user at a terminal would (Ctrl-C), killed only if it does not stop."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

LIENTHONG = [sys.executable, "-m", "cli.main"]
STOP_TIMEOUT_S = 60.0


class ConsoleProcess:
    def __init__(self, args: list[str], tmp_path: Path) -> None:
        env = os.environ | {
            # A data dir of its own: no developer's running stack is found.
            "LIENTHONG_DATA_DIR": str(tmp_path / "data"),
            "COLUMNS": "200",
        }
        self.process = subprocess.Popen(
            [*LIENTHONG, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
            cwd=tmp_path,
        )
        self._lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            with self._changed:
                self._lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "".join(self._lines)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        """The first match of `pattern` in the output so far, waiting for it."""
        deadline = time.monotonic() + timeout
        compiled = re.compile(pattern)
        with self._changed:
            while True:
                found = compiled.search("".join(self._lines))
                if found is not None:
                    return found
                left = deadline - time.monotonic()
                if left <= 0 or (self.process.poll() is not None and not self._reader.is_alive()):
                    break
                self._changed.wait(min(left, 1.0))
        raise AssertionError(
            f"no {pattern!r} in the output within {timeout} s"
            f" (exit code {self.process.poll()}):\n{self.output[-4000:]}"
        )

    def console_address(self, timeout: float) -> str:
        return self.wait_for(r"Console: (http://127\.0\.0\.1:\d+)", timeout)[1]

    def stop(self) -> int:
        """Ctrl-C, then the exit code (a kill after STOP_TIMEOUT_S)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(10)
        # A demo's fresh stack keeps its directory for its logs and names it.
        kept = re.search(r"Logs kept in (\S+)", self.output)
        if kept is not None:
            shutil.rmtree(kept.group(1), ignore_errors=True)
        return self.process.returncode
