"""Ask a process whether it serves: the standard gRPC health check (grpc.health.v1).

Every lienthong server (the three registries and the gateway) registers the
health service, so one probe fits all and `grpcurl` users can run the same check.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from common import channels
from common.channels import FROM_ENV, TlsSettings

# Reconnect quickly while a child is still binding its port: gRPC's default
# first backoff is a whole second, which would dominate a stack's start time.
FAST_RECONNECT = [
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 250),
]
# Between two NOT_SERVING answers: the server is up but still getting ready.
_NOT_SERVING_PAUSE_SECONDS = 0.05


class NotServing(Exception):
    """The server did not answer SERVING before the deadline; says what it answered last."""


def check(address: str, *, timeout: float = 1.0, tls: TlsSettings | None = FROM_ENV) -> bool:
    """True when `address` answers SERVING within `timeout` seconds.

    A refused connection answers False at once (no wait_for_ready): this is
    "is anybody there?", e.g. before reusing a running stack."""
    with channels.sync_channel(address, options=FAST_RECONNECT, tls=tls) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            response = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.RpcError:
            return False
    return bool(response.status == health_pb2.HealthCheckResponse.SERVING)


def wait_serving(
    address: str,
    *,
    timeout: float,
    tls: TlsSettings | None = FROM_ENV,
    still_starting: Callable[[], bool] = lambda: True,
    pause: Callable[[float], None] = time.sleep,
) -> None:
    """Poll the health check until SERVING, or raise NotServing at the deadline.

    `still_starting` lets the caller stop early (e.g. the child process has
    exited: no point waiting for it); `pause` is how to wait between two
    NOT_SERVING answers, e.g. the child's own `wait`, which returns at once if
    it dies.
    """
    deadline = time.monotonic() + timeout
    last = "no answer"
    with channels.sync_channel(address, options=FAST_RECONNECT, tls=tls) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise NotServing(
                    f"{address} did not answer SERVING within {timeout:.0f} s ({last})"
                )
            if not still_starting():
                raise NotServing(f"{address} stopped before it served ({last})")
            try:
                # wait_for_ready: while the port is still closed the call waits
                # for the connection (up to its timeout) instead of failing at once.
                response = stub.Check(
                    health_pb2.HealthCheckRequest(service=""),
                    timeout=min(0.5, remaining),
                    wait_for_ready=True,
                )
            except grpc.RpcError as error:
                last = f"last answer: {error.code().name}"
                continue
            if response.status == health_pb2.HealthCheckResponse.SERVING:
                return
            last = (
                f"last answer: {health_pb2.HealthCheckResponse.ServingStatus.Name(response.status)}"
            )
            pause(min(_NOT_SERVING_PAUSE_SECONDS, max(0.0, deadline - time.monotonic())))
