"""The saga store on a real SQLite file: each event applied once, a batch
all or nothing, and a settled dossier announced once."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from gateway import saga
from gateway.procedures import BIRTH
from gateway.store import DossierStore, Fence, PendingEvent, StaleDossierError, StaleOwnerError
from lienthong.events.v1 import events_pb2 as ev
from lienthong.gateway.v1 import gateway_pb2 as pb
from tests.gateway.test_saga import MONDAY, birth_dossier, outcome


def submitted(current: pb.Dossier | None) -> saga.Transition:
    return saga.on_submitted(current, ev.DossierSubmitted(dossier=birth_dossier()), MONDAY)


SUBMITTED = PendingEvent("birth-1/submitted", "birth-1", submitted)


def step_done(step: str) -> PendingEvent:
    return PendingEvent(
        f"birth-1/{step}/outcome",
        "birth-1",
        lambda current: saga.on_step_outcome(current, outcome(step), MONDAY),
    )


def test_an_event_for_an_unrecorded_dossier_records_it_from_the_event(tmp_path: Path) -> None:
    # The API may die after Kafka acknowledged the submission but before it
    # wrote the dossier: the saga must still take it up.
    store = DossierStore(tmp_path / "gateway.sqlite3")
    applied = store.apply(SUBMITTED)
    assert [c.step for c in applied.caused.commands] == ["verify_birth_certificate"]
    assert applied.dossier == store.load("birth-1")
    stored = store.load("birth-1")
    assert stored is not None and stored.state == pb.DOSSIER_STATE_IN_PROGRESS


def test_a_redelivered_event_changes_nothing_and_resends_what_it_caused(tmp_path: Path) -> None:
    store = DossierStore(tmp_path / "gateway.sqlite3")
    first = store.apply(SUBMITTED)
    version = store.version("birth-1")
    again = store.apply(SUBMITTED)
    assert again.caused == first.caused
    assert again.dossier is None
    assert store.version("birth-1") == version


def test_a_batch_is_applied_in_order_in_one_go(tmp_path: Path) -> None:
    store = DossierStore(tmp_path / "gateway.sqlite3")
    applied = store.apply_all([SUBMITTED, step_done("verify_birth_certificate")])
    assert [c.step for c in applied[1].caused.commands] == ["register_birth"]
    stored = store.load("birth-1")
    assert stored is not None and [s.state for s in stored.timeline] == [
        pb.STEP_STATE_SUCCEEDED,
        pb.STEP_STATE_RUNNING,
    ]


def test_a_failing_batch_leaves_nothing_written(tmp_path: Path) -> None:
    store = DossierStore(tmp_path / "gateway.sqlite3")

    def stale(current: pb.Dossier | None) -> saga.Transition:
        raise StaleDossierError("birth-1")

    with pytest.raises(StaleDossierError):
        store.apply_all([SUBMITTED, PendingEvent("birth-1/other", "birth-1", stale)])
    assert store.load("birth-1") is None
    # Nothing was marked processed either: the redelivered batch applies.
    assert store.apply(SUBMITTED).dossier is not None


def test_the_event_that_settles_a_dossier_announces_it_once(tmp_path: Path) -> None:
    store = DossierStore(tmp_path / "gateway.sqlite3")
    events = [SUBMITTED, *(step_done(p.name) for p in BIRTH.steps if p.agency != "gateway")]
    applied = store.apply_all(events)
    announced = [a.caused.settled.dossier.state for a in applied if a.caused.HasField("settled")]
    assert announced == [pb.DOSSIER_STATE_COMPLETED]
    # A redelivery of the last outcome re-announces it (the first send may
    # have been lost with the process); the repeat is the same event id.
    again = store.apply(events[-1])
    assert again.caused.settled.dossier.state == pb.DOSSIER_STATE_COMPLETED


def test_a_dossier_waiting_for_a_supplement_is_announced(tmp_path: Path) -> None:
    store = DossierStore(tmp_path / "gateway.sqlite3")
    applied = store.apply(
        PendingEvent(
            "birth-1/submitted",
            "birth-1",
            lambda current: saga.on_submitted(
                current, ev.DossierSubmitted(dossier=birth_dossier(ethnicity="")), MONDAY
            ),
        )
    )
    assert applied.caused.settled.dossier.state == pb.DOSSIER_STATE_NEEDS_SUPPLEMENT
    assert list(applied.caused.settled.dossier.supplement.missing_fields) == ["ethnicity"]


def test_supplement_due_dates_are_found_by_the_sweeper(tmp_path: Path) -> None:
    store = DossierStore(tmp_path / "gateway.sqlite3")
    store.apply(
        PendingEvent(
            "birth-1/submitted",
            "birth-1",
            lambda current: saga.on_submitted(
                current, ev.DossierSubmitted(dossier=birth_dossier(ethnicity="")), MONDAY
            ),
        )
    )
    assert store.expired_supplements(MONDAY + dt.timedelta(days=3)) == []
    assert store.expired_supplements(MONDAY + dt.timedelta(days=30)) == ["birth-1"]


def test_a_batch_is_stored_only_under_the_latest_claim_of_its_partition(tmp_path: Path) -> None:
    # Two gateway processes share the file: the one that claimed the
    # partition last is its only writer; the other's batch is refused whole.
    first = DossierStore(tmp_path / "gateway.sqlite3")
    second = DossierStore(tmp_path / "gateway.sqlite3")
    old = first.claim("lienthong.dossiers", 3, "gateway-a")
    new = second.claim("lienthong.dossiers", 3, "gateway-b")
    assert new > old
    with pytest.raises(StaleOwnerError):
        first.apply_all([SUBMITTED], fence=Fence("lienthong.dossiers", 3, old))
    assert first.load("birth-1") is None
    second.apply_all([SUBMITTED], fence=Fence("lienthong.dossiers", 3, new))
    assert second.load("birth-1") is not None
    # A claim of another partition does not move this one's epoch.
    second.claim("lienthong.dossiers", 4, "gateway-a")
    assert second.claim("lienthong.dossiers", 3, "gateway-b") == new + 1


def test_each_gateway_remembers_its_last_member_id_per_group(tmp_path: Path) -> None:
    store = DossierStore(tmp_path / "gateway.sqlite3")
    assert store.previous_member("gateway-a", "lienthong-saga") is None
    store.remember_member("gateway-a", "lienthong-saga", "member-1")
    store.remember_member("gateway-a", "lienthong-saga", "member-2")
    store.remember_member("gateway-b", "lienthong-saga", "member-9")
    store.remember_member("gateway-a", "lienthong-steps", "member-3")
    again = DossierStore(tmp_path / "gateway.sqlite3")  # a restart reads it back
    assert again.previous_member("gateway-a", "lienthong-saga") == "member-2"
    assert again.previous_member("gateway-b", "lienthong-saga") == "member-9"
    assert again.previous_member("gateway-a", "lienthong-steps") == "member-3"
