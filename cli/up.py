"""`lienthong up`: run the whole stack on the default ports until Ctrl-C or SIGTERM."""

from __future__ import annotations

import dataclasses
import os
import threading
from collections.abc import Mapping
from pathlib import Path

import grpc
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cli.demo_data import EXAMPLE
from cli.errors import EXIT_BAD_INPUT, CliError
from cli.rpc_errors import describe
from cli.scale import Scale
from cli.seeding import seed
from cli.stack import GATEWAY, Stack, StackError
from cli.state import StackState, remove_state, write_state
from cli.supervisor import Holds, Supervisor
from cli.trust import warn_insecure
from cli.web.launch import WebConsole, console_port_taken, print_address, start_console
from common import channels
from common.agencies import agency
from common.database_url import redacted
from common.processes import port_in_use
from lienthong.gateway.v1 import gateway_pb2

# The supervisor's name for the stack's own PostgreSQL server.
DATABASE = "postgres"
# How often `up` checks that its children are still alive.
SUPERVISE_INTERVAL_SECONDS = 1.0


def run_up(
    console: Console,
    *,
    broker: str,
    data_dir: Path,
    gateway: bool,
    seed_demo: bool,
    external: Mapping[str, str] | None = None,
    insecure: bool = False,
    scale: Scale | None = None,
    console_port: int | None = None,
) -> int:
    """`console_port`: serve the web console there (0: a free port; None: none)."""
    scale = scale or Scale()
    try:
        stack = Stack(
            broker=broker if gateway else None,
            data_dir=data_dir,
            fixed_ports=True,
            external=external,
            insecure=insecure,
            **scale.stack_settings(),
        )
    except StackError as exc:
        raise CliError(str(exc), code=EXIT_BAD_INPUT) from None
    if console_port and gateway and port_in_use(console_port):
        # Said before a minute of starting processes, not after.
        raise CliError(console_port_taken(console_port), code=EXIT_BAD_INPUT)
    if insecure:
        warn_insecure(console)
    what = (
        f"Kafka ({broker}), the registries and the gateway" if gateway else "the registries"
    ) + scale.describe()
    try:
        with console.status(f"Starting {what}…"):
            stack.start()
    except StackError as exc:
        raise CliError("could not start the stack", str(exc).splitlines()) from None
    web: WebConsole | None = None
    holds = Holds()
    try:
        if console_port is not None and gateway:
            web = start_console(
                console, stack, mode="up", port=console_port, holds=holds, fall_back=False
            )
        state = StackState(
            gateway=stack.addresses.get(GATEWAY, ""),
            agencies=stack.agency_addresses,
            bootstrap_servers=stack.bootstrap_servers or "",
            broker=broker if gateway else "",
            data_dir=str(stack.data_dir),
            pid=os.getpid(),
            processes={n: p for n in stack.components if (p := stack.pid(n)) is not None},
            metrics=stack.metrics_addresses,
            pki_dir="" if insecure else str(stack.pki_dir),
            insecure=insecure,
            store=stack.store.describe(),
            gateways={n: stack.address(n) for n in stack.gateway_names},
            console=web.address if web is not None else "",
        )
        state_file = write_state(stack.data_dir, state)
        try:
            with channels.identity(stack.tls()):
                if seed_demo:
                    _seed_example(console, state)
                print_listening(console, stack, state_file)
                if web is not None:
                    print_address(console, web.address)
                console.print("Press Ctrl-C to stop.", style="bold")
                return _supervise(console, stack, state, holds)
        except KeyboardInterrupt:
            # Ctrl-C or SIGTERM is how `up` is meant to end once it serves
            # (whoever read "Press Ctrl-C" may signal at once): a clean stop, exit 0.
            return 0
    finally:
        remove_state(stack.data_dir)
        with console.status("Stopping…"):
            if web is not None:
                web.stop()
            stack.stop()
        console.print("Stopped.")


def _seed_example(console: Console, state: StackState) -> None:
    try:
        counts = seed(state.agencies, EXAMPLE)
    except grpc.RpcError as error:
        failure = describe(error)
        raise CliError(f"seeding the example population failed: {failure.message}") from None
    console.print(
        f"Seeded the example population (new citizens: {counts.citizens}); "
        "scenarios/examples/*.json refer to it.",
        highlight=False,
    )


class _StackAndDatabase:
    """What `up` watches: its children and, with `--store postgres`, its own
    PostgreSQL, started again on its port and data when it dies (the
    processes' pools reconnect on their own; meanwhile their calls answer
    UNAVAILABLE, which callers retry). The broker is not here: see
    `_supervise`."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    def component_names(self) -> list[str]:
        names = list(self.stack.component_names())
        return [DATABASE, *names] if self.stack.store.server is not None else names

    def is_running(self, name: str) -> bool:
        server = self.stack.store.server
        if name == DATABASE and server is not None:
            return server.is_running()
        return self.stack.is_running(name)

    def start_component(self, name: str) -> None:
        if name == DATABASE:
            self.stack.start_database_again()
        else:
            self.stack.start_component(name)


def _supervise(console: Console, stack: Stack, state: StackState, holds: Holds) -> int:
    """Until Ctrl-C/SIGTERM (raised as KeyboardInterrupt): a registry, a gateway
    or our PostgreSQL that dies is started again with backoff (cli/supervisor.py);
    one the console's switches took down is held, not restarted. The broker is
    not: the embedded one keeps its topics in memory, so a restart would lose
    every event in flight; its death stops the stack (exit 1)."""
    ticker = threading.Event()
    supervisor = Supervisor(
        _StackAndDatabase(stack),
        say=lambda line: console.print(f"[yellow]{escape(line)}[/]", highlight=False),
        holds=holds,
    )
    while True:
        if supervisor.check():
            # The state file names the children's process ids: keep it true.
            pids = {n: p for n in stack.components if (p := stack.pid(n)) is not None}
            state = dataclasses.replace(state, processes=pids)
            write_state(stack.data_dir, state)
        if stack.broker is not None and not stack.broker.is_alive():
            console.print("[red]the Kafka broker stopped unexpectedly[/]; stopping the stack.")
            return 1
        ticker.wait(SUPERVISE_INTERVAL_SECONDS)


def _grpcurl_trust(stack: Stack) -> str:
    """grpcurl's part: the CLI's identity (granted the reads and the
    gateway's API by the access policy), or -plaintext on an insecure stack."""
    tls = stack.tls()
    if tls is None:
        return "-plaintext"
    return f"-cacert {tls.ca} -cert {tls.cert} -key {tls.key}"


def print_listening(console: Console, stack: Stack, state_file: Path) -> None:
    table = Table(title="lienthong is up", title_justify="left")
    table.add_column("component")
    table.add_column("listens on")
    table.add_column("metrics")
    table.add_column("log")
    if stack.store.server is not None:
        url = redacted(stack.store.server.url("postgres"))
        table.add_row("postgres", url, "", str(stack.store.log_file))
    if stack.bootstrap_servers:
        broker_log = stack.broker.log_file if stack.broker is not None else None
        table.add_row("kafka", stack.bootstrap_servers, "", str(broker_log or ""))
    for name, component in stack.components.items():
        table.add_row(name, component.address, component.metrics_address, str(component.log_file))
    for name, address in stack.external.items():
        table.add_row(name, address, "", "(plugged in with --agency: not ours)")
    console.print(table)
    console.print(f"Addresses written to {escape(str(state_file))}", highlight=False)
    population = stack.address("population")
    gateway_service = gateway_pb2.DESCRIPTOR.services_by_name["GatewayService"].full_name
    population_service = agency("population").service
    grpcurl = f"grpcurl {_grpcurl_trust(stack)}"
    lines = [
        f"{grpcurl} {population} list",
        f'{grpcurl} -d \'{{"service": ""}}\' {population} grpc.health.v1.Health/Check',
        f'{grpcurl} -d \'{{"personal_id_number": "{EXAMPLE.birth.mother_id_number}"}}\' '
        f"{population} {population_service}/GetCitizen",
    ]
    if GATEWAY in stack.components:
        gateway = stack.gateway_address
        lines += [
            f"{grpcurl} {gateway} list",
            f"{grpcurl} {gateway} describe {gateway_service}",
            f'{grpcurl} -d \'{{"dossier_id": "DOSSIER_ID"}}\' {gateway} '
            f"{gateway_service}/GetDossier",
            "lienthong seed-demo",
            "lienthong submit birth scenarios/examples/birth.json",
            "lienthong status DOSSIER_ID --watch",
        ]
    population_metrics = stack.metrics_addresses.get("population")
    if population_metrics is not None:
        # Prometheus text: every call counted by method, caller and status.
        lines.append(f"curl -s http://{population_metrics}/metrics | grep lienthong_rpc_calls")
    console.print("Try:", style="bold")
    for line in lines:
        console.print(f"  {escape(line)}", highlight=False, soft_wrap=True)
