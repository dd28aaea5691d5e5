"""Waiting out an outage: exponential backoff with a cap, one log line per wait.

Used while the gateway starts (the broker may not be up yet) and by the
outbox relay (the broker may go away at any time). aiokafka itself retries a
connection every 100 ms and says so each time; our own lines say once per
interval what is waited for, how long it has been, and when it is over.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog
from aiokafka.errors import KafkaError

log = structlog.get_logger("gateway")

T = TypeVar("T")

# What a broker that is down (or not ready yet) makes the client raise.
BROKER_DOWN: tuple[type[BaseException], ...] = (KafkaError, OSError, TimeoutError)


class Backoff:
    """Delays base, 2·base, 4·base... up to cap; reset() starts over."""

    # Capped at 2 s: trying a local broker again is cheap, and every second
    # of the cap is up to a second of waiting after the broker is back (a
    # gateway started during a broker outage came up 12 s after the broker
    # with a 10 s cap, in a chaos replay).
    def __init__(self, base: float = 0.5, cap: float = 2.0) -> None:
        if base <= 0 or cap < base:
            raise ValueError(f"need 0 < base <= cap, got base={base} cap={cap}")
        self.base = base
        self.cap = cap
        self.failures = 0

    def next(self) -> float:
        delay = min(self.cap, self.base * 2.0**self.failures)
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0


async def until_done(
    what: str,
    attempt: Callable[[], Awaitable[T]],
    backoff: Backoff,
    *,
    retry_on: tuple[type[BaseException], ...] = BROKER_DOWN,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Run `attempt` until it succeeds, waiting with backoff after each failure
    that `retry_on` names (anything else is a bug and propagates)."""
    started = time.monotonic()
    backoff.reset()
    while True:
        try:
            result = await attempt()
        except retry_on as error:
            delay = backoff.next()
            log.warning(
                "waiting",
                what=what,
                attempts=backoff.failures,
                waited_s=round(time.monotonic() - started, 1),
                retry_in_s=delay,
                error=str(error) or type(error).__name__,
            )
            await sleep(delay)
            continue
        if backoff.failures:
            log.info(
                "done waiting",
                what=what,
                attempts=backoff.failures + 1,
                waited_s=round(time.monotonic() - started, 1),
            )
        return result
