"""The hub's changes from other threads arrive before what is asked to run
after them: the console's stop waits so for a replay's final stats."""

from __future__ import annotations

import asyncio
import threading

from cli.web.hub import Hub


def test_a_callback_after_published_sees_the_change_published_before_it() -> None:
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    try:
        hub = Hub()
        hub.bind(loop)
        queue = hub.subscribe()
        # The loop held busy, as a loaded one is: both calls below wait their turn.
        release = threading.Event()
        loop.call_soon_threadsafe(release.wait, 10)
        seen: list[int] = []
        ran = threading.Event()

        def after() -> None:
            seen.append(queue.qsize())
            ran.set()

        hub.publish_threadsafe([("replay", {"final": {"lost": 0}})])
        hub.after_published(after)
        release.set()
        assert ran.wait(10), "the callback never ran"
        assert seen == [1]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        runner.join(10)
        loop.close()


def test_with_no_loop_the_callback_runs_at_once() -> None:
    ran: list[bool] = []
    Hub().after_published(lambda: ran.append(True))
    assert ran == [True]
