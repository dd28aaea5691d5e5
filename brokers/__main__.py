"""``python -m brokers --broker apache``: run a broker until Ctrl-C or SIGTERM.

Prints the bootstrap servers on a line of their own, then stays up; exits 1 if
the broker dies by itself, 2 if it cannot start.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from brokers import DEFAULT_BROKER, BrokerKind, BrokerStartError, start_broker

# How often to look whether the broker process died by itself.
_WATCH_SECONDS = 1.0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m brokers", description="Run a Kafka broker for lienthong."
    )
    parser.add_argument(
        "--broker",
        choices=[k.value for k in BrokerKind],
        default=DEFAULT_BROKER.value,
        help="which Kafka to run (default: %(default)s)",
    )
    parser.add_argument("--data-dir", type=Path, help="keep logs (and apache's data) here")
    parser.add_argument("--port", type=int, help="client port on 127.0.0.1 (embedded, apache)")
    parser.add_argument("--timeout", type=float, help="seconds to wait for the broker to answer")
    return parser


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # A SIGTERM during a (maybe long) start interrupts it like Ctrl-C does, so that
    # start_broker's cleanup runs instead of the process vanishing mid-way.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    try:
        broker = start_broker(
            args.broker, data_dir=args.data_dir, port=args.port, timeout=args.timeout
        )
    except BrokerStartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130

    stop_requested = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    with broker:
        print(broker.bootstrap_servers, flush=True)
        while not stop_requested.wait(_WATCH_SECONDS):
            if not broker.is_alive():
                print(f"error: the {broker.kind.value} broker exited by itself", file=sys.stderr)
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
