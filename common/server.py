"""Start a registry: grpc.aio server, standard health checking, reflection,
graceful shutdown on SIGTERM/SIGINT. Every service's __main__ goes through
`run_registry`; tests use `start_registry` on port 0."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
import structlog
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from common import event_loop
from common.access import AccessPolicy, PolicyError
from common.channels import TlsSettings, server_tls
from common.observers import observers_for
from common.rpc import CallObserver, RegistryInterceptor
from common.switch_interval import hand_over_often

log = structlog.get_logger("server")

# Seeding streams carry big batches; 64 MiB per message leaves room.
SERVER_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
    ("grpc.so_reuseport", 0),
]


@dataclass(frozen=True)
class ServiceBinding:
    """A servicer, the generated function that adds it, and its full name."""

    servicer: Any
    add_to_server: Callable[[Any, grpc.aio.Server], None]
    full_name: str


@dataclass
class RunningRegistry:
    server: grpc.aio.Server
    port: int
    health: health.aio.HealthServicer
    service_names: Sequence[str]

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in (*self.service_names, ""):
            await self.health.set(name, status)

    async def stop(self, grace: float | None) -> None:
        # Tell probes first, so a load balancer stops sending new calls
        # while the ones in flight finish within the grace period.
        await self.set_serving(False)
        await self.server.stop(grace)


async def start_registry(
    bindings: Sequence[ServiceBinding],
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    serving: bool = True,
    observers: Sequence[CallObserver] = (),
    tls: TlsSettings | None = None,
    policy: AccessPolicy | None = None,
) -> RunningRegistry:
    """Start serving; health says SERVING at once, or (`serving=False`) only
    once the caller calls set_serving(True): a process that must finish
    starting behind its port (the gateway joining its consumer groups).
    `observers` hear every call of the services (common.rpc.CallObserver).

    With `tls` the port is mutual TLS (a client without a certificate from
    the CA cannot connect) and the access policy is enforced: `policy`, by
    default the policy file (common/access.py). Without, plain text: the
    code API's default for in-process tests; a process gets there only with
    LIENTHONG_INSECURE=1 (common.channels.server_tls)."""
    if tls is not None and policy is None:
        try:
            policy = AccessPolicy.load()
        except PolicyError as exc:
            # A server with a broken policy would refuse everyone: say why, once.
            raise SystemExit(f"cannot start: {exc}") from None
    server = grpc.aio.server(
        interceptors=[RegistryInterceptor(observers, policy=policy)], options=SERVER_OPTIONS
    )
    for binding in bindings:
        binding.add_to_server(binding.servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [b.full_name for b in bindings]
    reflection.enable_server_reflection(
        [*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )
    if tls is None:
        bound = server.add_insecure_port(f"{host}:{port}")
    else:
        bound = server.add_secure_port(f"{host}:{port}", tls.server_credentials())
    if bound == 0:
        raise SystemExit(f"cannot listen on {host}:{port} (is the port already in use?)")
    running = RunningRegistry(server, bound, health_servicer, names)
    await running.set_serving(False)
    await server.start()
    if serving:
        await running.set_serving(True)
    return running


async def run_registry(
    bindings: Sequence[ServiceBinding],
    *,
    process: str,
    host: str,
    port: int,
    grace_seconds: float,
    on_stopped: Callable[[], None] = lambda: None,
    observers: Sequence[CallObserver] = (),
) -> None:
    """Serve until SIGTERM or SIGINT, then drain for up to grace_seconds.
    `process` (the agency's name) chooses the observers its environment asks
    for (common.observers: the metrics, the message log), heard after
    `observers`, and names the process's message log. Mutual TLS and the
    access policy from its settings, or plain text only when
    LIENTHONG_INSECURE=1 says so (common.channels.server_tls)."""
    hand_over_often()
    heard = [*observers, *observers_for(process)]
    tls = server_tls(process)
    running = await start_registry(bindings, host=host, port=port, observers=heard, tls=tls)
    log.info(
        "listening",
        address=f"{host}:{running.port}",
        services=list(running.service_names),
        tls="mutual" if tls is not None else "NONE (insecure)",
        event_loop=event_loop.running(),
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("stopping", grace_seconds=grace_seconds)
    await running.stop(grace_seconds)
    on_stopped()
    log.info("stopped")
