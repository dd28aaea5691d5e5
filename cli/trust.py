"""The CLI's side of the trust layer: `--insecure` and its loud warning, and
the identity a command's own calls go out under."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc
from rich.console import Console
from rich.markup import escape

from cli.rpc_errors import describe
from cli.state import client_tls, default_data_dir, read_state
from common import channels
from lienthong.population.v1 import population_pb2, population_pb2_grpc

INSECURE_HELP = (
    "plain-text gRPC: no certificates, no access policy (a developer's explicit opt-out, "
    "e.g. to poke a registry with grpcurl -plaintext)"
)


def add_insecure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--insecure", action="store_true", help=INSECURE_HELP)


def warn_insecure(console: Console) -> None:
    """One loud line: nobody should run insecure without noticing."""
    console.print(
        "[bold white on red] INSECURE [/] [bold red]plain-text gRPC: callers are not "
        "authenticated and the access policy is not enforced (--insecure).[/]",
        highlight=False,
    )


@contextmanager
def as_cli_of_running_stack(
    console: Console, data_dir: Path | None, *, insecure: bool
) -> Iterator[None]:
    """Within the block, the command's channels go to the running stack under
    the CLI's identity from its PKI (stack.json names it), or in plain text
    when asked or when the stack is insecure."""
    state = read_state(data_dir or default_data_dir())
    tls = client_tls(state, insecure=insecure)
    if tls is None and (insecure or (state is not None and state.insecure)):
        warn_insecure(console)
    with channels.identity(tls):
        yield


def identity_beside(tls: channels.TlsSettings, identity: str) -> channels.TlsSettings | None:
    """Another identity of the same PKI directory as `tls` (None if not issued)."""
    cert = tls.cert.with_name(f"{identity}.crt")
    key = tls.key.with_name(f"{identity}.key")
    if not (cert.exists() and key.exists()):
        return None
    return channels.TlsSettings(tls.ca, cert, key)


def show_access_refusal(console: Console, population: str) -> bool:
    """The access policy at work, for the demo: the hospital's valid
    certificate asking the population registry to register a birth. The
    policy refuses it before the request is even read (the request is
    empty, so a registry without the policy would refuse it too, for
    another reason, and change nothing). False if it was not refused."""
    own = channels.TlsSettings.from_env()
    hospital = identity_beside(own, "hospital") if own is not None else None
    if hospital is None:
        console.print("Access policy: off (plain text, --insecure).", highlight=False)
        return True
    with channels.sync_channel(population, tls=hospital) as channel:
        stub = population_pb2_grpc.PopulationRegistryServiceStub(channel)
        try:
            stub.RegisterBirth(population_pb2.RegisterBirthRequest(), timeout=10)
        except grpc.RpcError as error:
            failure = describe(error)
            if failure.code == grpc.StatusCode.PERMISSION_DENIED:
                console.print(
                    "Access policy: the hospital's certificate asking population to register "
                    f"a birth → PERMISSION_DENIED: {escape(failure.message)}",
                    highlight=False,
                )
                return True
            answer = f"{failure.code.name}: {failure.message}"
        else:
            answer = "OK"
    console.print(
        f"[bold red]Access policy: the hospital asking population to register a birth was "
        f"not refused by the policy[/] ({escape(answer)})",
        highlight=False,
    )
    return False
