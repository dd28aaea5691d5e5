"""The event loop every lienthong server process runs on: uvloop by default.

A gateway's and a registry's work is many small units crossing the loop: a
Kafka request and its answer (aiokafka is pure-Python asyncio protocol code),
a store call handed to a thread and its result handed back
(`call_soon_threadsafe`, a wake-up of the loop's self-pipe), a timer per
backoff. uvloop (libuv) runs those callbacks, transports and wake-ups in C.

`LIENTHONG_EVENT_LOOP=asyncio` runs the standard library's loop instead: to
compare the two, or to debug with asyncio's own debug mode.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import uvloop

from common.config import env_choice

ENV = "LIENTHONG_EVENT_LOOP"
CHOICES = ("uvloop", "asyncio")
DEFAULT = "uvloop"

T = TypeVar("T")


def loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory for the environment's choice (default uvloop); None means
    the standard library's own loop. Any other name stops the process with a
    message naming the choices (`env_choice`)."""
    if env_choice(ENV, CHOICES, DEFAULT) == "asyncio":
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T]) -> T:
    """asyncio.run on the chosen loop."""
    try:
        factory = loop_factory()
    except SystemExit:
        main.close()  # never started: no "coroutine was never awaited" on the way out
        raise
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)


def running() -> str:
    """Which loop runs the calling coroutine, as its start line names it."""
    return "uvloop" if isinstance(asyncio.get_running_loop(), uvloop.Loop) else "asyncio"
