"""The launchers' port check: a port with a listener is taken; a port whose
last connection is still in TIME_WAIT is free (a broker restarts on it at once)."""

from __future__ import annotations

import random
import socket
from pathlib import Path

from common.processes import listen_port, port_in_use


def test_a_listening_port_is_in_use_and_a_closed_one_in_time_wait_is_not() -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # As the brokers listen: the JVM and tokio set SO_REUSEADDR on Linux, and
    # the connections they accept (later in TIME_WAIT) inherit it.
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    assert port_in_use(port)
    # The side that closes first keeps the connection in TIME_WAIT: here the
    # server, as when a broker is stopped with clients connected.
    accepted.close()
    server.close()
    client.close()
    assert not port_in_use(port)


def test_a_port_for_a_server_is_below_the_ephemeral_range_and_free() -> None:
    # A client reconnecting to a down server on loopback can be given that
    # very port as its own (a self-connect) if it lies in the ephemeral range.
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = {listen_port(random.Random(seed)) for seed in range(20)}
    assert all(20_000 <= port < low for port in ports)
    assert not any(port_in_use(port) for port in ports)
