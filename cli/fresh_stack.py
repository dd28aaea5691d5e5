"""A stack of the CLI's own for one command (`demo`, `replay`, `bench`):
started under a spinner, stopped at the end, its directory removed after a
clean run and kept, with every log, after a failure or when the command asks."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape

from cli.errors import EXIT_BAD_INPUT, CliError
from cli.scale import Scale
from cli.stack import Stack, StackError
from cli.trust import warn_insecure
from common import channels


@contextmanager
def fresh_stack(
    console: Console,
    broker: str,
    *,
    verbose_children: bool = True,
    quiet: bool = False,
    gateway_env: Mapping[str, str] | None = None,
    external: Mapping[str, str] | None = None,
    insecure: bool = False,
    env: Mapping[str, str] | None = None,
    scale: Scale | None = None,
) -> Iterator[Stack]:
    """Set `stack.keep_data_dir` inside the block to keep the logs of a run
    that finished but went wrong. Inside the block this process's channels
    go out under the CLI's identity in the stack's PKI (plain text if
    `insecure`). `scale`: the store, gateways and replicas (default: SQLite, one each)."""
    scale = scale or Scale()
    try:
        stack = Stack(
            broker=broker,
            verbose_children=verbose_children,
            gateway_env=gateway_env,
            external=external,
            insecure=insecure,
            env=env,
            **scale.stack_settings(),
        )
    except StackError as exc:
        raise CliError(str(exc), code=EXIT_BAD_INPUT) from None
    if insecure and not quiet:
        warn_insecure(console)
    began = time.monotonic()
    plugged = scale.describe() + "".join(
        f", {name} at {address} plugged in" for name, address in (external or {}).items()
    )
    with console.status(f"Starting Kafka ({broker}), the registries and the gateway{plugged}…"):
        try:
            stack.start()
        except StackError as exc:
            raise CliError("could not start the stack", str(exc).splitlines()) from None
    if not quiet:
        console.print(
            f"Started a stack in {escape(str(stack.data_dir))} in "
            f"{time.monotonic() - began:.1f} s (broker {broker}{plugged}).",
            highlight=False,
        )
    clean = False
    try:
        with channels.identity(stack.tls()):
            yield stack
        clean = True
    finally:
        stack.keep_data_dir = stack.keep_data_dir or not clean
        with console.status("Stopping the stack…"):
            stack.stop()
        if stack.keep_data_dir:
            console.print(f"Logs kept in {escape(str(stack.data_dir))}", highlight=False)
