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


def step(name: str, agency: str, state: int, finished_s: float | None = None) -> gw.Step:
    timeline = gw.Step(name=name, agency=agency, state=state)  # type: ignore[arg-type]
    if finished_s is not None:
        timeline.finished_at.FromDatetime(WHEN + dt.timedelta(seconds=finished_s))
    return timeline


def test_a_step_handled_in_the_gateways_process_ends_by_the_dossiers_timeline() -> None:
    # Its outcome never reaches step-outcomes (gateway/local_outcomes.py): the
    # next command's dossier, then the settled one, say the step is over.
    live = LiveState(("health", "population", "insurance"), clock=lambda: WHEN.timestamp() + 1)
    feed = Feed("unused:9092", TOPICS, live, Hub())
    verify = ("verify_birth_certificate", "health")
    register = ("register_birth", "population")
    first = gw.Dossier(
        dossier_id="d1",
        kind=gw.DOSSIER_KIND_BIRTH,
        timeline=[step(*verify, gw.STEP_STATE_RUNNING)],
    )
    feed.apply(record(TOPICS.dossiers, ev.DossierSubmitted(dossier=first)))
    feed.apply(
        record(TOPICS.step_lanes["health"], ev.StepCommand(step=verify[0], dossier=first), 0.1)
    )
    assert live.snapshot()["active_steps"] == {"health": 1, "population": 0, "insurance": 0}
    second = gw.Dossier(
        dossier_id="d1",
        kind=gw.DOSSIER_KIND_BIRTH,
        timeline=[
            step(*verify, gw.STEP_STATE_SUCCEEDED, 0.14),
            step(*register, gw.STEP_STATE_RUNNING),
        ],
    )
    changes = feed.apply(
        record(
            TOPICS.step_lanes["population"], ev.StepCommand(step=register[0], dossier=second), 0.2
        )
    )
    ended = [c[1] for c in changes if c[0] == "step" and c[1]["phase"] == "ended"]
    assert [(e["step"], e["outcome"]) for e in ended] == [("verify_birth_certificate", "done")]
    assert live.snapshot()["active_steps"] == {"health": 0, "population": 1, "insurance": 0}
    # Read again (a redelivery, or the next command's timeline): ended once.
    again = feed.apply(
        record(
            TOPICS.step_lanes["population"], ev.StepCommand(step=register[0], dossier=second), 0.2
        )
    )
    assert not [c for c in again if c[0] == "step" and c[1]["phase"] == "ended"]
    settled = gw.Dossier(
        dossier_id="d1",
        kind=gw.DOSSIER_KIND_BIRTH,
        state=gw.DOSSIER_STATE_REJECTED,
        timeline=[
            step(*verify, gw.STEP_STATE_SUCCEEDED, 0.14),
            step(*register, gw.STEP_STATE_REJECTED, 0.26),
            step("deliver_result", "gateway", gw.STEP_STATE_SUCCEEDED, 0.27),
        ],
    )
    changes = feed.apply(record(TOPICS.settled, ev.DossierSettled(dossier=settled), 0.3))
    ended = [c[1] for c in changes if c[0] == "step" and c[1]["phase"] == "ended"]
    # The gateway's own step was never commanded: no end for it.
    assert [(e["step"], e["outcome"]) for e in ended] == [("register_birth", "refused")]
    snapshot = live.snapshot()
    # From each command to the end its timeline gives: 40 ms and 60 ms.
    assert snapshot["agency_latency_ms"]["health"]["p50"] == 40.0
    assert snapshot["agency_latency_ms"]["population"]["p50"] == 60.0
