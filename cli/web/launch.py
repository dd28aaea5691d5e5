"""The console beside a stack: what `up`, `demo` and `replay` start.

`start_console(stack, ...)` builds the live state fed from the stack's
topics, the gateway client and the example people under the CLI's identity
in the stack's PKI, the switchboard (`up` and `demo`: the stack's own
processes; `replay`: none, its scenario schedules the faults), and serves
them on 127.0.0.1. A fixed port that is taken stops `up` with a sentence;
`demo` and `replay` take a free port instead and say so.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.markup import escape

from cli.errors import EXIT_BAD_INPUT, CliError
from cli.stack import Stack
from cli.supervisor import Holds
from cli.web.app import build_app
from cli.web.dossiers import GrpcGateway
from cli.web.feed import Feed
from cli.web.hub import Hub
from cli.web.live import LiveState
from cli.web.people import SeededPeople
from cli.web.replay_stats import replay_stats
from cli.web.server import ConsoleServer, PortTaken
from cli.web.switchboard import NoSwitches, StackSwitchboard
from common.agencies import AGENCY_NAMES
from gateway.events import Topics

DEFAULT_PORT = 8088
# The page's replay panel moves once a second (the contract), whatever the replay's pace.
REPLAY_EVERY_S = 1.0


class WebConsole:
    """A started console: its address, its live state, and `stop()`."""

    def __init__(
        self,
        server: ConsoleServer,
        live: LiveState,
        hub: Hub,
        switchboard: StackSwitchboard | NoSwitches,
    ) -> None:
        self.server = server
        self.live = live
        self.hub = hub
        self.switchboard = switchboard
        self._last_replay = 0.0
        self._lock = threading.Lock()

    @property
    def address(self) -> str:
        return self.server.address

    def replay(self, stats: dict[str, Any], *, now: Callable[[], float] = time.monotonic) -> None:
        """A replay's stats for the page: at most once a second, except a
        change of phase and the final one (from the replay's thread)."""
        with self._lock:
            previous = self.live.replay
            moment = now()
            changed = previous is None or previous.get("phase") != stats.get("phase")
            soon = moment - self._last_replay < REPLAY_EVERY_S
            if not changed and stats.get("final") is None and soon:
                self.live.replay = stats  # /api/overview reads the newest
                return
            self._last_replay = moment
            self.hub.publish_threadsafe(self.live.set_replay(stats))

    def observe_fault(self, name: str, status: str, latency_ms: float) -> None:
        """A replay's scenario did this to a process (an agency's first
        replica, a gateway: only agencies are shown)."""
        if isinstance(self.switchboard, NoSwitches):
            self.switchboard.observe(name, status, latency_ms)

    def stop(self) -> None:
        if isinstance(self.switchboard, StackSwitchboard):
            # Nothing stays down or slow because of the page once it is gone.
            self.switchboard.restore_all()
        self.server.stop()


def stack_title(stack: Stack) -> str:
    broker = stack.broker_kind or "no"
    return f"lienthong — {broker} broker, {stack.store.describe()} store"


def start_console(
    console: Console,
    stack: Stack,
    *,
    mode: str,
    port: int,
    holds: Holds | None = None,
    fall_back: bool = True,
) -> WebConsole:
    """Serve the console for `stack`; `fall_back`: a taken fixed port
    gives way to a free one (demo, replay) instead of an error (up)."""
    agencies = [name for name in AGENCY_NAMES if name in stack.agency_addresses]
    live = LiveState(agencies)
    hub = Hub()
    tls = stack.tls()
    background = []
    if stack.bootstrap_servers:
        feed = Feed(stack.bootstrap_servers, Topics.with_prefix(stack.topic_prefix), live, hub)
        background.append(feed.run)
    switchboard: StackSwitchboard | NoSwitches = (
        NoSwitches(agencies, external=stack.external)
        if mode == "replay"
        else StackSwitchboard(stack, agencies, external=stack.external, holds=holds)
    )
    app = build_app(
        live=live,
        gateway=GrpcGateway(stack.gateway_address, tls),
        people=SeededPeople(stack.agency_addresses, tls),
        switchboard=switchboard,
        mode=mode,
        title=stack_title(stack),
        gateway_address=stack.gateway_address,
        agency_addresses=stack.agency_addresses,
        hub=hub,
        background=background,
    )
    server = ConsoleServer(app)
    serve(console, server, port, fall_back=fall_back)
    return WebConsole(server, live, hub, switchboard)


def console_port_taken(port: int) -> str:
    return f"port {port} is taken: pass --console-port N, or --no-console"


def serve(console: Console, server: ConsoleServer, port: int, *, fall_back: bool) -> None:
    """Start `server` on `port`; a taken port is an error, or (`fall_back`)
    a free port with a one-line note."""
    try:
        server.start(port)
    except PortTaken:
        if not fall_back or port == 0:
            raise CliError(console_port_taken(port), code=EXIT_BAD_INPUT) from None
        server.start(0)
        console.print(
            f"Port {port} is taken; the console takes port {server.port} instead.",
            highlight=False,
        )


def print_address(console: Console, address: str) -> None:
    console.print(f"Console: [bold]{escape(address)}[/]", highlight=False)


def seeding_stats(scenario: str, planned: int, duration_s: float) -> dict[str, Any]:
    return replay_stats(scenario, phase="seeding", planned=planned, duration_s=duration_s)
