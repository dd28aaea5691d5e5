"""``python -m databases postgres --dir D``: run a PostgreSQL server until Ctrl-C or SIGTERM.

Prints one URL per line once the server accepts connections (one per
--database, each created if missing; else the `postgres` database's), then
stays up. Exit codes: 0 after a clean stop, 1 if the server dies by itself, 2
if it cannot start.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from databases.binaries import PostgresError
from databases.postgres import PostgresServer

# How often to look whether the server died by itself.
_WATCH_SECONDS = 1.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m databases", description="Run a database server for lienthong."
    )
    kinds = parser.add_subparsers(dest="kind", required=True)
    postgres = kinds.add_parser("postgres", help="a PostgreSQL server on 127.0.0.1")
    postgres.add_argument(
        "--dir", type=Path, required=True, help="data directory (initdb'd if empty)"
    )
    postgres.add_argument("--port", type=int, help="port on 127.0.0.1 (default: a free one)")
    postgres.add_argument(
        "--database",
        action="append",
        default=[],
        metavar="NAME",
        help="create this database if missing and print its URL (repeatable)",
    )
    return parser


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # A SIGTERM during the start interrupts it like Ctrl-C, so that the
    # half-started server is stopped instead of left behind.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    server = PostgresServer(args.dir, args.port)
    try:
        server.start()
        urls = [server.create_database(name) for name in args.database]
    except (PostgresError, ValueError) as exc:
        server.stop()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        server.stop()
        return 130

    stop_requested = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    with server:
        for url in urls or [server.url("postgres")]:
            print(url, flush=True)
        while not stop_requested.wait(_WATCH_SECONDS):
            if not server.is_running():
                print(f"error: postgres exited by itself; see {server.log_file}", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
