"""The gateway's public API over real gRPC on loopback, with a real saga store
file: what it accepts and refuses, before anything reaches Kafka.

Kafka is stood in for by a producer that records what it is handed (the API's
whole contract with it: publish, wait for the acknowledgement). The saga is
driven by hand through the store, as the worker would, to bring a dossier to
NEEDS_SUPPLEMENT. The end-to-end tests cover the same API with a real broker.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

import grpc
import pytest
from aiokafka import AIOKafkaProducer

from common.clock import FixedClock
from common.server import RunningRegistry, ServiceBinding, start_registry
from gateway import saga
from gateway.api import GatewayServicer
from gateway.app import SERVICE_NAME
from gateway.events import Topics, decode
from gateway.kafka import send
from gateway.outbox import Outbox
from gateway.store import PendingEvent, SagaStore, open_saga_store
from lienthong.events.v1 import events_pb2 as ev
from lienthong.gateway.v1 import gateway_pb2 as g
from lienthong.gateway.v1 import gateway_pb2_grpc as gg
from tests.gateway.world import FACILITY, birth_form, death_form, new_family
from tests.grpc_errors import call_error

# 16:57 UTC is 23:57 in Vietnam: tomorrow there begins in three minutes.
NOW = dt.datetime(2025, 9, 15, 16, 57, tzinfo=dt.UTC)
TODAY = "2025-09-15"
TOMORROW = "2025-09-16"
BORN = "2025-09-13"
FAMILY = new_family(90)
PUBLISH_TIMEOUT = 0.2


class RecordingProducer:
    """Stands in for AIOKafkaProducer.send: records, acknowledges at once, or
    (`down`) keeps the record until `come_back()`, as aiokafka does while the
    broker is away."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Any]] = []
        self.down = False
        self.held: list[asyncio.Future[None]] = []

    async def send(
        self, topic: str, *, value: bytes, key: bytes, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[None]:
        self.sent.append((topic, decode(key, value, tuple(headers))))
        acknowledged: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.down:
            self.held.append(acknowledged)
        else:
            acknowledged.set_result(None)
        return acknowledged

    def come_back(self) -> None:
        self.down = False
        for future in self.held:
            future.set_result(None)
        self.held.clear()

    def event_ids(self) -> list[str]:
        return [event.event_id for _, event in self.sent]


class Gateway:
    def __init__(
        self, store: SagaStore, running: RunningRegistry, producer: RecordingProducer
    ) -> None:
        self.store = store
        self.running = running
        self.producer = producer
        self.channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
        self.stub = gg.GatewayServiceStub(self.channel)
        self.stopped = False

    async def stop(self) -> None:
        if self.stopped:
            return
        self.stopped = True
        await self.channel.close()
        await self.running.stop(None)
        await self.store.close()


Starter = Callable[..., Any]


@pytest.fixture
async def start_gateway(tmp_path: Path) -> AsyncIterator[Starter]:
    started: list[Gateway] = []

    async def _start(*, tolerance_seconds: float = 300, at: dt.datetime = NOW) -> Gateway:
        store = await open_saga_store(tmp_path / "gateway.sqlite3")
        producer = RecordingProducer()
        outbox = Outbox(store, timeout=PUBLISH_TIMEOUT)
        outbox.connect(lambda topic, event: send(cast(AIOKafkaProducer, producer), topic, event))
        servicer = GatewayServicer(
            store,
            outbox,
            Topics.with_prefix("test"),
            FixedClock(at),
            asyncio.Condition(),
            clock_tolerance=dt.timedelta(seconds=tolerance_seconds),
        )
        running = await start_registry(
            [ServiceBinding(servicer, gg.add_GatewayServiceServicer_to_server, SERVICE_NAME)]
        )
        gateway = Gateway(store, running, producer)
        started.append(gateway)
        return gateway

    yield _start
    for gateway in started:
        await gateway.stop()


async def submit_birth(gateway: Gateway, key: str, form: g.BirthDeclaration) -> str:
    answer = await gateway.stub.SubmitBirthDeclaration(
        g.SubmitBirthDeclarationRequest(idempotency_key=key, declaration=form)
    )
    return str(answer.dossier_id)


async def refused(call: Any) -> Any:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return call_error(raised.value)


async def awaiting_supplement(gateway: Gateway, **missing: object) -> str:
    """A birth dossier with fields left empty, taken by the saga to
    NEEDS_SUPPLEMENT as the worker would."""
    dossier_id = await submit_birth(gateway, "first", birth_form(FAMILY, BORN, **missing))
    submitted = gateway.producer.sent[-1][1].message
    await gateway.store.apply(
        PendingEvent(
            f"{dossier_id}/submitted",
            dossier_id,
            lambda current: saga.on_submitted(current, submitted, NOW),
        )
    )
    stored = await gateway.store.load(dossier_id)
    assert stored is not None and stored.state == g.DOSSIER_STATE_NEEDS_SUPPLEMENT
    return dossier_id


def supplement(dossier_id: str, key: str, **fields: Any) -> g.SupplementDossierRequest:
    return g.SupplementDossierRequest(
        dossier_id=dossier_id, idempotency_key=key, birth_declaration=g.BirthDeclaration(**fields)
    )


# --- One rule set per form: submissions and supplements alike -------------------


BAD_BIRTH_FIELDS = [
    ({"child_date_of_birth": "2024-02-30"}, "child_date_of_birth", "not a real date"),
    ({"child_date_of_birth": "2024-13-01"}, "child_date_of_birth", "not a real date"),
    ({"child_date_of_birth": "2025-10-01"}, "child_date_of_birth", "2025-10-01 is in the future"),
    ({"registration_province_code": "000"}, "registration_province_code", "000 is not a province"),
    ({"father_id_number": "000190000001"}, "father_id_number", "000, which is not a province"),
]


@pytest.mark.parametrize(("fields", "field", "words"), BAD_BIRTH_FIELDS)
async def test_a_birth_submission_with_an_impossible_value_is_refused(
    start_gateway: Starter, fields: dict[str, str], field: str, words: str
) -> None:
    gateway = await start_gateway()
    error = await refused(
        gateway.stub.SubmitBirthDeclaration(
            g.SubmitBirthDeclarationRequest(
                idempotency_key="k", declaration=birth_form(FAMILY, BORN, **fields)
            )
        )
    )
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert words in error.field_violations[f"declaration.{field}"]
    assert gateway.producer.sent == []


@pytest.mark.parametrize(("fields", "field", "words"), BAD_BIRTH_FIELDS)
async def test_a_supplement_with_an_impossible_value_is_refused_like_a_submission(
    start_gateway: Starter, fields: dict[str, str], field: str, words: str
) -> None:
    gateway = await start_gateway()
    dossier_id = await awaiting_supplement(gateway, ethnicity="")
    sent_before = len(gateway.producer.sent)
    error = await refused(
        gateway.stub.SupplementDossier(supplement(dossier_id, "s1", ethnicity="Tày", **fields))
    )
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert words in error.field_violations[f"birth_declaration.{field}"]
    assert len(gateway.producer.sent) == sent_before
    # Refused, so not recorded: the same key may carry the corrected supplement.
    await gateway.stub.SupplementDossier(supplement(dossier_id, "s1", ethnicity="Tày"))


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"date_of_death": "2023-02-29"}, "date_of_death", "not a real date"),
        ({"date_of_death": "2025-09-20"}, "date_of_death", "2025-09-20 is in the future"),
        ({"deceased_id_number": "000150000001"}, "deceased_id_number", "not a province"),
    ],
)
async def test_a_death_submission_with_an_impossible_value_is_refused(
    start_gateway: Starter, fields: dict[str, str], field: str, words: str
) -> None:
    gateway = await start_gateway()
    error = await refused(
        gateway.stub.SubmitDeathDeclaration(
            g.SubmitDeathDeclarationRequest(
                idempotency_key="k", declaration=death_form(FAMILY, "2025-09-14", **fields)
            )
        )
    )
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert words in error.field_violations[f"declaration.{field}"]


async def test_every_bad_field_is_named_at_once(start_gateway: Starter) -> None:
    gateway = await start_gateway()
    form = birth_form(
        FAMILY, "2031-01-01", registration_province_code="000", mother_id_number="999190000001"
    )
    error = await refused(
        gateway.stub.SubmitBirthDeclaration(
            g.SubmitBirthDeclarationRequest(idempotency_key="k", declaration=form)
        )
    )
    assert error.field_violations.keys() == {
        "declaration.child_date_of_birth",
        "declaration.registration_province_code",
        "declaration.mother_id_number",
    }


async def test_the_facility_code_is_left_to_the_hospital_registry(start_gateway: Starter) -> None:
    # Codes another agency owns are checked by that agency at its step.
    gateway = await start_gateway()
    assert FACILITY != "99999"
    await submit_birth(gateway, "k", birth_form(FAMILY, BORN, initial_facility_code="99999"))
    assert len(gateway.producer.sent) == 1


@pytest.mark.parametrize(("tolerance", "accepted"), [(300, True), (60, False)])
async def test_tomorrow_is_accepted_only_within_the_clock_tolerance(
    start_gateway: Starter, tolerance: float, accepted: bool
) -> None:
    # At 23:57 in Vietnam, tomorrow begins in 180 seconds.
    gateway = await start_gateway(tolerance_seconds=tolerance)
    call = gateway.stub.SubmitBirthDeclaration(
        g.SubmitBirthDeclarationRequest(
            idempotency_key="k", declaration=birth_form(FAMILY, TOMORROW)
        )
    )
    if accepted:
        await call
    else:
        error = await refused(call)
        assert error.field_violations == {
            "declaration.child_date_of_birth": f"{TOMORROW} is in the future"
        }


# --- Idempotent supplements -------------------------------------------------------


async def test_a_supplement_key_reused_for_another_body_is_refused_even_after_a_restart(
    start_gateway: Starter,
) -> None:
    gateway = await start_gateway()
    dossier_id = await awaiting_supplement(gateway, ethnicity="")
    await gateway.stub.SupplementDossier(supplement(dossier_id, "s1", ethnicity="Tày"))
    # The same supplement again: answered again; not published again, since
    # the outbox holds the broker's acknowledgement of the first.
    await gateway.stub.SupplementDossier(supplement(dossier_id, "s1", ethnicity="Tày"))
    expected_id = f"{dossier_id}/supplement/s1"
    assert gateway.producer.event_ids()[-1:] == [expected_id]
    assert gateway.producer.event_ids().count(expected_id) == 1
    error = await refused(
        gateway.stub.SupplementDossier(supplement(dossier_id, "s1", ethnicity="Nùng"))
    )
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "different supplement" in error.field_violations["idempotency_key"]

    await gateway.stop()
    restarted = await start_gateway()
    error = await refused(
        restarted.stub.SupplementDossier(supplement(dossier_id, "s1", ethnicity="Nùng"))
    )
    assert error.field_violations.keys() == {"idempotency_key"}
    await restarted.stub.SupplementDossier(supplement(dossier_id, "s1", ethnicity="Tày"))
    assert restarted.producer.event_ids() == []
    # Nothing but the first body ever reached Kafka.
    bodies = {
        event.message.birth_declaration.ethnicity
        for _, event in gateway.producer.sent + restarted.producer.sent
        if isinstance(event.message, ev.DossierSupplemented)
    }
    assert bodies == {"Tày"}


async def test_a_repeated_supplement_is_answered_after_the_dossier_moved_on(
    start_gateway: Starter,
) -> None:
    gateway = await start_gateway()
    dossier_id = await awaiting_supplement(gateway, ethnicity="")
    request = supplement(dossier_id, "s1", ethnicity="Tày")
    await gateway.stub.SupplementDossier(request)
    event = gateway.producer.sent[-1][1]
    await gateway.store.apply(
        PendingEvent(
            event.event_id,
            dossier_id,
            lambda current: saga.on_supplemented(current, event.message, NOW),
        )
    )
    stored = await gateway.store.load(dossier_id)
    assert stored is not None and stored.state == g.DOSSIER_STATE_IN_PROGRESS
    # A retry whose first answer was lost: the same answer, not a refusal.
    answer = await gateway.stub.SupplementDossier(request)
    assert answer.dossier_id == dossier_id
    # A new supplement now is refused: the dossier is no longer waiting.
    error = await refused(gateway.stub.SupplementDossier(supplement(dossier_id, "s2")))
    assert error.reason == "NOT_AWAITING_SUPPLEMENT"


# --- The broker away: stored, answered UNAVAILABLE, the same dossier on a retry ---


async def test_a_submission_the_broker_does_not_take_is_stored_and_answered_unavailable(
    start_gateway: Starter,
) -> None:
    gateway = await start_gateway()
    gateway.producer.down = True
    request = g.SubmitBirthDeclarationRequest(
        idempotency_key="k", declaration=birth_form(FAMILY, BORN)
    )
    error = await refused(gateway.stub.SubmitBirthDeclaration(request))
    assert error.code == grpc.StatusCode.UNAVAILABLE
    assert error.reason == "BROKER_UNAVAILABLE"
    dossier_id = error.metadata["dossier_id"]
    assert error.message == (
        f"the declaration is stored as dossier {dossier_id} and will be worked once the "
        "message broker is back; it is safe to send it again with the same idempotency key"
    )
    assert error.retry_delay == PUBLISH_TIMEOUT
    stored = await gateway.store.load(dossier_id)
    assert stored is not None and stored.state == g.DOSSIER_STATE_RECEIVED
    # A retry meanwhile: the same dossier, still UNAVAILABLE, nothing new stored.
    again = await refused(gateway.stub.SubmitBirthDeclaration(request))
    assert again.code == grpc.StatusCode.UNAVAILABLE
    assert again.metadata["dossier_id"] == dossier_id
    gateway.producer.come_back()
    answer = await gateway.stub.SubmitBirthDeclaration(request)
    assert answer.dossier_id == dossier_id
    # One event, one id, handed to the producer once: the retries waited on it.
    assert gateway.producer.event_ids() == [f"{dossier_id}/submitted"]
    assert await gateway.store.unpublished() == []


async def test_a_supplement_the_broker_does_not_take_is_stored_and_answered_unavailable(
    start_gateway: Starter,
) -> None:
    gateway = await start_gateway()
    dossier_id = await awaiting_supplement(gateway, ethnicity="")
    gateway.producer.down = True
    request = supplement(dossier_id, "s1", ethnicity="Tày")
    error = await refused(gateway.stub.SupplementDossier(request))
    assert error.code == grpc.StatusCode.UNAVAILABLE
    assert error.metadata == {"dossier_id": dossier_id}
    assert f"the supplement is stored with dossier {dossier_id}" in error.message
    assert [r.event.event_id for r in await gateway.store.unpublished()] == [
        f"{dossier_id}/supplement/s1"
    ]
    gateway.producer.come_back()
    assert (await gateway.stub.SupplementDossier(request)).dossier_id == dossier_id
    assert await gateway.store.unpublished() == []
