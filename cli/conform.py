"""`lienthong conform CONTRACT --target HOST:PORT`: the conformance kit
(conformance/) run against any server of a contract, ours or another team's.

Prints a table of the rules with pass/fail and the evidence, writes JUnit XML
with --junit, exits 0 when every rule passed, 1 when one failed or nobody
answered, 2 on a bad command line (a -k that selects nothing)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cli.errors import EXIT_BAD_INPUT, CliError
from cli.state import client_tls, default_data_dir, read_state
from cli.trust import add_insecure, warn_insecure
from common.channels import TlsMisconfigured, TlsSettings
from common.config import DEFAULT_PORTS
from conformance import junit
from conformance.contracts import CONTRACTS
from conformance.kit import Rule
from conformance.runner import Unreachable, Verdict, run


def add_conform_parser(commands: Any, common: argparse.ArgumentParser) -> None:
    """`lienthong conform`'s arguments, on the CLI's subcommands."""
    conform = commands.add_parser(
        "conform",
        parents=[common],
        help="run a contract's conformance rules against any server of it",
        description="Run the conformance kit (conformance/RULES.md) against a server of the "
        "contract: a table of rules with pass/fail and evidence; exit 1 if any failed.",
    )
    conform.add_argument("contract", choices=list(CONTRACTS))
    conform.add_argument(
        "--target",
        metavar="HOST:PORT",
        default=None,
        help="the server to judge (default: the port `lienthong up` gives the contract)",
    )
    conform.add_argument("--junit", type=Path, default=None, metavar="FILE", help="write JUnit XML")
    conform.add_argument(
        "-k",
        dest="patterns",
        action="append",
        default=[],
        metavar="RULE",
        help="only the rules whose name contains RULE (repeatable)",
    )
    conform.add_argument("--list", action="store_true", help="list the rules and exit")
    # The kit calls every method, mutating ones included: its identity
    # (`conformance`) is a test identity the access policy grants everything.
    for option, what in (("--ca", "CA certificate"), ("--cert", "certificate"), ("--key", "key")):
        conform.add_argument(
            option,
            type=Path,
            default=None,
            metavar="FILE",
            help=f"the kit's {what} (PEM); default: the running stack's `conformance` "
            "identity (DATA_DIR/pki, from stack.json)",
        )
    conform.add_argument("--data-dir", type=Path, default=None, help=argparse.SUPPRESS)
    add_insecure(conform)


def kit_tls(args: argparse.Namespace) -> TlsSettings | None:
    """--ca/--cert/--key (all three), else the running stack's `conformance`
    identity; None (plain text) with --insecure."""
    given = [args.ca, args.cert, args.key]
    if args.insecure:
        return None
    if any(given):
        if not all(given):
            raise CliError("--ca, --cert and --key go together", code=EXIT_BAD_INPUT)
        return TlsSettings(args.ca, args.cert, args.key)
    state = read_state(args.data_dir or default_data_dir())
    return client_tls(state, "conformance")


def run_from_args(console: Console, args: argparse.Namespace) -> int:
    if args.list:
        return list_rules(console, args.contract)
    tls = kit_tls(args)
    if tls is None:
        warn_insecure(console)
    return run_conform(
        console,
        contract=args.contract,
        target=args.target or f"127.0.0.1:{DEFAULT_PORTS[args.contract]}",
        junit_file=args.junit,
        patterns=args.patterns,
        tls=tls,
    )


def list_rules(console: Console, contract: str) -> int:
    table = Table(title=f"{contract}: {len(CONTRACTS[contract].rules)} rules", title_justify="left")
    table.add_column("rule", no_wrap=True)
    table.add_column("what the server must do")
    for rule in CONTRACTS[contract].rules:
        table.add_row(rule.name, escape(rule.description))
    console.print(table)
    return 0


def select(contract: str, patterns: list[str]) -> list[Rule]:
    chosen = CONTRACTS[contract].select(patterns)
    if not chosen:
        raise CliError(
            f"no rule of {contract} has {' or '.join(map(repr, patterns))} in its name",
            [f"`lienthong conform {contract} --list` lists them"],
            code=EXIT_BAD_INPUT,
        )
    return chosen


def verdict_table(contract: str, target: str, verdicts: list[Verdict]) -> Table:
    failed = sum(not v.passed for v in verdicts)
    table = Table(
        title=f"{contract} at {target}: {len(verdicts) - failed} passed, {failed} failed",
        title_justify="left",
    )
    table.add_column("rule", no_wrap=True)
    table.add_column("result", no_wrap=True)
    table.add_column("evidence")
    for verdict in verdicts:
        result = "[green]pass[/]" if verdict.passed else "[bold red]FAIL[/]"
        table.add_row(verdict.rule.name, result, escape(verdict.evidence))
    return table


def run_conform(
    console: Console,
    *,
    contract: str,
    target: str,
    junit_file: Path | None,
    patterns: list[str],
    tls: TlsSettings | None = None,
) -> int:
    rules = select(contract, patterns)
    try:
        credentials = tls.channel_credentials() if tls is not None else None
    except TlsMisconfigured as exc:
        raise CliError(str(exc), ["--ca, --cert and --key name PEM files"]) from None
    try:
        verdicts = asyncio.run(run(target, rules, credentials=credentials))
    except Unreachable as unreachable:
        raise CliError(
            str(unreachable), [f"is a {contract} server listening there? (--target HOST:PORT)"]
        ) from None
    console.print(verdict_table(contract, target, verdicts))
    if junit_file is not None:
        junit.write(junit_file, contract, target, verdicts)
        console.print(f"JUnit XML: {junit_file}")
    return 0 if all(v.passed for v in verdicts) else 1
