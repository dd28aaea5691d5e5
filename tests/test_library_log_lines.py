"""A library's repeated log line (aiokafka's at every reconnection attempt
while a broker is down) passes once per interval; our own lines and other
libraries' pass every time."""

from __future__ import annotations

import logging

from common.logging import _OncePerInterval


def record(name: str, msg: str, created: float, *args: object) -> logging.LogRecord:
    line = logging.LogRecord(name, logging.ERROR, __file__, 1, msg, args, None)
    line.created = created
    return line


def test_the_same_library_line_passes_once_per_interval() -> None:
    once = _OncePerInterval(("aiokafka",), interval=10.0)
    template = "Unable connect to node with id %s: %s"
    passed = [
        once.filter(record("aiokafka", template, t, 1, "refused")) for t in (0.0, 0.1, 9.9, 10.0)
    ]
    assert passed == [True, False, False, True]
    # Another line of the same library, or another library, is not held back.
    assert once.filter(record("aiokafka.conn", template, 0.2, 1, "refused"))
    assert once.filter(record("aiokafka", "Unable to update metadata from %s", 0.2, [1]))
    assert all(once.filter(record("grpc", template, t, 1, "x")) for t in (0.0, 0.1))
