"""The gateway through a Kafka outage, end to end: real processes, a real
broker stopped and started again on its port (LIENTHONG_TEST_BROKER chooses
which, as in test_end_to_end.py), effects counted in the registries' files.

The embedded broker keeps nothing across a restart: its topics come back
empty and their offsets start again from 0, behind where a running consumer
stands, which no Kafka client expects (a real Kafka never rewinds). So a
gateway riding out an outage is tested on Apache Kafka only; a gateway
started while the broker is down, on both.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Iterator

import grpc
import pytest

from cli.stack import Stack
from common.healthcheck import probe
from lienthong.gateway.v1 import gateway_pb2 as g
from tests.gateway.test_end_to_end import (
    BORN,
    DIED,
    births_recorded,
    broker_kind,
    finished,
    gateway,
    read_log,
    submit_birth,
)
from tests.gateway.world import birth_form, new_family, seed_families
from tests.grpc_errors import call_error

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.slow,
    pytest.mark.timeout(300),
    pytest.mark.skipif(
        broker_kind() not in ("embedded", "apache"),
        reason="only a broker the stack runs can be stopped and started again",
    ),
]
# Whether what the broker holds survives its restart (apache keeps its data folder).
KEEPS_RECORDS = broker_kind() == "apache"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack(
        broker=broker_kind(),
        gateway_env={
            "LIENTHONG_RETRY_CAP_SECONDS": "0.5",
            "LIENTHONG_CALL_DEADLINE_SECONDS": "2",
            # A submission the broker does not take is answered after 1 s.
            "LIENTHONG_PUBLISH_TIMEOUT_SECONDS": "1",
        },
    ) as running:
        yield running


def unpublished(stack: Stack) -> int:
    """Events the gateway's outbox holds and the broker has not acknowledged."""
    with sqlite3.connect(f"file:{stack.data_dir / 'gateway.sqlite3'}?mode=ro", uri=True) as conn:
        return int(
            conn.execute("SELECT COUNT(*) FROM outbox WHERE published_at IS NULL").fetchone()[0]
        )


@pytest.mark.skipif(not KEEPS_RECORDS, reason="the embedded broker forgets its topics when stopped")
async def test_submissions_during_an_outage_are_kept_and_all_complete_once_the_broker_is_back(
    stack: Stack, channels: dict[str, grpc.aio.Channel]
) -> None:
    families = [new_family(30) for _ in range(8)]
    await seed_families(channels, families, born=BORN, died=DIED)
    stub = gateway(channels)
    before = await submit_birth(stub, "outage-before", birth_form(families[0], BORN))
    assert (await finished(stub, before)).state == g.DOSSIER_STATE_COMPLETED

    # The broker stops while submissions keep coming: the one in flight
    # then may be answered either way; every one after it UNAVAILABLE.
    stopping = asyncio.create_task(asyncio.to_thread(stack.stop_broker))
    answers: dict[str, tuple[grpc.StatusCode, str]] = {}
    for n, family in enumerate(families[1:]):
        key = f"outage-{n}"
        try:
            dossier_id = await submit_birth(stub, key, birth_form(family, BORN))
            answers[key] = (grpc.StatusCode.OK, dossier_id)
        except grpc.aio.AioRpcError as failure:
            error = call_error(failure)
            assert error.code == grpc.StatusCode.UNAVAILABLE, error
            assert error.reason == "BROKER_UNAVAILABLE"
            assert "safe to send it again with the same idempotency key" in error.message
            answers[key] = (error.code, error.metadata["dossier_id"])
        if n == 0:
            await stopping  # the rest are all made while the broker is down
    unavailable = {k: d for k, (code, d) in answers.items() if code != grpc.StatusCode.OK}
    assert len(unavailable) >= len(families) - 2, answers
    # Stored, not lost: the gateway knows each, and a retry with the same
    # key names the same dossier (still UNAVAILABLE while the broker is down).
    for dossier_id in unavailable.values():
        dossier = (await stub.GetDossier(g.GetDossierRequest(dossier_id=dossier_id))).dossier
        assert dossier.state == g.DOSSIER_STATE_RECEIVED
    key, retried = next(iter(unavailable.items()))
    retry = families[1 + int(key.rsplit("-", 1)[1])]
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await submit_birth(stub, key, birth_form(retry, BORN))
    assert call_error(raised.value).metadata["dossier_id"] == retried
    assert unpublished(stack) >= len(unavailable)

    await asyncio.to_thread(stack.start_broker_again)
    # No client retries: the relay publishes them all, and each completes.
    for _, dossier_id in answers.values():
        done = await finished(stub, dossier_id, within=120)
        assert done.state == g.DOSSIER_STATE_COMPLETED, done
    assert births_recorded(stack, families) == (len(families),) * 3
    assert unpublished(stack) == 0
    # The retry now: the same dossier, OK.
    assert await submit_birth(stub, key, birth_form(retry, BORN)) == retried
    # Who published them (the relay, or the producer's own retry of a record
    # it still held) depends on timing, so it is not asserted here: the
    # relay's own tests (tests/gateway/test_outbox.py) and the gateway-killed
    # test below, where only the relay can, show it publishes.


def gateway_log_since_start(stack: Stack) -> str:
    """The gateway's log since its last start (restarts append to the file)."""
    return read_log(stack, "gateway").split("--- lienthong stack: starting gateway")[-1]


async def wait_not_serving_and_waiting(stack: Stack) -> None:
    """Until the gateway just started answers NOT_SERVING and has tried Kafka
    and backed off a few times, alive all along."""
    address = stack.address("gateway")
    deadline = time.monotonic() + 60
    while (answer := probe(address, tls=stack.tls())) is None or "NOT_SERVING" not in answer:
        assert answer is not None, "SERVING without a broker"
        assert stack.pid("gateway") is not None, gateway_log_since_start(stack)[-3000:]
        assert time.monotonic() < deadline, answer
        await asyncio.sleep(0.1)
    while gateway_log_since_start(stack).count('"event": "waiting"') < 3:
        assert stack.pid("gateway") is not None, gateway_log_since_start(stack)[-3000:]
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)
    assert "NOT_SERVING" in (probe(address, tls=stack.tls()) or "")


async def test_a_gateway_started_while_the_broker_is_down_waits_then_serves(
    stack: Stack, channels: dict[str, grpc.aio.Channel]
) -> None:
    families = [new_family(31) for _ in range(2)]
    await seed_families(channels, families, born=BORN, died=DIED)
    stub = gateway(channels)
    # An agency down at the start too: it must not hold the gateway up.
    stack.stop_component("gateway")
    stack.stop_component("insurance")
    await asyncio.to_thread(stack.stop_broker)
    try:
        stack.start_component("gateway", wait=False)
        await wait_not_serving_and_waiting(stack)
        # A submission meanwhile is stored and answered UNAVAILABLE at once...
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await submit_birth(stub, "before-kafka", birth_form(families[0], BORN))
        error = call_error(raised.value)
        assert error.code == grpc.StatusCode.UNAVAILABLE, error
        stored = error.metadata["dossier_id"]
        # ...and survives the gateway's death: only the outbox holds it now
        # (no producer ever had it), and the next gateway's relay publishes it.
        stack.kill("gateway")
        stack.start_component("gateway", wait=False)
        await wait_not_serving_and_waiting(stack)
    finally:
        await asyncio.to_thread(stack.start_broker_again)
    await asyncio.to_thread(stack.wait_serving, "gateway")
    log = gateway_log_since_start(stack)
    assert '"event": "done waiting"' in log
    assert "component crashed" not in log

    stack.start_component("insurance")
    assert (await finished(stub, stored)).state == g.DOSSIER_STATE_COMPLETED
    dossier_id = await submit_birth(stub, "after-kafka", birth_form(families[1], BORN))
    assert (await finished(stub, dossier_id)).state == g.DOSSIER_STATE_COMPLETED
    assert births_recorded(stack, families) == (2, 2, 2)
    assert unpublished(stack) == 0
