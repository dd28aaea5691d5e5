"""The launchers' port check: a port with a listener is taken; a port whose
last connection is still in TIME_WAIT is free (a broker restarts on it at once)."""

from __future__ import annotations

import socket

from common.processes import port_in_use


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
