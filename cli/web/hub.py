"""Fan-out of the console's live changes to every open event stream.

Each stream gets a queue of its own; one that falls behind (a page in a
background tab) loses its oldest changes rather than growing without
bound: it re-reads /api/overview every second anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Iterable
from typing import Any

from cli.web.live import Change

QUEUE_SIZE = 1000


class Hub:
    def __init__(self) -> None:
        self._queues: set[asyncio.Queue[Change]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """The loop the streams live on: changes from other threads go through it."""
        self._loop = loop

    def subscribe(self) -> asyncio.Queue[Change]:
        queue: asyncio.Queue[Change] = asyncio.Queue(QUEUE_SIZE)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Change]) -> None:
        self._queues.discard(queue)

    @property
    def subscribers(self) -> int:
        return len(self._queues)

    def publish(self, changes: Iterable[Change]) -> None:
        """From the loop's own thread."""
        for change in changes:
            for queue in list(self._queues):
                if queue.full():
                    with contextlib.suppress(asyncio.QueueEmpty):
                        queue.get_nowait()
                queue.put_nowait(change)

    def publish_threadsafe(self, changes: list[Change]) -> None:
        """From any thread (a replay's progress); dropped if the loop is gone."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(self.publish, changes)

    def after_published(self, callback: Callable[[], None]) -> None:
        """Run `callback` on the loop once every change published from other
        threads so far is in the streams' queues (the loop runs its callbacks
        in the order they came); at once if the loop is gone."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(callback)
                return
            except RuntimeError:
                pass  # closed meanwhile
        callback()


def sse(event: str, data: Any) -> str:
    """One server-sent event: its name and one line of JSON."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
