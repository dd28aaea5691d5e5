"""python -m scenarios.echo_server --port N: the plain gRPC unary echo server that
`lienthong bench` measures its baseline against (see scenarios/baseline.py).

A grpc.aio server like our registries, on plain asyncio like them, but with
nothing else: one generic unary method that answers its request bytes, no
proto, no interceptor, no health or reflection service, no storage. It serves
until SIGTERM or SIGINT and then exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import grpc

from common.processes import LOOPBACK
from common.server import SERVER_OPTIONS

SERVICE = "lienthong.bench.v1.Echo"
METHOD = "Echo"
FULL_METHOD = f"/{SERVICE}/{METHOD}"


def _identity(data: bytes) -> bytes:
    return data


async def _echo(request: bytes, context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
    return request


def add_echo_to_server(server: grpc.aio.Server) -> None:
    """Serve /lienthong.bench.v1.Echo/Echo (raw bytes in and out) the way the
    generated `add_…_to_server` of our registries does: a generic handler and
    the same handlers registered by method (grpcio's faster lookup)."""
    handlers = {
        METHOD: grpc.unary_unary_rpc_method_handler(
            _echo, request_deserializer=_identity, response_serializer=_identity
        )
    }
    server.add_generic_rpc_handlers([grpc.method_handlers_generic_handler(SERVICE, handlers)])
    server.add_registered_method_handlers(SERVICE, handlers)


async def serve(host: str, port: int) -> None:
    # The registries' options (no SO_REUSEPORT: a taken port is an error).
    server = grpc.aio.server(options=SERVER_OPTIONS)
    add_echo_to_server(server)
    if server.add_insecure_port(f"{host}:{port}") == 0:
        raise SystemExit(f"cannot listen on {host}:{port} (is the port already in use?)")
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(None)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m scenarios.echo_server", description=__doc__)
    parser.add_argument("--host", default=LOOPBACK)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.host, args.port))


if __name__ == "__main__":
    main()
