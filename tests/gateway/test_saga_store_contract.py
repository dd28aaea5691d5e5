"""The saga store's contract, held by both implementations: SQLite (a file in
tmp_path) and PostgreSQL (a fresh database on a real server). What one
store must do (each event applied once, a batch all or nothing, a settled
dossier announced once, submissions and supplements idempotent, the
outbox), and what two stores over one database (two gateways: two
connections, two pools) must do together: the fence, the version check,
each event applied once, one dossier per idempotency key.

Where a race is the point, the test makes it happen rather than hope for
it: a third connection holds a table the racing transactions need, the test
waits (with a deadline) until both are queued behind it (PostgreSQL shows
that in pg_locks), then lets them go. SQLite's single writer serialises
them anyway; there the same outcome is asserted without the set-up."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from common.errors import InvalidArgument
from gateway import saga
from gateway.events import Event
from gateway.leases import ReplacedError
from gateway.procedures import BIRTH
from gateway.store import (
    Announcement,
    Fence,
    PendingEvent,
    SagaStore,
    StaleDossierError,
    StaleOwnerError,
    open_saga_store,
)
from lienthong.events.v1 import events_pb2 as ev
from lienthong.gateway.v1 import gateway_pb2 as pb
from tests.gateway.test_saga import MONDAY, birth_dossier, outcome

TOPIC = "lienthong.dossiers"
WAIT_SECONDS = 10.0
Queued = Callable[..., Awaitable[None]]


@dataclass
class Backend:
    name: str
    location: str
    stores: list[SagaStore]

    async def open(self) -> SagaStore:
        """Another store over the same database: another gateway process."""
        store = await open_saga_store(self.location)
        self.stores.append(store)
        return store

    @asynccontextmanager
    async def holding(self, table: str) -> AsyncIterator[Queued]:
        """Hold `table` against writes; yields queued(n), which returns once n
        transactions wait for a lock (PostgreSQL; or once `unless()` holds),
        at once on SQLite."""
        if self.name == "sqlite":

            async def at_once(count: int, unless: Callable[[], bool] = lambda: False) -> None:
                return None

            yield at_once
            return
        async with await psycopg.AsyncConnection.connect(self.location) as conn:
            await conn.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE".encode())

            async def queued(count: int, unless: Callable[[], bool] = lambda: False) -> None:
                deadline = time.monotonic() + WAIT_SECONDS
                while not unless():
                    row = await (
                        await conn.execute(
                            "SELECT count(*) FROM pg_locks WHERE NOT granted "
                            "AND pid <> pg_backend_pid()"
                        )
                    ).fetchone()
                    assert row is not None
                    if row[0] >= count:
                        return
                    assert time.monotonic() < deadline, f"{count} waiters not seen"
                    await asyncio.sleep(0.01)

            yield queued
            await conn.rollback()


@pytest.fixture(params=["sqlite", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        location = str(tmp_path / "gateway.sqlite3")
    else:
        location = request.getfixturevalue("postgres_url")
    chosen = Backend(request.param, location, [])
    yield chosen
    for store in chosen.stores:
        await store.close()


@pytest.fixture
async def store(backend: Backend) -> SagaStore:
    return await backend.open()


def submitted(current: pb.Dossier | None) -> saga.Transition:
    return saga.on_submitted(current, ev.DossierSubmitted(dossier=birth_dossier()), MONDAY)


SUBMITTED = PendingEvent("birth-1/submitted", "birth-1", submitted)
# Another dossier, recorded from its event (nothing of the saga's).
BIRTH_2 = PendingEvent("birth-2/submitted", "birth-2", lambda _: (new_dossier("birth-2"), []))


def step_done(step: str) -> PendingEvent:
    return PendingEvent(
        f"birth-1/{step}/outcome",
        "birth-1",
        lambda current: saga.on_step_outcome(current, outcome(step), MONDAY),
    )


def noted(event_id: str, note: str) -> PendingEvent:
    """An event of the test's own: adds `note` to birth-1's rejection reason
    (a free-text field) and bumps the version, as every transition does."""

    def transition(current: pb.Dossier | None) -> saga.Transition:
        assert current is not None
        dossier = pb.Dossier()
        dossier.CopyFrom(current)
        dossier.rejection.reason += note
        dossier.version += 1
        return dossier, []

    return PendingEvent(event_id, "birth-1", transition)


def announced(dossier: pb.Dossier) -> Announcement:
    event = Event(
        f"{dossier.dossier_id}/submitted",
        dossier.dossier_id,
        ev.DossierSubmitted(dossier=dossier),
        MONDAY,
    )
    return TOPIC, event


def new_dossier(dossier_id: str) -> pb.Dossier:
    dossier = birth_dossier()
    dossier.dossier_id = dossier_id
    return dossier


async def unpublished_ids(store: SagaStore) -> list[str]:
    return [r.event.event_id for r in await store.unpublished()]


# --- one store ---------------------------------------------------------------------------


async def test_an_event_for_an_unrecorded_dossier_records_it_from_the_event(
    store: SagaStore,
) -> None:
    # The API may die after Kafka acknowledged the submission but before it
    # wrote the dossier: the saga must still take it up.
    applied = await store.apply(SUBMITTED)
    assert [c.step for c in applied.caused.commands] == ["verify_birth_certificate"]
    stored = await store.load("birth-1")
    assert applied.dossier == stored
    assert stored is not None and stored.state == pb.DOSSIER_STATE_IN_PROGRESS


async def test_a_redelivered_event_changes_nothing_and_resends_what_it_caused(
    store: SagaStore,
) -> None:
    first = await store.apply(SUBMITTED)
    version = await store.version("birth-1")
    again = await store.apply(SUBMITTED)
    assert again.caused == first.caused
    assert again.dossier is None
    assert await store.version("birth-1") == version


async def test_a_batch_is_applied_in_order_in_one_go(store: SagaStore) -> None:
    applied = await store.apply_all([SUBMITTED, step_done("verify_birth_certificate"), SUBMITTED])
    assert [c.step for c in applied[1].caused.commands] == ["register_birth"]
    # The same event twice in one batch: the second is a redelivery.
    assert applied[2].dossier is None and applied[2].caused == applied[0].caused
    stored = await store.load("birth-1")
    assert stored is not None and [s.state for s in stored.timeline] == [
        pb.STEP_STATE_SUCCEEDED,
        pb.STEP_STATE_RUNNING,
    ]
    assert await store.version("birth-1") == applied[1].dossier.version  # type: ignore[union-attr]


async def test_a_failing_batch_leaves_nothing_written(store: SagaStore) -> None:
    await store.apply(SUBMITTED)
    version = await store.version("birth-1")

    def broken(current: pb.Dossier | None) -> saga.Transition:
        raise StaleDossierError("birth-1")

    with pytest.raises(StaleDossierError):
        await store.apply_all(
            [
                step_done("verify_birth_certificate"),
                PendingEvent(
                    "birth-2/submitted", "birth-2", lambda _: (new_dossier("birth-2"), [])
                ),
                PendingEvent("birth-1/other", "birth-1", broken),
            ]
        )
    assert await store.version("birth-1") == version
    assert await store.load("birth-2") is None
    # Nothing was marked processed either: the redelivered events apply.
    assert (await store.apply(step_done("verify_birth_certificate"))).dossier is not None


async def test_the_event_that_settles_a_dossier_announces_it_once(store: SagaStore) -> None:
    events = [SUBMITTED, *(step_done(p.name) for p in BIRTH.steps if p.agency != "gateway")]
    applied = await store.apply_all(events)
    settled = [a.caused.settled.dossier.state for a in applied if a.caused.HasField("settled")]
    assert settled == [pb.DOSSIER_STATE_COMPLETED]
    # A redelivery of the last outcome re-announces it (the first send may
    # have been lost with the process); the repeat is the same event id.
    again = await store.apply(events[-1])
    assert again.caused.settled.dossier.state == pb.DOSSIER_STATE_COMPLETED


async def test_a_dossier_waiting_for_a_supplement_is_announced_and_swept(
    store: SagaStore,
) -> None:
    applied = await store.apply(
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
    assert await store.expired_supplements(MONDAY + dt.timedelta(days=3)) == []
    assert await store.expired_supplements(MONDAY + dt.timedelta(days=30)) == ["birth-1"]


async def test_a_submission_is_stored_with_its_event_once_per_key(store: SagaStore) -> None:
    def broken(dossier: pb.Dossier) -> Announcement:
        raise RuntimeError("the announcement failed")

    with pytest.raises(RuntimeError):
        await store.submit("k1", b"print", new_dossier("birth-k1"), broken)
    assert await store.load("birth-k1") is None
    first = await store.submit("k1", b"print", new_dossier("birth-k1"), announced)
    # A repeat with a new dossier id returns the first one, and stores its
    # announcement again only if it is gone (same event id: one row).
    again = await store.submit("k1", b"print", new_dossier("birth-other"), announced)
    assert again == first and await store.load("birth-other") is None
    assert await unpublished_ids(store) == ["birth-k1/submitted"]
    with pytest.raises(InvalidArgument, match="idempotency_key"):
        await store.submit("k1", b"another", new_dossier("birth-x"), announced)


async def test_a_supplement_is_accepted_with_its_event_once_per_key(store: SagaStore) -> None:
    event = Event("birth-1/supplement/s1", "birth-1", ev.DossierSupplemented(), MONDAY)
    assert not await store.supplement_accepted("birth-1", "s1", b"print")
    await store.accept_supplement("birth-1", "s1", b"print", (TOPIC, event))
    await store.accept_supplement("birth-1", "s1", b"print", (TOPIC, event))
    assert await store.supplement_accepted("birth-1", "s1", b"print")
    assert await unpublished_ids(store) == ["birth-1/supplement/s1"]
    with pytest.raises(InvalidArgument, match="idempotency_key"):
        await store.supplement_accepted("birth-1", "s1", b"another")
    with pytest.raises(InvalidArgument, match="idempotency_key"):
        await store.accept_supplement("birth-1", "s1", b"another", (TOPIC, event))


async def test_the_outbox_lists_marks_and_prunes(store: SagaStore) -> None:
    for n in range(3):
        await store.submit(f"k{n}", b"p", new_dossier(f"birth-k{n}"), announced)
    records = await store.unpublished()
    assert [r.event.event_id for r in records] == [f"birth-k{n}/submitted" for n in range(3)]
    assert records[0].event.message == ev.DossierSubmitted(dossier=new_dossier("birth-k0"))
    assert records[0].event.time == MONDAY
    chosen = await store.unpublished(event_ids=["birth-k2/submitted", "nothing"])
    assert [r.event.event_id for r in chosen] == ["birth-k2/submitted"]
    assert await store.unpublished(stored_before=time.time() - 60) == []
    assert len(await store.unpublished(limit=2)) == 2
    await store.mark_published([records[0].seq, records[1].seq])
    assert await unpublished_ids(store) == ["birth-k2/submitted"]
    assert await store.prune_published(time.time() - 60) == 0
    assert await store.prune_published(time.time() + 1) == 2


async def test_each_gateway_remembers_its_last_member_id_per_group(backend: Backend) -> None:
    store = await backend.open()
    assert await store.previous_member("gateway-a", "lienthong-saga") is None
    await store.remember_member("gateway-a", "lienthong-saga", "member-1")
    await store.remember_member("gateway-a", "lienthong-saga", "member-2")
    await store.remember_member("gateway-b", "lienthong-saga", "member-9")
    await store.remember_member("gateway-a", "lienthong-steps", "member-3")
    again = await backend.open()  # a restart reads it back
    assert await again.previous_member("gateway-a", "lienthong-saga") == "member-2"
    assert await again.previous_member("gateway-b", "lienthong-saga") == "member-9"
    assert await again.previous_member("gateway-a", "lienthong-steps") == "member-3"


async def test_a_closed_store_refuses_calls(backend: Backend) -> None:
    from gateway.store import StoreClosedError  # noqa: PLC0415

    store = await open_saga_store(backend.location)
    await store.close()
    with pytest.raises(StoreClosedError):
        await store.load("birth-1")


# --- partition leases (gateway/leases.py) -------------------------------------------------

LEASED = "lienthong.step-commands.population"
SESSION = 30.0  # seconds: long enough that no member goes stale by itself here


async def two_live_gateways(backend: Backend) -> tuple[SagaStore, SagaStore]:
    """gateway-a and gateway-b, each its own store over the database, both seen."""
    a, b = await backend.open(), await backend.open()
    await a.beat("gateway-a", SESSION)
    await b.beat("gateway-b", SESSION)
    return a, b


async def test_members_beat_and_see_each_other_until_one_leaves(backend: Backend) -> None:
    a, b = await backend.open(), await backend.open()
    assert await a.beat("gateway-a", SESSION) == ["gateway-a"]
    assert await b.beat("gateway-b", SESSION) == ["gateway-a", "gateway-b"]
    await a.leave("gateway-a")
    assert await b.beat("gateway-b", SESSION) == ["gateway-b"]


async def test_a_second_process_under_one_instance_id_takes_it_over(backend: Backend) -> None:
    first, second = await backend.open(), await backend.open()
    await first.beat("gateway-a", SESSION, incarnation="one", joining=True)
    assert await first.beat("gateway-a", SESSION, incarnation="one", joining=False) == ["gateway-a"]
    # Started under the same id (a restart, or a misconfigured twin): it joins.
    await second.beat("gateway-a", SESSION, incarnation="two", joining=True)
    with pytest.raises(ReplacedError):
        await first.beat("gateway-a", SESSION, incarnation="one", joining=False)
    assert await second.beat("gateway-a", SESSION, incarnation="two", joining=False) == [
        "gateway-a"
    ]


async def test_a_lease_is_held_by_one_live_member_and_taken_back_by_its_own(
    backend: Backend,
) -> None:
    a, b = await two_live_gateways(backend)
    assert await a.take(LEASED, 0, "gateway-a", SESSION)
    assert not await b.take(LEASED, 0, "gateway-b", SESSION)  # a is alive
    restarted = await backend.open()  # gateway-a again, after a kill
    assert await restarted.take(LEASED, 0, "gateway-a", SESSION)
    assert await b.held("gateway-b") == set()
    assert await restarted.held("gateway-a") == {(LEASED, 0)}


async def test_a_lease_given_up_or_left_is_free_for_the_next(backend: Backend) -> None:
    a, b = await two_live_gateways(backend)
    assert await a.take(LEASED, 0, "gateway-a", SESSION)
    assert await a.take(LEASED, 1, "gateway-a", SESSION)
    await b.give_up([(LEASED, 0)], "gateway-b")  # not b's: nothing happens
    assert not await b.take(LEASED, 0, "gateway-b", SESSION)
    await a.give_up([(LEASED, 0)], "gateway-a")
    assert await b.take(LEASED, 0, "gateway-b", SESSION)
    await a.leave("gateway-a")
    assert await b.take(LEASED, 1, "gateway-b", SESSION)
    assert await b.held("gateway-b") == {(LEASED, 0), (LEASED, 1)}


async def test_the_lease_of_a_member_not_seen_within_the_session_is_taken(
    backend: Backend,
) -> None:
    a, b = await backend.open(), await backend.open()
    await a.beat("gateway-a", SESSION)
    assert await a.take(LEASED, 0, "gateway-a", SESSION)
    deadline = time.monotonic() + WAIT_SECONDS
    # With a 50 ms session, a's one beat goes stale almost at once.
    while not await b.take(LEASED, 0, "gateway-b", 0.05):
        assert time.monotonic() < deadline, "a stale member's lease was never taken"
        await asyncio.sleep(0.01)
    assert await a.held("gateway-a") == set()


async def test_offsets_are_saved_only_by_the_holder(backend: Backend) -> None:
    a, b = await two_live_gateways(backend)
    assert await a.take(LEASED, 0, "gateway-a", SESSION)
    assert await b.take(LEASED, 1, "gateway-b", SESSION)
    assert await a.save_offsets("gateway-a", {(LEASED, 0): 42})
    assert not await a.save_offsets("gateway-a", {(LEASED, 0): 43, (LEASED, 1): 7})
    assert await b.offsets([(LEASED, 0), (LEASED, 1), (LEASED, 2)]) == {(LEASED, 0): 43}
    await a.give_up([(LEASED, 0)], "gateway-a")
    assert not await a.save_offsets("gateway-a", {(LEASED, 0): 50})
    assert await b.take(LEASED, 0, "gateway-b", SESSION)
    assert await b.offsets([(LEASED, 0)]) == {(LEASED, 0): 43}  # kept across holders


# --- two gateways, one database ----------------------------------------------------------


async def test_a_batch_is_stored_only_under_the_latest_claim_of_its_partition(
    backend: Backend,
) -> None:
    first, second = await backend.open(), await backend.open()
    old = await first.claim(TOPIC, 3, "gateway-a")
    new = await second.claim(TOPIC, 3, "gateway-b")
    assert new > old
    await second.apply_all([SUBMITTED], fence=Fence(TOPIC, 3, new))
    version = await second.version("birth-1")
    # The stale owner's batch (a change, a new dossier, a new event) is
    # refused whole.
    with pytest.raises(StaleOwnerError):
        await first.apply_all(
            [
                step_done("verify_birth_certificate"),
                PendingEvent(
                    "birth-2/submitted", "birth-2", lambda _: (new_dossier("birth-2"), [])
                ),
            ],
            fence=Fence(TOPIC, 3, old),
        )
    assert await first.version("birth-1") == version
    assert await first.load("birth-2") is None
    applied = await second.apply_all(
        [step_done("verify_birth_certificate")], fence=Fence(TOPIC, 3, new)
    )
    assert applied[0].dossier is not None  # not marked processed by the refused batch
    # A claim of another partition does not move this one's epoch; a claim
    # by either store does.
    await second.claim(TOPIC, 4, "gateway-a")
    assert await first.claim(TOPIC, 3, "gateway-a") == new + 1
    assert await second.claim(TOPIC, 3, "gateway-b") == new + 2


async def test_a_claim_waits_for_the_batch_in_flight_under_the_old_claim(
    backend: Backend,
) -> None:
    # Stored under a claim means: committed before any later claim returned.
    zombie, heir = await backend.open(), await backend.open()
    epoch = await zombie.claim(TOPIC, 3, "gateway-a")
    async with backend.holding("processed_events") as queued:
        batch = asyncio.create_task(zombie.apply_all([SUBMITTED], fence=Fence(TOPIC, 3, epoch)))
        await queued(1)
        claim = asyncio.create_task(heir.claim(TOPIC, 3, "gateway-b"))
        batch_done_at_claim: list[bool] = []
        claim.add_done_callback(lambda _: batch_done_at_claim.append(batch.done()))
        # The claim waits behind the batch (or, were it not to, is done).
        await queued(2, unless=claim.done)
    await asyncio.wait([batch, claim], timeout=WAIT_SECONDS)
    assert claim.result() == epoch + 1
    if batch.exception() is None:
        assert batch_done_at_claim == [True], "the batch committed after a later claim"
        assert await heir.load("birth-1") is not None
    else:
        assert isinstance(batch.exception(), StaleOwnerError)
        assert await heir.load("birth-1") is None


async def test_an_event_applied_by_one_gateway_is_a_redelivery_for_another(
    backend: Backend,
) -> None:
    first, second = await backend.open(), await backend.open()
    applied = await first.apply_all([SUBMITTED, step_done("verify_birth_certificate")])
    version = await first.version("birth-1")
    again = await second.apply(step_done("verify_birth_certificate"))
    assert again.dossier is None and again.caused == applied[1].caused
    assert await second.version("birth-1") == version


async def retried(store: SagaStore, event: PendingEvent) -> tuple[bool, list[str]]:
    """Apply as the worker does: a batch refused by a concurrent writer is
    tried again. Returns whether it was refused once, and what it caused."""
    try:
        applied = await store.apply(event)
        return False, [c.step for c in applied.caused.commands]
    except StaleDossierError:
        applied = await store.apply(event)
        return True, [c.step for c in applied.caused.commands]


async def test_one_event_applied_by_two_gateways_at_once_is_applied_once(
    backend: Backend,
) -> None:
    first, second = await backend.open(), await backend.open()
    await first.apply(SUBMITTED)
    version = await first.version("birth-1")
    event = step_done("verify_birth_certificate")
    async with backend.holding("processed_events") as queued:
        racing = asyncio.gather(retried(first, event), retried(second, event))
        await queued(2)
    (refused_a, caused_a), (refused_b, caused_b) = await racing
    assert caused_a == caused_b == ["register_birth"]
    assert await first.version("birth-1") == (version or 0) + 1
    stored = await first.load("birth-1")
    assert stored is not None and [s.state for s in stored.timeline] == [
        pb.STEP_STATE_SUCCEEDED,
        pb.STEP_STATE_RUNNING,
    ]
    if backend.name == "postgres":
        assert refused_a != refused_b  # both raced: exactly one was refused


async def test_two_gateways_changing_one_dossier_at_once_lose_neither_change(
    backend: Backend,
) -> None:
    # A zombie and the partition's new owner (no fences here): the version
    # check refuses the second writer, which applies on top once retried.
    first, second = await backend.open(), await backend.open()
    await first.apply(SUBMITTED)
    version = await first.version("birth-1")
    async with backend.holding("processed_events") as queued:
        racing = asyncio.gather(
            retried(first, noted("note-a", "a")), retried(second, noted("note-b", "b"))
        )
        await queued(2)
    await racing
    stored = await first.load("birth-1")
    assert stored is not None
    assert sorted(stored.rejection.reason) == ["a", "b"]
    assert stored.version == (version or 0) + 2


async def test_one_dossier_is_recorded_from_its_event_by_two_gateways_at_once(
    backend: Backend,
) -> None:
    first, second = await backend.open(), await backend.open()
    async with backend.holding("processed_events") as queued:
        racing = asyncio.gather(retried(first, SUBMITTED), retried(second, SUBMITTED))
        await queued(2)
    (_, caused_a), (_, caused_b) = await racing
    assert caused_a == caused_b == ["verify_birth_certificate"]
    assert await first.version("birth-1") == 2


async def test_concurrent_submits_with_one_key_make_one_dossier(backend: Backend) -> None:
    first, second = await backend.open(), await backend.open()
    async with backend.holding("outbox") as queued:
        racing = asyncio.gather(
            first.submit("k1", b"print", new_dossier("birth-a"), announced),
            second.submit("k1", b"print", new_dossier("birth-b"), announced),
        )
        await queued(2)
    one, other = await racing
    assert one.dossier_id == other.dossier_id
    assert {await first.load("birth-a") is None, await first.load("birth-b") is None} == {
        True,
        False,
    }
    assert await unpublished_ids(first) == [f"{one.dossier_id}/submitted"]


async def test_concurrent_supplements_with_one_key_are_accepted_once(backend: Backend) -> None:
    first, second = await backend.open(), await backend.open()
    event = Event("birth-1/supplement/s1", "birth-1", ev.DossierSupplemented(), MONDAY)
    async with backend.holding("outbox") as queued:
        racing = asyncio.gather(
            first.accept_supplement("birth-1", "s1", b"print", (TOPIC, event)),
            second.accept_supplement("birth-1", "s1", b"another", (TOPIC, event)),
            return_exceptions=True,
        )
        await queued(2)
    outcomes = await racing
    # The first to commit wins; the other key's print is refused.
    assert sum(isinstance(o, InvalidArgument) for o in outcomes) == 1
    assert await unpublished_ids(first) == ["birth-1/supplement/s1"]
