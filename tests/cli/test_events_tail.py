"""`lienthong events tail` against a real (embedded) broker: events published
with the gateway's own encoding (gateway.kafka.publish) come out one line
each, decoded, with personal ID numbers masked; from the beginning, and live
from a separate process; dead letters with their reason."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import json
import os
import selectors
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from brokers import BrokerKind, RunningBroker, start_broker
from cli.main import main
from cli.state import StackState, write_state
from gateway.events import Event, Topics
from gateway.kafka import ensure_topics, make_producer, publish
from lienthong.events.v1 import events_pb2 as ev
from lienthong.gateway.v1 import gateway_pb2 as gw

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(90)]

ROOT = Path(__file__).resolve().parents[2]
WHEN = dt.datetime(2026, 11, 30, 8, 15, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def broker() -> Iterator[RunningBroker]:
    with start_broker(BrokerKind.EMBEDDED) as running:
        yield running


@pytest.fixture
def prefix(broker: RunningBroker, monkeypatch: pytest.MonkeyPatch) -> str:
    """A prefix of the test's own, its topics created as a gateway would."""
    chosen = f"tail-{uuid.uuid4().hex[:8]}"
    asyncio.run(ensure_topics(broker.bootstrap_servers, Topics.with_prefix(chosen).all(), 3))
    monkeypatch.setenv("LIENTHONG_TOPIC_PREFIX", chosen)
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    return chosen


def _settled(dossier_id: str, child_id: str, mother_id: str) -> ev.DossierSettled:
    return ev.DossierSettled(
        dossier=gw.Dossier(
            dossier_id=dossier_id,
            kind=gw.DOSSIER_KIND_BIRTH,
            state=gw.DOSSIER_STATE_COMPLETED,
            finished_at=Timestamp(seconds=int(WHEN.timestamp())),
            version=7,
            birth_declaration=gw.BirthDeclaration(
                child_full_name="Nguyễn Văn An", mother_id_number=mother_id
            ),
            birth_result=gw.BirthResult(personal_id_number=child_id, household_id="HH-1"),
        )
    )


def _publish(bootstrap: str, messages: list[tuple[str, Event]]) -> None:
    async def go() -> None:
        producer = make_producer(bootstrap)
        await producer.start()
        try:
            await publish(producer, messages)
        finally:
            await producer.stop()

    asyncio.run(go())


def test_settled_dossiers_from_the_beginning(
    broker: RunningBroker, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    topics = Topics.with_prefix(prefix)
    first = _settled("birth-aaaa", child_id="079301000123", mother_id="001190012345")
    second = _settled("birth-bbbb", child_id="079302000456", mother_id="001190067890")
    outcome = ev.StepOutcome(dossier_id="birth-aaaa", step="population.register_birth")
    _publish(
        broker.bootstrap_servers,
        [
            (topics.settled, Event("birth-aaaa/settled/COMPLETED", "birth-aaaa", first, WHEN)),
            (topics.step_outcomes, Event("birth-aaaa/x/outcome", "birth-aaaa", outcome, WHEN)),
            (topics.settled, Event("birth-bbbb/settled/COMPLETED", "birth-bbbb", second, WHEN)),
        ],
    )
    argv = ["events", "tail", "dossier-settled", "--bootstrap", broker.bootstrap_servers]
    assert main([*argv, "--from-beginning", "--limit", "2"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert len(lines) == 2, captured.out
    by_key = {line.split(" ", 3)[1]: line.split(" ", 3) for line in lines}
    assert set(by_key) == {"birth-aaaa", "birth-bbbb"}
    when, _, kind, body = by_key["birth-aaaa"]
    assert when == "2026-11-30T08:15:00+00:00"
    assert kind == "vn.lienthong.dossier.settled.v1"
    # Compact JSON with the proto field names, every ID number masked.
    assert json.loads(body) == {
        "dossier": {
            "dossier_id": "birth-aaaa",
            "kind": "DOSSIER_KIND_BIRTH",
            "state": "DOSSIER_STATE_COMPLETED",
            "finished_at": "2026-11-30T08:15:00Z",
            "version": "7",
            "birth_declaration": {
                "child_full_name": "Nguyễn Văn An",
                "mother_id_number": "0011******45",
            },
            "birth_result": {"personal_id_number": "0793******23", "household_id": "HH-1"},
        }
    }
    assert ", " not in body and ": " not in body
    for whole in ("079301000123", "001190012345", "079302000456", "001190067890"):
        assert whole not in captured.out
    assert f"following {prefix}.dossier-settled (3 partitions)" in captured.err


def test_live_events_reach_a_tail_started_before_them(broker: RunningBroker, prefix: str) -> None:
    topics = Topics.with_prefix(prefix)
    older = _settled("birth-old", child_id="079301000999", mother_id="001190000111")
    _publish(
        broker.bootstrap_servers,
        [(topics.settled, Event("birth-old/settled/COMPLETED", "birth-old", older, WHEN))],
    )
    # The whole topic name, under another prefix than the environment's.
    argv = ["events", "tail", f"{prefix}.dossier-settled", "--limit", "1"]
    tail = subprocess.Popen(
        [sys.executable, "-m", "cli.main", *argv, "--bootstrap", broker.bootstrap_servers],
        cwd=ROOT,
        env={**os.environ, "LIENTHONG_TOPIC_PREFIX": "another-prefix"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # The tail says when its start positions are fixed: anything published
        # after that line must reach it, and what came before must not.
        assert tail.stderr is not None
        said = _line_within(tail.stderr, 30.0)
        assert "from now on" in said, said
        newer = ev.DossierSettled(
            dossier=gw.Dossier(dossier_id="death-cccc", state=gw.DOSSIER_STATE_REJECTED)
        )
        _publish(
            broker.bootstrap_servers,
            [(topics.settled, Event("death-cccc/settled/REJECTED", "death-cccc", newer, WHEN))],
        )
        out, err = tail.communicate(timeout=30)
    finally:
        tail.kill()
        tail.wait()
    assert tail.returncode == 0, err
    assert out.splitlines() == [
        "2026-11-30T08:15:00+00:00 death-cccc vn.lienthong.dossier.settled.v1 "
        '{"dossier":{"dossier_id":"death-cccc","state":"DOSSIER_STATE_REJECTED"}}'
    ]


def _line_within(stream: IO[str], seconds: float) -> str:
    """The next line of a child's pipe, waiting at most `seconds` for it."""
    selector = selectors.DefaultSelector()
    selector.register(stream, selectors.EVENT_READ)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            if selector.select(timeout=deadline - time.monotonic()):
                return stream.readline()
    finally:
        selector.close()
    raise AssertionError(f"no line within {seconds} s")


def test_a_dead_letter_shows_why(
    broker: RunningBroker, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # As the gateway's consumers set one aside: the original record, with
    # the reason and origin added.
    async def go() -> None:
        producer = make_producer(broker.bootstrap_servers)
        await producer.start()
        try:
            await producer.send_and_wait(
                f"{prefix}.deadletter",
                key=b"birth-dddd",
                value=b"\x08\x96\x01",
                headers=[
                    ("ce_id", b"birth-dddd/x"),
                    ("ce_type", b"vn.example.unknown.v9"),
                    ("ce_time", b"2026-11-30T08:15:00+00:00"),
                    ("ce_specversion", b"1.0"),
                    ("x-deadletter-reason", b"unknown ce_type vn.example.unknown.v9"),
                    ("x-deadletter-origin", f"{prefix}.dossiers/2/41".encode()),
                ],
            )
        finally:
            await producer.stop()

    asyncio.run(go())
    argv = ["events", "tail", "deadletter", "--from-beginning", "--limit", "1"]
    assert main([*argv, "--bootstrap", broker.bootstrap_servers]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "2026-11-30T08:15:00+00:00 birth-dddd vn.example.unknown.v9 "
        "(not decoded: unknown ce_type vn.example.unknown.v9) "
        f"(dead letter from {prefix}.dossiers/2/41: unknown ce_type vn.example.unknown.v9)"
    ]


def test_the_broker_of_the_running_stack_by_default(
    broker: RunningBroker,
    prefix: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # stack.json, as `lienthong up` writes it, says where the broker is.
    write_state(
        tmp_path,
        dataclasses.replace(StackState.defaults(), bootstrap_servers=broker.bootstrap_servers),
    )
    settled = ev.DossierSettled(dossier=gw.Dossier(dossier_id="birth-eeee", version=3))
    _publish(
        broker.bootstrap_servers,
        [(f"{prefix}.dossier-settled", Event("birth-eeee/settled/X", "birth-eeee", settled, WHEN))],
    )
    argv = ["events", "tail", "dossier-settled", "--from-beginning", "--limit", "1"]
    assert main([*argv, "--data-dir", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert captured.out.splitlines() == [
        "2026-11-30T08:15:00+00:00 birth-eeee vn.lienthong.dossier.settled.v1 "
        '{"dossier":{"dossier_id":"birth-eeee","version":"3"}}'
    ]
    assert f"({tmp_path / 'stack.json'})" in captured.err


def test_an_unknown_topic_is_bad_input(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["events", "tail", "dossiers-settled", "--bootstrap", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert "no gateway topic is called dossiers-settled" in err
    assert "dossier-settled" in err


def test_without_a_broker_it_says_where_it_looked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("KAFKA_BOOTSTRAP_SERVERS", raising=False)
    assert main(["events", "tail", "dossier-settled", "--data-dir", str(tmp_path)]) == 1
    assert f"no running stack in {tmp_path}" in capsys.readouterr().err
