"""What the gateway reads from its saga store at each scrape (gateway/metrics.py):
dossiers by state and the outbox's backlog, from a real store, SQLite or
PostgreSQL. The counts expected are the dossiers this test stores, by hand."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter

from gateway.events import Event
from gateway.metrics import StoreCollector
from gateway.store import PendingEvent, SagaStore, open_saga_store
from lienthong.events.v1 import events_pb2 as ev
from lienthong.gateway.v1 import gateway_pb2 as pb

NOW = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)


async def stored(store: SagaStore, dossier_id: str, state: pb.DossierState.ValueType) -> None:
    """The dossier moved to `state` by an event of its own."""
    dossier = pb.Dossier(dossier_id=dossier_id, state=state, version=1)
    event_id = f"{dossier_id}/{pb.DossierState.Name(state)}"
    await store.apply(PendingEvent(event_id, dossier_id, lambda _: (dossier, [])))


async def test_dossiers_by_state_and_the_outbox_backlog_are_read_at_each_scrape(
    store_location: str,
) -> None:
    store = await open_saga_store(store_location)
    try:
        await stored(store, "birth-1", pb.DOSSIER_STATE_COMPLETED)
        await stored(store, "birth-2", pb.DOSSIER_STATE_COMPLETED)
        await stored(store, "death-1", pb.DOSSIER_STATE_IN_PROGRESS)
        # A submission: stored RECEIVED with its announcement, not yet published.
        submitted = pb.Dossier(dossier_id="birth-3", state=pb.DOSSIER_STATE_RECEIVED)
        await store.submit(
            "key-3",
            b"print",
            submitted,
            lambda d: (
                "t.dossiers",
                Event("birth-3/submitted", "birth-3", ev.DossierSubmitted(dossier=d), NOW),
            ),
        )
        registry = CollectorRegistry()
        # Scraped here on the loop; a gateway scrapes on its HTTP server's thread.
        registry.register(StoreCollector(store_location))

        def dossiers(state: str) -> float | None:
            return registry.get_sample_value("lienthong_dossiers", {"state": state})

        assert dossiers("COMPLETED") == 2
        assert dossiers("IN_PROGRESS") == 1
        assert dossiers("RECEIVED") == 1
        # States nobody is in are there, at 0.
        assert dossiers("REJECTED") == 0
        assert dossiers("NEEDS_SUPPLEMENT") == 0
        assert registry.get_sample_value("lienthong_outbox_pending") == 1
        waited = registry.get_sample_value("lienthong_outbox_oldest_pending_seconds")
        assert waited is not None and waited >= 0

        # Read again at the next scrape: the store's word, not a count kept here.
        await store.mark_published([record.seq for record in await store.unpublished()])
        await stored(store, "death-1", pb.DOSSIER_STATE_REJECTED)
        assert registry.get_sample_value("lienthong_outbox_pending") == 0
        assert registry.get_sample_value("lienthong_outbox_oldest_pending_seconds") == 0
        assert (dossiers("IN_PROGRESS"), dossiers("REJECTED")) == (0, 1)
    finally:
        await store.close()


def test_a_store_that_cannot_be_read_leaves_the_rest_of_the_scrape(tmp_path: Path) -> None:
    not_a_store = tmp_path / "empty.sqlite3"
    registry = CollectorRegistry()
    registry.register(StoreCollector(not_a_store))
    Counter("lienthong_other", "Another metric of the process.", registry=registry).inc()
    assert registry.get_sample_value("lienthong_other_total") == 1
    assert registry.get_sample_value("lienthong_dossiers", {"state": "COMPLETED"}) is None


def test_a_postgres_store_that_cannot_be_reached_leaves_the_rest_of_the_scrape() -> None:
    registry = CollectorRegistry()
    # Port 1: nothing listens, the connection is refused at once.
    registry.register(StoreCollector("postgresql://gateway@127.0.0.1:1/saga"))
    Counter("lienthong_other", "Another metric of the process.", registry=registry).inc()
    assert registry.get_sample_value("lienthong_other_total") == 1
    assert registry.get_sample_value("lienthong_dossiers", {"state": "COMPLETED"}) is None
