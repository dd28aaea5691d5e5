"""The CLI's side of the trust layer: `--insecure` and its loud warning, and
the identity a command's own calls go out under."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console

from cli.state import client_tls, default_data_dir, read_state
from common import channels

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
