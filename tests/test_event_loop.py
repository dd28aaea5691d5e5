"""common.event_loop: uvloop unless LIENTHONG_EVENT_LOOP says asyncio, and a
clear refusal of any other name."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from common import event_loop


async def _loop_type() -> type:
    # What the coroutine itself runs on, not what the module says it chose.
    return type(asyncio.get_running_loop())


def test_uvloop_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(event_loop.ENV, raising=False)
    assert issubclass(event_loop.run(_loop_type()), uvloop.Loop)


def test_the_standard_loop_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(event_loop.ENV, "asyncio")
    ran_on = event_loop.run(_loop_type())
    assert not issubclass(ran_on, uvloop.Loop)
    assert issubclass(ran_on, asyncio.BaseEventLoop)


def test_running_names_the_loop_it_runs_on(monkeypatch: pytest.MonkeyPatch) -> None:
    async def name() -> str:
        return event_loop.running()

    monkeypatch.setenv(event_loop.ENV, "uvloop")
    assert event_loop.run(name()) == "uvloop"
    monkeypatch.setenv(event_loop.ENV, "asyncio")
    assert event_loop.run(name()) == "asyncio"


def test_an_unknown_loop_is_refused_naming_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(event_loop.ENV, "tokio" * 30)
    coroutine = _loop_type()
    with pytest.raises(SystemExit) as raised:
        event_loop.run(coroutine)
    coroutine.close()
    message = str(raised.value)
    assert "LIENTHONG_EVENT_LOOP" in message
    assert "uvloop, asyncio" in message
    assert len(message) < 160, "what the user wrote is quoted short"
