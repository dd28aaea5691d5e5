"""The saga store on a real SQLite file: each event applied once."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from gateway import saga
from gateway.store import DossierStore
from lienthong.events.v1 import events_pb2 as ev
from lienthong.gateway.v1 import gateway_pb2 as pb
from tests.gateway.test_saga import MONDAY, birth_dossier


def submitted(current: pb.Dossier | None) -> saga.Transition:
    return saga.on_submitted(current, ev.DossierSubmitted(dossier=birth_dossier()), MONDAY)


def test_an_event_for_an_unrecorded_dossier_records_it_from_the_event(tmp_path: Path) -> None:
    # The API may die after Kafka acknowledged the submission but before it
    # wrote the dossier: the saga must still take it up.
    store = DossierStore(tmp_path / "gateway.sqlite3")
    caused, now_stands = store.apply("birth-1/submitted", "birth-1", submitted)
    assert [c.step for c in caused] == ["verify_birth_certificate"]
    assert now_stands == store.load("birth-1")
    stored = store.load("birth-1")
    assert stored is not None and stored.state == pb.DOSSIER_STATE_IN_PROGRESS


def test_a_redelivered_event_changes_nothing_and_resends_what_it_caused(tmp_path: Path) -> None:
    store = DossierStore(tmp_path / "gateway.sqlite3")
    first = store.apply("birth-1/submitted", "birth-1", submitted)
    version = store.version("birth-1")
    again = store.apply("birth-1/submitted", "birth-1", submitted)
    assert again[0] == first[0]
    assert store.version("birth-1") == version


def test_supplement_due_dates_are_found_by_the_sweeper(tmp_path: Path) -> None:
    store = DossierStore(tmp_path / "gateway.sqlite3")
    store.apply(
        "birth-1/submitted",
        "birth-1",
        lambda current: saga.on_submitted(
            current, ev.DossierSubmitted(dossier=birth_dossier(ethnicity="")), MONDAY
        ),
    )
    assert store.expired_supplements(MONDAY + dt.timedelta(days=3)) == []
    assert store.expired_supplements(MONDAY + dt.timedelta(days=30)) == ["birth-1"]
