"""`lienthong audit verify DIR...` and `lienthong audit trail DOSSIER_ID`: the
message logs (common/message_log.py) checked, and one dossier's exchanges
read back from them.

verify exits 0 when every log's chain and every checkpoint's signature
verify, 1 when any record is altered, missing or reordered or any signature
fails (each named as FILE:LINE). Torn lines from a crash, records not yet
under a checkpoint, and signatures that prove integrity but not origin are
printed as notes and do not fail it.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cli.errors import EXIT_BAD_INPUT, CliError
from cli.state import default_data_dir, find_running_stack

if TYPE_CHECKING:
    from common.message_log_verify import Exchange, LogReport

# DATA_DIR/messages (cli.stack.MESSAGE_LOG_DIR) and the logs' suffix
# (common.message_log.SUFFIX), not imported: every `lienthong` command
# imports this module for its parser and should not pay for theirs.
MESSAGES = "messages"
SUFFIX = ".jsonl"


def add_audit_parser(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    common: argparse.ArgumentParser,
) -> None:
    audit = commands.add_parser(
        "audit",
        help="verify the servers' message logs; show one dossier's exchanges",
    ).add_subparsers(dest="audit_command", required=True, metavar="SUBCOMMAND")
    verify = audit.add_parser(
        "verify",
        parents=[common],
        help="check every log's hash chain and signed checkpoints",
        description="Check each message log (*.jsonl) in each DIR: every record's hash, the "
        "chain from one record to the next, the sequence numbers, and every checkpoint's "
        "signature (against the certificate the CA in DATA_DIR/pki issued, when there is "
        "one). Names each altered, missing or reordered record as FILE:LINE. Exit 0 when "
        "all verify, 1 otherwise.",
    )
    verify.add_argument(
        "directories",
        nargs="+",
        type=Path,
        metavar="DIR",
        help="a message log directory (DATA_DIR/messages), or a data directory holding one",
    )
    verify.add_argument(
        "--pki",
        type=Path,
        default=None,
        metavar="DIR",
        help="where ca.crt is (default: DIR/../pki, the stack's DATA_DIR/pki)",
    )
    trail = audit.add_parser(
        "trail",
        parents=[common],
        help="every exchange of one dossier across the agencies, in time order",
        description="Read every message log of the stack and list the calls of one dossier "
        "in time order: when, who called whom (caller identity → server), the service "
        "and method, the status and how long it took.",
    )
    trail.add_argument("dossier_id", metavar="DOSSIER_ID")
    trail.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="the stack's data directory (default: the running stack's, from "
        "$LIENTHONG_DATA_DIR or ./data/stack.json, else that directory itself)",
    )
    trail.add_argument("--json", action="store_true", help="one JSON object a line per exchange")


def run_from_args(console: Console, args: argparse.Namespace) -> int:
    if args.audit_command == "verify":
        return run_verify(console, args.directories, pki=args.pki)
    return run_trail(console, args.dossier_id, data_dir=args.data_dir, as_json=args.json)


def log_files(directory: Path) -> list[Path]:
    return sorted(directory.glob(f"*{SUFFIX}"))


def _log_directory(path: Path) -> Path:
    """DIR itself when it holds logs, else DIR/messages when that does."""
    if not log_files(path) and log_files(path / MESSAGES):
        return path / MESSAGES
    return path


def run_verify(console: Console, directories: Sequence[Path], *, pki: Path | None) -> int:
    for directory in directories:
        if not directory.is_dir():
            raise CliError(f"{directory} is not a directory", code=EXIT_BAD_INPUT)
    chosen = [_log_directory(d) for d in directories]
    empty = [d for d in chosen if not log_files(d)]
    if empty:
        raise CliError(
            f"no message log (*.jsonl) in {', '.join(str(d) for d in empty)}",
            ["a stack writes them to DATA_DIR/messages (LIENTHONG_MESSAGE_LOG_DIR)"],
        )
    # Here, not at the top: every `lienthong` command imports this module's parser.
    from common.message_log_verify import verify_directories  # noqa: PLC0415

    reports = verify_directories(chosen, pki=pki)
    for report in reports:
        _print_report(console, report)
    failed = [r for r in reports if not r.ok]
    problems = sum(len(r.problems) for r in failed)
    if failed:
        console.print(
            f"[bold red]{problems} problem(s) in {len(failed)} of {len(reports)} log(s).[/]"
        )
        return 1
    calls = sum(r.calls for r in reports)
    console.print(f"[bold green]All {len(reports)} logs verify[/] ({calls:,} calls).")
    return 0


def _print_report(console: Console, report: LogReport) -> None:
    signers = ", ".join(sorted(report.signers)) or "nobody"
    summary = f"{report.calls:,} calls, {report.checkpoints} checkpoint(s), signed by {signers}"
    if report.ok:
        console.print(f"[green]✓[/] {escape(str(report.path))}: {escape(summary)}", highlight=False)
    else:
        console.print(f"[red]✗[/] {escape(str(report.path))}: {escape(summary)}", highlight=False)
        for problem in report.problems:
            console.print(f"  [red]{escape(str(problem))}[/]", highlight=False, soft_wrap=True)
    for note in report.notes:
        console.print(f"  [dim]note: {escape(note)}[/]", highlight=False, soft_wrap=True)


def trail_directory(data_dir: Path | None) -> Path:
    """The message logs of the stack the user means: --data-dir's, else the
    running stack's (stack.json), else the default data directory's."""
    if data_dir is not None:
        return _log_directory(data_dir)
    running = find_running_stack(default_data_dir())
    if running is not None and running.data_dir:
        return Path(running.data_dir) / MESSAGES
    return _log_directory(default_data_dir())


def run_trail(console: Console, dossier_id: str, *, data_dir: Path | None, as_json: bool) -> int:
    directory = trail_directory(data_dir)
    if not log_files(directory):
        raise CliError(
            f"no message log (*.jsonl) in {directory}",
            ["pass the stack's data directory with --data-dir"],
        )
    from common.message_log_verify import exchanges_of  # noqa: PLC0415

    exchanges = exchanges_of([directory], dossier_id)
    if not exchanges:
        raise CliError(f"no exchange of dossier {dossier_id[:64]!r} in the logs in {directory}")
    if as_json:
        for exchange in exchanges:
            # One object a line (JSON Lines), for scripts: no markup, no wrapping.
            console.print(
                json.dumps(_as_dict(exchange), ensure_ascii=False),
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
        return 0
    console.print(trail_table(dossier_id, exchanges))
    return 0


def _as_dict(exchange: Exchange) -> dict[str, object]:
    return {
        "at": exchange.at,
        "caller": exchange.caller,
        "server": exchange.server,
        "service": exchange.service,
        "method": exchange.method,
        "code": exchange.code,
        "reason": exchange.reason,
        "duration_ms": exchange.duration_ms,
        "log": f"{exchange.path}:{exchange.line}",
    }


def trail_table(dossier_id: str, exchanges: Sequence[Exchange]) -> Table:
    day = exchanges[0].at[:10] if exchanges else ""
    table = Table(title=f"Exchanges of dossier {dossier_id} ({day})", title_justify="left")
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("caller → server (service)", no_wrap=True)
    table.add_column("method", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("ms", justify="right", no_wrap=True)
    for exchange in exchanges:
        service = exchange.service.rpartition(".")[2]
        status = exchange.code + (f" {exchange.reason}" if exchange.reason else "")
        style = "green" if exchange.code == "OK" else "red"
        table.add_row(
            # 2026-11-30T02:10:09.248369+00:00 → 02:10:09.248
            exchange.at[11:23],
            escape(f"{exchange.caller} → {exchange.server} ({service})"),
            escape(exchange.method),
            f"[{style}]{escape(status)}[/]",
            f"{exchange.duration_ms:.1f}",
        )
    return table
