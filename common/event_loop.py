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
import os
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import uvloop

ENV = "LIENTHONG_EVENT_LOOP"
CHOICES = ("uvloop", "asyncio")
DEFAULT = "uvloop"

T = TypeVar("T")


class EventLoopChoiceError(ValueError):
    """LIENTHONG_EVENT_LOOP names no loop this module knows."""


def loop_factory(choice: str | None = None) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """The factory for `choice` (default: the environment's, else uvloop);
    None means the standard library's own loop."""
    name = (choice if choice is not None else os.environ.get(ENV, "")).strip() or DEFAULT
    if name not in CHOICES:
        raise EventLoopChoiceError(
            f"{ENV}={name[:40]!r} is not an event loop lienthong knows: "
            f"use one of {', '.join(CHOICES)}"
        )
    if name == "asyncio":
        return None
    return uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], *, choice: str | None = None) -> T:
    """asyncio.run on the chosen loop."""
    with asyncio.Runner(loop_factory=loop_factory(choice)) as runner:
        return runner.run(main)


def running() -> str:
    """Which loop runs the calling coroutine, as its start line names it."""
    return "uvloop" if isinstance(asyncio.get_running_loop(), uvloop.Loop) else "asyncio"
