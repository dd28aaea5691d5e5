"""`lienthong conform CONTRACT --target HOST:PORT`: the conformance kit
(conformance/) run against any server of a contract, ours or another team's.

Prints a table of the rules with pass/fail and the evidence, writes JUnit XML
with --junit, exits 0 when every rule passed, 1 when one failed or nobody
answered, 2 on a bad command line (a -k that selects nothing)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cli.errors import EXIT_BAD_INPUT, CliError
from conformance import junit
from conformance.contracts import CONTRACTS
from conformance.kit import Rule
from conformance.runner import Unreachable, Verdict, run


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
) -> int:
    rules = select(contract, patterns)
    try:
        verdicts = asyncio.run(run(target, rules))
    except Unreachable as unreachable:
        raise CliError(
            str(unreachable), [f"is a {contract} server listening there? (--target HOST:PORT)"]
        ) from None
    console.print(verdict_table(contract, target, verdicts))
    if junit_file is not None:
        junit.write(junit_file, contract, target, verdicts)
        console.print(f"JUnit XML: {junit_file}")
    return 0 if all(v.passed for v in verdicts) else 1
