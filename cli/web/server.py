"""uvicorn in a background thread, with an event loop of its own.

The command that starts the console (`up`, `demo`, `replay`) keeps its main
thread for its own work (supervising, following dossiers, replaying).
`start(port)` binds the socket first, so a taken port is known at once and
port 0 gives a free one; `stop()` returns promptly even with event streams
open (they end within half a second; past a grace, uvicorn is told to drop
the connections).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import threading
import time

import uvicorn
from starlette.applications import Starlette

from common.processes import LOOPBACK

START_TIMEOUT_SECONDS = 10.0
STOP_GRACE_SECONDS = 2


class PortTaken(OSError):
    """The fixed port is in use."""


class ConsoleServer:
    def __init__(self, app: Starlette, *, host: str = LOOPBACK) -> None:
        self.app = app
        self.host = host
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def address(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, port: int) -> str:
        """Serve on `port` (0: any free one); the address. Raises PortTaken."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, port))
        except OSError as error:
            sock.close()
            if error.errno == errno.EADDRINUSE:
                raise PortTaken(error.errno, f"port {port} is taken") from None
            raise
        sock.listen(128)
        sock.setblocking(False)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            log_config=None,  # the process's logging (structlog) as it is
            access_log=False,  # the app logs each API request at debug level
            lifespan="on",
            timeout_graceful_shutdown=STOP_GRACE_SECONDS,
            # Not uvicorn's: a demo on a projector has no use for the header.
            server_header=False,
        )
        server = uvicorn.Server(config)
        self._server = server

        def serve() -> None:
            # A loop of its own; uvicorn installs no signal handler off the main thread.
            asyncio.run(server.serve(sockets=[sock]))

        self._thread = threading.Thread(target=serve, name="console", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the console's web server did not start")
            # Started within milliseconds; there is no event to wait on in uvicorn.
            self._thread.join(0.01)
        return self.address

    def stop(self) -> None:
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        stopping = getattr(self.app.state, "stopping", None)
        hub = getattr(self.app.state, "hub", None)
        if stopping is not None and hub is not None:
            # The event streams end on their next turn, after what was
            # published just before (a replay's final stats): set from this
            # thread, a stream could see it set and end before the loop had
            # queued that change for it (a CI run lost the final stats so).
            hub.after_published(stopping.set)
        elif stopping is not None:
            stopping.set()
        server.should_exit = True
        thread.join(STOP_GRACE_SECONDS + 1)
        if thread.is_alive():
            server.force_exit = True
            thread.join(2)
        self._server = self._thread = None

    def __enter__(self) -> ConsoleServer:
        return self

    def __exit__(self, *exc: object) -> None:
        with contextlib.suppress(Exception):
            self.stop()
