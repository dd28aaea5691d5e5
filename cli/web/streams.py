"""The console's server-sent event streams: the live one (the overview every
second, each change as it comes, a keep-alive) and one dossier's (from the
gateway's WatchDossier until it ends). Both end promptly once `stopping` is
set, so the server can stop with streams open."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from starlette.responses import StreamingResponse

from cli.render import TERMINAL_STATES, dossier_state
from cli.rpc_errors import describe
from cli.web.dossiers import Gateway, dossier_detail
from cli.web.hub import Hub, sse
from common.quoting import cap
from lienthong.gateway.v1 import gateway_pb2 as gw

OVERVIEW_EVERY_S = 1.0
KEEPALIVE_EVERY_S = 15.0
# How long a stream waits for news before it looks at `stopping` again.
LOOK_EVERY_S = 0.5
ENDED = frozenset(TERMINAL_STATES)  # COMPLETED, COMPLETED_WITH_REFUSALS, REJECTED


def event_stream(events: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        # No proxy or browser holds an event back.
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


async def live_events(
    hub: Hub,
    queue: asyncio.Queue[tuple[str, Any]],
    overview: Callable[[], dict[str, Any]],
    stopping: threading.Event,
) -> AsyncIterator[str]:
    """The overview at once and every OVERVIEW_EVERY_S, each change the hub
    publishes to `queue` as it comes, a keep-alive comment now and then."""
    loop = asyncio.get_running_loop()
    try:
        yield sse("overview", overview())
        next_overview = loop.time() + OVERVIEW_EVERY_S
        next_keepalive = loop.time() + KEEPALIVE_EVERY_S
        while not stopping.is_set():
            wait = max(0.0, min(next_overview, next_keepalive) - loop.time())
            try:
                kind, data = await asyncio.wait_for(queue.get(), min(wait, LOOK_EVERY_S))
                yield sse(kind, data)
            except TimeoutError:
                pass
            now = loop.time()
            if now >= next_overview:
                yield sse("overview", overview())
                next_overview = now + OVERVIEW_EVERY_S
            if now >= next_keepalive:
                yield ": keepalive\n\n"
                next_keepalive = now + KEEPALIVE_EVERY_S
        # Stopping: what was published before (a replay's final stats) still goes out.
        while not queue.empty():
            kind, data = queue.get_nowait()
            yield sse(kind, data)
    finally:
        hub.unsubscribe(queue)


async def dossier_events(
    gateway: Gateway, dossier_id: str, first: gw.Dossier, stopping: threading.Event
) -> AsyncIterator[str]:
    """`first` (the dossier as just read), then the dossier at each change
    until it ends (`end`), or `error` if the watch fails for good."""
    yield sse("dossier", dossier_detail(first))
    if first.state in ENDED:
        yield sse("end", {"dossier_id": dossier_id, "state": dossier_state(first.state)})
        return
    changes: asyncio.Queue[Any] = asyncio.Queue()
    watcher = asyncio.create_task(watch(gateway, dossier_id, changes, stopping))
    try:
        while not stopping.is_set():
            try:
                item = await asyncio.wait_for(changes.get(), LOOK_EVERY_S)
            except TimeoutError:
                continue
            if item is None:
                return
            if isinstance(item, str):
                yield sse("error", {"message": item})
                return
            yield sse("dossier", dossier_detail(item))
            if item.state in ENDED:
                yield sse("end", {"dossier_id": dossier_id, "state": dossier_state(item.state)})
                return
    finally:
        watcher.cancel()


async def watch(
    gateway: Gateway, dossier_id: str, changes: asyncio.Queue[Any], stopping: threading.Event
) -> None:
    """The dossier at each change, until it ends; a broken watch (a gateway
    restarted) is resumed, as `lienthong demo` does."""
    while not stopping.is_set():
        try:
            async for dossier in gateway.watch(dossier_id):
                await changes.put(dossier)
                if dossier.state in ENDED:
                    await changes.put(None)
                    return
        except grpc.RpcError as error:
            failure = describe(error)
            if failure.code == grpc.StatusCode.CANCELLED:
                return
            if not failure.unreachable:
                await changes.put(f"watch failed: {failure.code.name}: {cap(failure.message)}")
                return
        await asyncio.sleep(LOOK_EVERY_S)
