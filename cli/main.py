"""The `lienthong` command: up, demo, seed-demo, submit, status, coverage, replay, bench, fuzz,
conform, events, audit.

Exit codes: 0 done, 1 failed (a dossier rejected, a stack that would not
start, nobody answering), 2 bad input (command line or declaration file),
130 interrupted. Errors are sentences on stderr, never tracebacks.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import grpc
from rich.markup import escape

from cli.audit import add_audit_parser
from cli.conform import add_conform_parser
from cli.errors import EXIT_BAD_INPUT, CliError
from cli.render import make_console
from cli.rpc_errors import describe
from cli.scale import Scale
from cli.state import default_data_dir, gateway_address
from cli.trust import add_insecure, as_cli_of_running_stack
from common.agencies import AGENCY_NAMES, parse_agency_addresses
from common.config import DEFAULT_PORTS
from common.logging import logging_configured

BROKERS = ("embedded", "apache", "external", "docker")
# Kinds of fault `replay --without` can leave out: Scenario has a field of each, plural.
WITHOUT_CHOICES = ("gateway_kill", "agency_kill", "broker_restart", "database_restart", "outage")
EXIT_INTERRUPTED = 130
# The web console's (cli/web/); `up`, `demo` and `replay` serve it.
DEFAULT_CONSOLE_PORT = 8088


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--verbose", action="store_true", help="show the CLI's own log lines")

    parser = argparse.ArgumentParser(
        prog="lienthong",
        description="Simulator of Vietnam's interlinked birth and death procedures (liên thông).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = commands.add_parser(
        "up",
        parents=[common],
        help="run Kafka, the three registries and the gateway until Ctrl-C",
        description="Run the stack on the default ports ("
        + ", ".join(f"{name} {port}" for name, port in DEFAULT_PORTS.items())
        + ") until Ctrl-C or SIGTERM.",
    )
    _add_broker(up)
    _add_store(up)
    _add_scale(up)
    _add_agency(up)
    add_insecure(up)
    up.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="databases, logs and stack.json (default: $LIENTHONG_DATA_DIR or ./data)",
    )
    up.add_argument(
        "--seed-demo",
        action="store_true",
        help="load the example population that scenarios/examples/*.json refer to",
    )
    _add_console(up)
    up.add_argument(
        "--no-gateway",
        action="store_true",
        help="run the three registries only (no Kafka, no gateway)",
    )

    down = commands.add_parser(
        "down",
        parents=[common],
        help="stop the stack a `lienthong up` runs (from another terminal or a script)",
        description="Send the `lienthong up` named in DATA_DIR/stack.json a SIGTERM (as "
        "Ctrl-C would) and wait until it has stopped every component. A stale stack.json "
        "is removed. Exit 0 once nothing runs, 1 if it did not stop in time.",
    )
    down.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="where stack.json is (default: $LIENTHONG_DATA_DIR or ./data)",
    )
    down.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for the stack to stop (default: 60)",
    )

    demo = commands.add_parser(
        "demo",
        parents=[common],
        help="one birth and one death declaration through the whole stack",
        description="Use a running stack if one answers, else start one in a temporary "
        "directory; seed a small population, submit a birth and a death declaration "
        "and follow both dossiers to the end.",
    )
    _add_broker(demo)
    _add_store(demo)
    _add_scale(demo)
    _add_agency(demo)
    add_insecure(demo)
    demo.add_argument("--data-dir", type=Path, default=None, help="where to look for stack.json")
    demo.add_argument(
        "--new-stack",
        action="store_true",
        help="start a fresh stack even if one is running",
    )
    _add_console(demo)
    demo.add_argument(
        "--stay",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="keep a fresh stack and its console up at the end until Ctrl-C (default: when "
        "the console is on and stdout is a terminal)",
    )

    seed_demo = commands.add_parser(
        "seed-demo",
        parents=[common],
        help="load the example population into a running stack",
        description="Seed the people, hospital records and insurance record that "
        "scenarios/examples/birth.json and death.json refer to. Safe to repeat.",
    )
    seed_demo.add_argument("--data-dir", type=Path, default=None, help="where stack.json is")
    add_insecure(seed_demo)

    submit = commands.add_parser(
        "submit",
        parents=[common],
        help="submit a declaration file (protobuf JSON) to the gateway",
        description="Submit a BirthDeclaration or DeathDeclaration written in the protobuf "
        "JSON mapping; prints the dossier id.",
    )
    submit.add_argument("kind", choices=("birth", "death"))
    submit.add_argument("file", type=Path, metavar="FILE.json")
    _add_gateway(submit)
    submit.add_argument(
        "--key",
        default=None,
        help="idempotency key (default: derived from the file's content, so a repeat "
        "returns the same dossier)",
    )
    submit.add_argument("--json", action="store_true", help="print the answer as JSON")

    status = commands.add_parser(
        "status",
        parents=[common],
        help="show a dossier's state, timeline and result",
    )
    status.add_argument("dossier_id", metavar="DOSSIER_ID")
    _add_gateway(status)
    status.add_argument("--watch", action="store_true", help="follow it until it ends")
    status.add_argument("--json", action="store_true", help="print the dossier as JSON")

    coverage = commands.add_parser(
        "coverage",
        parents=[common],
        help="look up a person's health insurance coverage by ID number, as a hospital does",
        description="Ask the insurance registry (CheckCoverage) whether the person holds a "
        "health insurance card valid on a day, as a hospital does when a patient shows the "
        "chip-based citizen ID card: covered or why not, the card code, group, benefit level, "
        "initial facility and validity. Exit 0 when it answered, covered or not.",
    )
    coverage.add_argument("personal_id", metavar="PERSONAL_ID", help="the 12-digit number")
    coverage.add_argument(
        "--on",
        type=_day,
        default=None,
        metavar="YYYY-MM-DD",
        help="the day of care (default: today)",
    )
    coverage.add_argument(
        "--target",
        metavar="HOST:PORT",
        default=None,
        help="the insurance registry (default: $LIENTHONG_INSURANCE_ADDRESS, the running "
        "stack's from ./data/stack.json, else 127.0.0.1:50052)",
    )
    coverage.add_argument("--data-dir", type=Path, default=None, help="where stack.json is")
    coverage.add_argument("--json", action="store_true", help="print the answer as JSON")
    add_insecure(coverage)

    events = commands.add_parser(
        "events",
        help="the gateway's Kafka events (see proto/asyncapi.yaml)",
    ).add_subparsers(dest="events_command", required=True, metavar="SUBCOMMAND")
    tail = events.add_parser(
        "tail",
        parents=[common],
        help="print a topic's events as they arrive, decoded",
        description="One line per event: its time, key (the dossier id), CloudEvents type "
        "and the protobuf value as compact JSON, personal ID numbers masked. Reads every "
        "partition without a consumer group, so it disturbs no consumer.",
    )
    tail.add_argument(
        "topic",
        metavar="TOPIC",
        help="dossier-settled, dossiers, step-commands.<agency>, step-outcomes, deadletter... "
        "(under $LIENTHONG_TOPIC_PREFIX, default lienthong), or a whole topic name",
    )
    tail.add_argument(
        "--bootstrap",
        metavar="HOST:PORT",
        default=None,
        help="the broker (default: $KAFKA_BOOTSTRAP_SERVERS, else the running stack's, "
        "from ./data/stack.json)",
    )
    tail.add_argument("--data-dir", type=Path, default=None, help="where stack.json is")
    tail.add_argument(
        "--from-beginning", action="store_true", help="start at the oldest event, not the next"
    )
    tail.add_argument(
        "--limit", type=_at_least_one, default=None, metavar="N", help="stop after N events"
    )

    replay = commands.add_parser(
        "replay",
        parents=[common],
        help="replay a scenario's synthetic citizens through a fresh stack; write a report",
        description="Start a fresh stack, bulk-seed the scenario's citizens, send its "
        "declarations on schedule (an open model), wait until every dossier ends, audit "
        "the registries and write report.json, report.md and plots.",
    )
    replay.add_argument("scenario", type=Path, metavar="SCENARIO.yaml")
    replay.add_argument(
        "--rate", type=float, default=None, help="scale the arrival so its peak is N dossiers/s"
    )
    replay.add_argument(
        "--duration", type=float, default=None, help="stretch or shrink the arrival to S seconds"
    )
    replay.add_argument(
        "--gateways",
        type=_at_least_one,
        default=None,
        metavar="N",
        help="run N gateway processes sharing one saga store (default: the scenario's, else 1)",
    )
    _add_replicas(replay)
    _add_store(replay)
    replay.add_argument(
        "--without",
        action="append",
        default=[],
        choices=WITHOUT_CHOICES,
        metavar="FAULT",
        help="leave out the scenario's faults of this kind (repeatable): "
        + ", ".join(WITHOUT_CHOICES)
        + "; e.g. --without broker_restart on the embedded broker",
    )
    _add_broker(replay)
    _add_agency(replay)
    add_insecure(replay)
    _add_console(replay)
    replay.add_argument(
        "--keep-stack",
        action="store_true",
        help="keep the stack's directory (every process's log, the databases) after the "
        "run, to look into it; it is kept anyway when the audit finds a problem",
    )
    replay.add_argument(
        "--report",
        type=Path,
        default=None,
        metavar="DIR",
        help="where to write the report (default: out/<scenario name>)",
    )

    bench = commands.add_parser(
        "bench",
        parents=[common],
        help="measure a gRPC baseline and the highest sustained dossier rate",
        description="Measure (a) a plain gRPC unary echo on this machine and (b) the highest "
        "constant dossier rate whose p99 end-to-end latency stays under 2 s with nothing "
        "lost; print both and the ratio.",
    )
    _add_broker(bench)
    _add_store(bench)
    _add_scale(bench)
    bench.add_argument(
        "--first-rate",
        type=float,
        default=20.0,
        metavar="R",
        help="the first trial's rate in dossiers/s (default 20); start higher on a bigger "
        "machine or scale to save trials",
    )
    bench.add_argument(
        "--trial-seconds",
        type=float,
        default=30.0,
        help="how long each rate is held (default 30)",
    )
    bench.add_argument(
        "--report", type=Path, default=None, metavar="DIR", help="also write bench.json here"
    )
    bench.add_argument(
        "--trust",
        choices=("both", "on", "off"),
        default="both",
        help="measure with the trust layer (mutual TLS, access policy, message log) on, off, "
        "or both in one run (default both: its cost, side by side)",
    )
    fuzz = commands.add_parser(
        "fuzz",
        parents=[common],
        help="send arbitrary and malformed requests to every RPC; print status codes per RPC",
        description="Start the three registries and the gateway's API (embedded Kafka, fresh "
        "SQLite files), send each of the 24 RPCs arbitrary and malformed requests built from "
        "the protobuf descriptors (raw bytes, truncated encodings, huge fields...) and print "
        "a table of the status codes they got. Exit 1 if any answer was UNKNOWN, INTERNAL or "
        "RESOURCE_EXHAUSTED, a message too long, a refused call wrote rows or a service "
        "stopped SERVING.",
    )
    fuzz.add_argument(
        "--inputs", type=int, default=10_000, metavar="N", help="inputs per RPC (default 10000)"
    )
    fuzz.add_argument(
        "--rpc", default=None, metavar="TEXT", help="only the RPCs whose full name contains TEXT"
    )
    fuzz.add_argument("--seed", type=int, default=None, help="a seed, to repeat a run's inputs")
    fuzz.add_argument(
        "--keep", type=Path, default=None, metavar="DIR", help="keep the databases and log in DIR"
    )
    add_conform_parser(commands, common)
    add_audit_parser(commands, common)
    return parser


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _day(text: str) -> dt.date:
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        raise argparse.ArgumentTypeError(f"expected a date written YYYY-MM-DD, got {text[:40]!r}")
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a real date") from None


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a port number, got {text[:40]!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, got {value}")
    return value


def _add_console(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--console-port",
        type=_port,
        default=DEFAULT_CONSOLE_PORT,
        metavar="N",
        help=f"serve the web console on 127.0.0.1:N (default {DEFAULT_CONSOLE_PORT}; 0: any "
        "free port)",
    )
    parser.add_argument("--no-console", action="store_true", help="no web console")


def _console_port(args: argparse.Namespace) -> int | None:
    return None if args.no_console else int(args.console_port)


def _add_broker(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--broker",
        choices=BROKERS,
        default="embedded",
        help="which Kafka to run (default: embedded, the in-memory Tansu broker)",
    )


def _store(text: str) -> str:
    from cli.store import StoreError, check_store  # noqa: PLC0415

    try:
        return check_store(text)
    except StoreError as exc:
        raise argparse.ArgumentTypeError(str(exc).removeprefix("--store: ")) from None


def _add_store(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--store",
        type=_store,
        default="sqlite",
        metavar="sqlite|postgres|URL",
        help="where the gateways and registries keep their records: sqlite (default: a file "
        "per process kind), postgres (a PostgreSQL server of the stack's own, started in its "
        "directory), or postgresql://user@host:port/db (a server we do not own: its "
        "databases lienthong_* are created if missing, never dropped)",
    )


def _add_replicas(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--replicas",
        type=_at_least_one,
        default=1,
        metavar="M",
        help="run M processes of each registry over its one database, reached through one "
        "round-robin channel (M > 1 needs --store postgres or a URL; default 1)",
    )


def _add_scale(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--gateways",
        type=_at_least_one,
        default=1,
        metavar="N",
        help="run N gateway processes in the same consumer groups over one saga store (default 1)",
    )
    _add_replicas(parser)


def _add_agency(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--agency",
        action="append",
        default=[],
        metavar="NAME=HOST:PORT",
        help="use an implementation of that agency running elsewhere instead of starting "
        f"ours (repeatable; NAME: {', '.join(AGENCY_NAMES)}), e.g. "
        "--agency population=10.0.0.5:50051",
    )


def _agencies(args: argparse.Namespace) -> dict[str, str]:
    try:
        return parse_agency_addresses(args.agency)
    except ValueError as exc:
        raise CliError(f"--agency: {exc}", code=EXIT_BAD_INPUT) from None


def _scale(args: argparse.Namespace, *, gateways: int | None = None) -> Scale:
    """--store, --gateways and --replicas (replay's --gateways is the
    scenario's business: it starts them itself, so the stack starts `gateways`)."""
    return Scale(
        store=args.store,
        gateways=gateways if gateways is not None else args.gateways,
        replicas=args.replicas,
    )


def _add_gateway(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--gateway",
        metavar="HOST:PORT",
        default=None,
        help="the gateway (default: $LIENTHONG_GATEWAY_ADDRESS, ./data/stack.json, "
        "else 127.0.0.1:50050)",
    )
    parser.add_argument("--data-dir", type=Path, default=None, help=argparse.SUPPRESS)
    add_insecure(parser)


def _dispatch(args: argparse.Namespace) -> int:
    # Imports per command: `lienthong submit` should not pay for the stack's
    # (the broker launchers, Kafka client): half a second on every call.
    console = make_console()
    if args.command == "up":
        from cli.up import run_up  # noqa: PLC0415

        return run_up(
            console,
            broker=args.broker,
            data_dir=args.data_dir or default_data_dir(),
            gateway=not args.no_gateway,
            seed_demo=args.seed_demo,
            external=_agencies(args),
            insecure=args.insecure,
            scale=_scale(args),
            console_port=_console_port(args),
        )
    if args.command == "down":
        from cli.down import run_down  # noqa: PLC0415

        return run_down(console, data_dir=args.data_dir, timeout_s=args.timeout)
    if args.command == "demo":
        from cli.demo import run_demo  # noqa: PLC0415

        return run_demo(
            console,
            broker=args.broker,
            data_dir=args.data_dir,
            new_stack=args.new_stack,
            external=_agencies(args),
            insecure=args.insecure,
            scale=_scale(args),
            console_port=_console_port(args),
            stay=args.stay,
        )
    if args.command == "seed-demo":
        from cli.seed_demo import run_seed_demo  # noqa: PLC0415

        with as_cli_of_running_stack(console, args.data_dir, insecure=args.insecure):
            return run_seed_demo(console, data_dir=args.data_dir)
    if args.command == "submit":
        from cli.submit import run_submit  # noqa: PLC0415

        with as_cli_of_running_stack(console, args.data_dir, insecure=args.insecure):
            return run_submit(
                console,
                kind=args.kind,
                file=args.file,
                gateway=gateway_address(args.gateway, args.data_dir),
                key=args.key,
                as_json=args.json,
            )
    if args.command == "status":
        from cli.status import run_status  # noqa: PLC0415

        with as_cli_of_running_stack(console, args.data_dir, insecure=args.insecure):
            return run_status(
                console,
                dossier_id=args.dossier_id,
                gateway=gateway_address(args.gateway, args.data_dir),
                watch=args.watch,
                as_json=args.json,
            )
    if args.command == "coverage":
        from cli.coverage import run_coverage  # noqa: PLC0415

        with as_cli_of_running_stack(console, args.data_dir, insecure=args.insecure):
            return run_coverage(
                console,
                personal_id=args.personal_id,
                on=args.on,
                target=args.target,
                data_dir=args.data_dir,
                as_json=args.json,
            )
    if args.command == "events":
        from cli.events import run_events_tail  # noqa: PLC0415

        return run_events_tail(
            topic=args.topic,
            bootstrap=args.bootstrap,
            data_dir=args.data_dir,
            from_beginning=args.from_beginning,
            limit=args.limit,
        )
    if args.command == "replay":
        from cli.replay import run_replay  # noqa: PLC0415

        return run_replay(
            console,
            scenario_file=args.scenario,
            rate=args.rate,
            duration=args.duration,
            broker=args.broker,
            report_dir=args.report,
            gateways=args.gateways,
            without=tuple(args.without),
            keep_stack=args.keep_stack,
            external=_agencies(args),
            insecure=args.insecure,
            scale=_scale(args, gateways=1),
            console_port=_console_port(args),
        )
    if args.command == "bench":
        from cli.bench import run_bench  # noqa: PLC0415

        return run_bench(
            console,
            broker=args.broker,
            trial_seconds=args.trial_seconds,
            report_dir=args.report,
            trust=args.trust,
            scale=_scale(args),
            first_rate=args.first_rate,
        )
    if args.command == "fuzz":
        try:
            from cli.fuzz import run_fuzz  # noqa: PLC0415
        except ModuleNotFoundError as missing:
            # hypothesis is a dev dependency: not in the Docker image.
            raise CliError(
                f"lienthong fuzz needs {missing.name}, one of the dev dependencies",
                ["run it from a checkout after `make setup` (or `make fuzz`)"],
            ) from None

        return run_fuzz(
            console, inputs_per_rpc=args.inputs, only=args.rpc, seed=args.seed, keep=args.keep
        )
    if args.command == "conform":
        from cli.conform import run_from_args  # noqa: PLC0415

        return run_from_args(console, args)
    if args.command == "audit":
        from cli.audit import run_from_args as run_audit  # noqa: PLC0415

        return run_audit(console, args)
    raise AssertionError(f"unhandled command {args.command}")


class _Signals:
    """SIGTERM behaves like Ctrl-C; the first signal interrupts, later ones are
    ignored so that a second Ctrl-C cannot cut the orderly stop of the stack short."""

    def __init__(self) -> None:
        self.received = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.received:
            return
        self.received = True
        raise KeyboardInterrupt

    def install(self) -> list[tuple[signal.Signals, Any]]:
        """Install for SIGTERM and SIGINT; the handlers they replace, to restore."""
        previous: list[tuple[signal.Signals, Any]] = []
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous.append((signum, signal.signal(signum, self)))
        return previous


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # main() also runs inside tests: the process gets its logging back after it.
    with logging_configured(service="cli", verbose=args.verbose):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    errors = make_console(stderr=True)
    previous = _Signals().install()
    try:
        return _dispatch(args)
    except CliError as exc:
        errors.print(
            f"[bold red]lienthong {args.command}:[/] {escape(exc.headline)}", highlight=False
        )
        for line in exc.details:
            errors.print(f"  {escape(line)}", highlight=False, soft_wrap=True)
        return exc.code
    except grpc.RpcError as error:
        # A call no command anticipated; still a sentence, not a traceback.
        failure = describe(error)
        errors.print(f"lienthong {args.command}: {failure.code.name}: {escape(failure.message)}")
        return 1
    except KeyboardInterrupt:
        errors.print("Interrupted.")
        return EXIT_INTERRUPTED
    except Exception as exc:
        # A bug: still one sentence by default; --verbose shows where.
        errors.print(
            f"lienthong {args.command}: unexpected error: {escape(repr(exc))}", highlight=False
        )
        if args.verbose:
            errors.print_exception()
        else:
            errors.print("(run again with --verbose for the traceback)")
        return 1
    finally:
        # main() also runs inside tests: give the process its handlers back.
        for signum, handler in previous:
            signal.signal(signum, handler)


if __name__ == "__main__":
    sys.exit(main())
