"""The feed's reading of the gateway's records: which topic means what, and
the outcome words, from records encoded as the gateway encodes them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from google.protobuf.message import Message

from cli.web.feed import Feed
from cli.web.hub import Hub
from cli.web.live import LiveState
from gateway.events import Event, Topics, encode
from lienthong.events.v1 import events_pb2 as ev
from lienthong.gateway.v1 import gateway_pb2 as gw

TOPICS = Topics.with_prefix("lienthong")
WHEN = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC)


@dataclass
class Record:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def record(topic: str, message: Message, seconds: float = 0.0) -> Record:
    key, value, headers = encode(Event("e", "d1", message, WHEN + dt.timedelta(seconds=seconds)))
    return Record(topic, key, value, headers)


def test_the_topics_move_a_dossier_and_the_outcome_words() -> None:
    live = LiveState(("health", "population", "insurance"), clock=lambda: WHEN.timestamp() + 1)
    feed = Feed("unused:9092", TOPICS, live, Hub())
    dossier = gw.Dossier(dossier_id="d1", kind=gw.DOSSIER_KIND_DEATH)
    feed.apply(record(TOPICS.dossiers, ev.DossierSubmitted(dossier=dossier)))
    changes = feed.apply(
        record(
            TOPICS.step_lanes["health"],
            ev.StepCommand(dossier_id="d1", step="verify_death_notice", dossier=dossier),
            0.1,
        )
    )
    assert changes[0][1]["current_agency"] == "health"
    assert changes[0][1]["procedure"] == "death"
    ended = feed.apply(
        record(
            TOPICS.step_outcomes,
            ev.StepOutcome(
                dossier_id="d1",
                step="verify_death_notice",
                agency="health",
                kind=ev.STEP_OUTCOME_KIND_REJECTED,
            ),
            0.15,
        )
    )
    assert ended[-1][1]["outcome"] == "refused" and ended[-1][1]["phase"] == "ended"
    settled = gw.Dossier(
        dossier_id="d1", kind=gw.DOSSIER_KIND_DEATH, state=gw.DOSSIER_STATE_REJECTED
    )
    feed.apply(record(TOPICS.settled, ev.DossierSettled(dossier=settled), 0.2))
    snapshot = live.snapshot()
    assert snapshot["counters"] == {"REJECTED": 1}
    # command at 0.1 s, outcome at 0.15 s: 50 ms.
    assert snapshot["agency_latency_ms"]["health"]["p50"] == 50.0
    # A record that does not decode is skipped, not a crash.
    assert feed.apply(Record(TOPICS.dossiers, b"d1", b"\xff", [])) == []
