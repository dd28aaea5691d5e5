"""One channel over a registry's replicas (common/channels.py): comma-separated
addresses become one gRPC target with the round_robin policy, under mutual
TLS whose server names still verify; a replica stopped is left out and the
calls go on to the others.

Real servers on loopback (gRPC's health service, mutual TLS with identities
from common/pki.py); which replica answered is counted on the servers' side,
by an interceptor of the test's own, not read from the channel."""

from __future__ import annotations

import collections
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from common import channels, pki
from common.channels import BadAddress, TlsSettings

CALLS = 40


class Counting(grpc.ServerInterceptor):
    """Counts the calls one server received."""

    def __init__(self, name: str, counts: collections.Counter[str]) -> None:
        self.name = name
        self.counts = counts
        self.lock = threading.Lock()

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Any],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        with self.lock:
            self.counts[self.name] += 1
        return continuation(handler_call_details)


@pytest.fixture
def pki_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "pki"
    pki.issue_all(directory, ("population", "lienthong-cli"))
    return directory


@pytest.fixture
def replicas(
    pki_dir: Path,
) -> Iterator[tuple[dict[str, grpc.Server], dict[str, str], collections.Counter[str]]]:
    """Two replicas of one identity (`population`), as the stack runs them."""
    counts: collections.Counter[str] = collections.Counter()
    servers: dict[str, grpc.Server] = {}
    addresses: dict[str, str] = {}
    credentials = TlsSettings.for_identity(pki_dir, "population").server_credentials()
    for name in ("population", "population-2"):
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=4), interceptors=[Counting(name, counts)]
        )
        health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), server)
        port = server.add_secure_port("127.0.0.1:0", credentials)
        server.start()
        servers[name] = server
        addresses[name] = f"127.0.0.1:{port}"
    yield servers, addresses, counts
    for server in servers.values():
        server.stop(None)


def check(channel: grpc.Channel) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=5, wait_for_ready=True)
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_one_address_is_used_as_given() -> None:
    assert channels.target("127.0.0.1:50051") == ("127.0.0.1:50051", [])
    assert channels.target("population:50051") == ("population:50051", [])


def test_replicas_become_one_round_robin_target() -> None:
    where, options = channels.target("127.0.0.1:1001, 127.0.0.1:1002")
    assert where == "ipv4:127.0.0.1:1001,127.0.0.1:1002"
    settings = dict(options)
    assert '"round_robin"' in settings["grpc.service_config"]
    # The certificates name 127.0.0.1, not the list: the first one is the authority.
    assert settings["grpc.default_authority"] == "127.0.0.1:1001"


@pytest.mark.parametrize(
    ("address", "named"),
    [
        ("population:50051,population-2:50051", "'population:50051'"),
        ("127.0.0.1:1001,127.0.0.1", "'127.0.0.1'"),
        ("127.0.0.1:1001,[::1]:1002", "mix IPv4 and IPv6"),
    ],
)
def test_a_replica_list_that_grpc_cannot_balance_is_refused(address: str, named: str) -> None:
    with pytest.raises(BadAddress, match=named.replace("[", r"\[").replace("]", r"\]")):
        channels.target(address)


def test_calls_reach_every_replica_under_mutual_tls_and_survive_one_stopping(
    pki_dir: Path,
    replicas: tuple[dict[str, grpc.Server], dict[str, str], collections.Counter[str]],
) -> None:
    servers, addresses, counts = replicas
    tls = TlsSettings.for_identity(pki_dir, "lienthong-cli")
    with channels.sync_channel(",".join(addresses.values()), tls=tls) as channel:
        for _ in range(CALLS):
            check(channel)
        # Both answered (round robin: about half each once both connected;
        # pick_first, gRPC's default, would have sent every call to one).
        assert counts["population"] >= CALLS // 4, counts
        assert counts["population-2"] >= CALLS // 4, counts

        servers["population-2"].stop(None).wait()
        counts.clear()
        failures = 0
        for _ in range(CALLS):
            try:
                check(channel)
            except grpc.RpcError:
                # At most the calls in flight as it went (the gateway retries those).
                failures += 1
        # Every call after that went to the survivor.
        assert failures <= 1
        assert counts == {"population": CALLS - failures}, counts
