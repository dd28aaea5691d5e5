"""`lienthong demo`: one birth and one death declaration through the whole stack.

Uses a running stack if one answers (DATA_DIR/stack.json, else the default
gateway port); otherwise starts one in a temporary directory and stops it at
the end. Seeds a fresh synthetic population (unique to this run, so the demo
can be repeated against a long-running stack), submits both declarations,
follows both dossiers live through WatchDossier, then tells the results in
words, and looks the newborn's coverage up by her ID number as a hospital
would (cli/coverage.py). Exit 0 only if both dossiers reach COMPLETED and the
hospital finds the child covered.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import queue
import secrets
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import grpc
from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape

from cli import coverage
from cli.audit import MESSAGES, trail_table
from cli.client import GatewayClient, WatchStream
from cli.demo_data import TOKEN_LIMIT, DemoPopulation, demo_population
from cli.errors import CliError, from_rpc
from cli.fresh_stack import fresh_stack
from cli.render import (
    TERMINAL_STATES,
    dossier_state,
    is_terminal,
    result_lines,
    timeline_table,
)
from cli.rpc_errors import describe
from cli.scale import Scale
from cli.seeding import seed
from cli.state import client_tls, find_running_stack
from cli.trust import show_access_refusal, warn_insecure
from cli.web.launch import print_address, start_console
from common import channels
from common.clock import SystemClock, vietnam_today
from common.message_log_verify import exchanges_of
from lienthong.gateway.v1 import gateway_pb2 as gw

WATCH_TIMEOUT_SECONDS = 120.0
# How often the live view redraws while nothing changes (elapsed ms of a
# running step keep counting).
REDRAW_SECONDS = 0.25


@dataclass(frozen=True)
class Target:
    gateway: str
    # agency name → host:port
    registries: dict[str, str]
    description: str
    # The stack's data directory, whose messages/ holds the servers' message
    # logs; None when not known (a stack.json without it).
    data_dir: Path | None = None
    # The web console's address (http://127.0.0.1:8088), "" without one.
    console: str = ""
    # A console of the demo's own (its fresh stack's): kept up at the end if asked.
    own_console: bool = False


@contextlib.contextmanager
def _stack_for_demo(
    console: Console,
    broker: str,
    data_dir: Path | None,
    *,
    new_stack: bool,
    external: Mapping[str, str],
    insecure: bool,
    scale: Scale,
    console_port: int | None,
) -> Iterator[Target]:
    # An agency plugged in with --agency, or a stack of another scale, needs
    # a stack that calls it: a new one.
    wants_new = new_stack or bool(external) or scale != Scale()
    running = None if wants_new else find_running_stack(data_dir, insecure=insecure)
    if running is not None:
        tls = client_tls(running, insecure=insecure)
        if tls is None:
            warn_insecure(console)
        with channels.identity(tls):
            yield Target(
                running.gateway,
                running.agencies,
                f"the running stack (gateway {running.gateway})",
                Path(running.data_dir) if running.data_dir else None,
                console=running.console if console_port is not None else "",
            )
        return
    with fresh_stack(console, broker, external=external, insecure=insecure, scale=scale) as stack:
        # Kept, so that its message logs can be checked after the demo
        # (`lienthong audit verify DIR/messages`).
        stack.keep_data_dir = True
        web = (
            start_console(console, stack, mode="demo", port=console_port)
            if console_port is not None
            else None
        )
        try:
            yield Target(
                stack.gateway_address,
                stack.agency_addresses,
                f"a fresh stack in {stack.data_dir}",
                stack.data_dir,
                console=web.address if web is not None else "",
                own_console=web is not None,
            )
        finally:
            if web is not None:
                web.stop()


def run_demo(
    console: Console,
    *,
    broker: str,
    data_dir: Path | None = None,
    new_stack: bool = False,
    external: Mapping[str, str] | None = None,
    insecure: bool = False,
    scale: Scale | None = None,
    console_port: int | None = None,
    stay: bool | None = None,
) -> int:
    """`console_port`: the web console's (0: a free port; None: no console).
    `stay`: keep a fresh stack and its console up at the end until Ctrl-C
    (None: when the console is on and stdout is a terminal)."""
    with _stack_for_demo(
        console,
        broker,
        data_dir,
        new_stack=new_stack,
        external=dict(external or {}),
        insecure=insecure,
        scale=scale or Scale(),
        console_port=console_port,
    ) as target:
        outcome = _run(console, target)
        stays = stay if stay is not None else is_terminal()
        if target.own_console and stays:
            _stay(console, target.console)
        return outcome


def _stay(console: Console, address: str) -> None:
    """Until Ctrl-C or SIGTERM (KeyboardInterrupt): the audience may go on clicking."""
    console.print(
        f"The console stays at {escape(address)}; Ctrl-C stops the stack.", highlight=False
    )
    ticker = threading.Event()
    try:
        while True:
            ticker.wait(1.0)
    except KeyboardInterrupt:
        return


def _run(console: Console, target: Target) -> int:
    console.print(f"Using {escape(target.description)}.", highlight=False)
    if target.console:
        print_address(console, target.console)
    # Yesterday in Vietnam (the registries' calendar): recent enough for every
    # time limit, never a future day.
    yesterday = vietnam_today(SystemClock()) - dt.timedelta(days=1)
    people = demo_population(secrets.randbelow(TOKEN_LIMIT), born_on=yesterday, died_on=yesterday)
    try:
        counts = seed(target.registries, people)
    except grpc.RpcError as error:
        failure = describe(error)
        raise CliError(
            f"seeding the demo population failed: {failure.code.name}: {failure.message}",
            [f"{field}: {text}" for field, text in failure.field_violations],
        ) from None
    console.print(
        f"Seeded households: {counts.households}, citizens: {counts.citizens}, "
        f"facilities: {counts.facilities}, birth certificates: {counts.birth_certificates}, "
        f"death notices: {counts.death_notices}, insurance participants: {counts.participants}.",
        highlight=False,
    )
    with GatewayClient(target.gateway) as client:
        try:
            birth_id = client.submit("birth", people.birth, f"demo-{people.token}-birth")
            death_id = client.submit("death", people.death, f"demo-{people.token}-death")
        except grpc.RpcError as error:
            raise from_rpc(
                error, what="submit the demo declarations", address=target.gateway
            ) from None
        console.print(
            f"Submitted birth dossier {birth_id} and death dossier {death_id}.", highlight=False
        )
        if target.console:
            for dossier_id in (birth_id, death_id):
                console.print(f"  {escape(target.console)}/#dossier={dossier_id}", highlight=False)
        titles = {
            birth_id: f"Birth of {people.birth.child_full_name} ({birth_id})",
            death_id: f"Death of Lê Văn Hùng ({death_id})",
        }
        finals, problems = _follow(console, client, titles)
    lookup_line = _hospital_lookup(target, finals.get(birth_id), problems)
    outcome = _report(console, people, titles, finals, problems, lookup_line=lookup_line)
    # Shown, not judged: a population registry plugged in from elsewhere
    # may enforce no policy of ours.
    show_access_refusal(console, target.registries["population"])
    _show_evidence(console, target, birth_id)
    return outcome


def _hospital_lookup(target: Target, birth: gw.Dossier | None, problems: list[str]) -> str:
    """What a hospital learns when the newborn's family shows her ID number
    instead of an insurance card (cli/coverage.py, same call, same words)."""
    if birth is None or birth.state != gw.DOSSIER_STATE_COMPLETED:
        return ""
    personal_id = birth.birth_result.personal_id_number
    address = target.registries["insurance"]
    try:
        reply = coverage.lookup(address, personal_id)
    except grpc.RpcError as error:
        failure = describe(error)
        if failure.code == grpc.StatusCode.UNIMPLEMENTED:
            # A registry built against v1 as released: CheckCoverage came after.
            return (
                f"A hospital cannot look the child's coverage up: the insurance registry at "
                f"{address} does not offer CheckCoverage (added to the contract after v1)."
            )
        problems.append(
            f"the hospital's coverage lookup at {address} failed: "
            f"{failure.code.name}: {failure.message}"
        )
        return ""
    if not reply.covered:
        problems.append(
            "the hospital found the newborn not covered, though the card was just issued"
        )
    return (
        f"A hospital checks the child's coverage by ID number {personal_id}: "
        f"{coverage.summary(reply)}."
    )


def _show_evidence(console: Console, target: Target, dossier_id: str) -> None:
    """The birth dossier's exchanges, as the servers' message logs recorded them."""
    if target.data_dir is None:
        return
    directory = target.data_dir / MESSAGES
    exchanges = exchanges_of([directory], dossier_id)
    if not exchanges:
        return
    console.print()
    console.print(trail_table(dossier_id, exchanges))
    console.print(
        f"Evidence: lienthong audit verify {escape(str(directory))}\n"
        f"          lienthong audit trail {escape(dossier_id)} "
        f"--data-dir {escape(str(target.data_dir))}",
        highlight=False,
        soft_wrap=True,
    )


def _follow(
    console: Console, client: GatewayClient, titles: dict[str, str]
) -> tuple[dict[str, gw.Dossier], list[str]]:
    """Watch every dossier at once, redrawing the timelines as events arrive."""
    latest: dict[str, gw.Dossier] = {}
    problems: list[str] = []
    events: queue.Queue[tuple[str, gw.Dossier | str | None]] = queue.Queue()
    stop = threading.Event()
    streams: list[WatchStream] = []

    def watch(dossier_id: str) -> None:
        # A watch can break (gateway restarted); resume until the deadline.
        while not stop.is_set():
            stream = client.watch(dossier_id)
            streams.append(stream)
            try:
                for dossier in stream:
                    events.put((dossier_id, dossier))
                    if dossier.state in TERMINAL_STATES:
                        events.put((dossier_id, None))
                        return
            except grpc.RpcError as error:
                failure = describe(error)
                if stop.is_set() or failure.code == grpc.StatusCode.CANCELLED:
                    return
                if not failure.unreachable:
                    events.put(
                        (dossier_id, f"watch failed: {failure.code.name}: {failure.message}")
                    )
                    return
            # Retry pause after a broken stream; returns at once when told to stop.
            stop.wait(0.2)

    def view() -> Group:
        tables = [
            timeline_table(latest[d], title=titles[d])
            if d in latest
            else timeline_table(gw.Dossier(dossier_id=d), title=titles[d])
            for d in titles
        ]
        return Group(*tables)

    threads = [threading.Thread(target=watch, args=(d,), daemon=True) for d in titles]
    for thread in threads:
        thread.start()
    pending = set(titles)
    deadline = time.monotonic() + WATCH_TIMEOUT_SECONDS
    try:
        with Live(view(), console=console, refresh_per_second=8) as live:
            while pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    for d in sorted(pending):
                        state = dossier_state(latest[d].state) if d in latest else "not started"
                        problems.append(
                            f"{titles[d]}: still {state} after {WATCH_TIMEOUT_SECONDS:.0f} s"
                        )
                    break
                try:
                    dossier_id, event = events.get(timeout=min(REDRAW_SECONDS, remaining))
                except queue.Empty:
                    live.update(view())
                    continue
                if isinstance(event, gw.Dossier):
                    latest[dossier_id] = event
                    if event.state == gw.DOSSIER_STATE_NEEDS_SUPPLEMENT:
                        # The demo cannot answer a request for more data.
                        pending.discard(dossier_id)
                elif isinstance(event, str):
                    problems.append(f"{titles[dossier_id]}: {event}")
                    pending.discard(dossier_id)
                else:
                    pending.discard(dossier_id)
                live.update(view())
    finally:
        stop.set()
        for stream in list(streams):
            stream.cancel()
        for thread in threads:
            thread.join(timeout=5)
    return latest, problems


def _report(
    console: Console,
    people: DemoPopulation,
    titles: dict[str, str],
    finals: dict[str, gw.Dossier],
    problems: list[str],
    *,
    lookup_line: str = "",
) -> int:
    console.print()
    console.print("[bold]Results[/]")
    all_completed = True
    for dossier_id, title in titles.items():
        dossier = finals.get(dossier_id)
        state = dossier_state(dossier.state) if dossier is not None else "UNKNOWN"
        took = ""
        if dossier is not None and dossier.HasField("finished_at"):
            millis = dossier.finished_at.ToMilliseconds() - dossier.submitted_at.ToMilliseconds()
            took = f" in {millis:,} ms"
        console.print(f"[bold]{escape(title)}[/]: {state}{took}", highlight=False)
        for line in result_lines(dossier) if dossier is not None else []:
            # soft_wrap: a long line is the terminal's to wrap, never cut into two lines.
            console.print(f"  {escape(line)}", highlight=False, soft_wrap=True)
        if dossier is None or dossier.state != gw.DOSSIER_STATE_COMPLETED:
            all_completed = False
    if lookup_line:
        console.print(f"[bold]{escape(lookup_line)}[/]", highlight=False, soft_wrap=True)
    if all_completed and not problems:
        console.print("[bold green]Both dossiers completed.[/]")
        return 0
    for problem in problems:
        console.print(f"[red]{escape(problem)}[/]", highlight=False)
    raise CliError("the demo did not complete both dossiers (see above)")
