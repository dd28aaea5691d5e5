"""python -m common.healthcheck HOST:PORT [--service NAME] [--timeout SECONDS]

The standard gRPC health check (grpc.health.v1.Health/Check) as a container
probe: the images have no grpc_health_probe, and every lienthong server (the
three registries and the gateway) registers the health service.

Exit 0 when the server answers SERVING; 1 otherwise, with one line on stderr
saying why (nothing listening, no answer in time, NOT_SERVING, an unknown
service); 2 for a bad command line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from common import channels

DEFAULT_TIMEOUT_SECONDS = 2.0
EXIT_SERVING = 0
EXIT_UNHEALTHY = 1


def _address(text: str) -> str:
    host, colon, port = text.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, got {text!r}")
    return text


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"the timeout must be positive, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m common.healthcheck",
        description="Exit 0 if the gRPC server at HOST:PORT answers SERVING to the standard "
        "health check, else 1 with the reason on stderr.",
    )
    parser.add_argument("address", type=_address, metavar="HOST:PORT")
    parser.add_argument(
        "--service",
        default="",
        metavar="NAME",
        help="the fully qualified service to ask about (default: the server as a whole)",
    )
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT_SECONDS,
        metavar="SECONDS",
        help=f"how long to wait for the answer (default: {DEFAULT_TIMEOUT_SECONDS:g})",
    )
    return parser


def _first_line(text: str | None) -> str:
    lines = (text or "").strip().splitlines()
    return lines[0][:200] if lines else ""


def probe(
    address: str,
    *,
    service: str = "",
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
    tls: channels.TlsSettings | None = channels.FROM_ENV,
) -> str | None:
    """None when `address` answers SERVING for `service`, else why not, in
    words. Under `tls`, by default the process's own identity (a container's
    probe asks its own server as itself)."""
    what = f"service {service}" if service else "the server"
    # No wait_for_ready: a closed port is an answer ("nothing listening"), at once.
    with channels.sync_channel(address, tls=tls) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=timeout)
        except grpc.RpcError as error:
            code = error.code() if isinstance(error, grpc.Call) else None
            details = _first_line(error.details() if isinstance(error, grpc.Call) else str(error))
            if code is grpc.StatusCode.UNAVAILABLE:
                return f"nothing answers at {address} (UNAVAILABLE: {details})"
            if code is grpc.StatusCode.DEADLINE_EXCEEDED:
                return f"{address} did not answer within {timeout:g} s"
            if code is grpc.StatusCode.NOT_FOUND:
                return f"{address} does not know {what} (NOT_FOUND)"
            if code is grpc.StatusCode.UNIMPLEMENTED:
                return f"{address} has no grpc.health.v1.Health service (UNIMPLEMENTED)"
            name = code.name if code is not None else type(error).__name__
            return f"{address} failed the health check: {name}: {details}"
    if response.status != health_pb2.HealthCheckResponse.SERVING:
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)
        return f"{address} answers {status} for {what}"
    return None


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    reason = probe(args.address, service=args.service, timeout=args.timeout)
    if reason is not None:
        print(f"unhealthy: {reason}", file=sys.stderr)
        return EXIT_UNHEALTHY
    print(f"{args.address}: SERVING")
    return EXIT_SERVING


if __name__ == "__main__":
    sys.exit(main())
