"""A gateway whose idempotency keys are forgotten fails the gateway kit's
idempotency rules. Our real gateway passes the kit in test_stack.py.

The variant is our API servicer over a real saga store and real gRPC, with
the broker stood in for by a producer that acknowledges at once (as in
tests/gateway/test_api.py): the submission rules need no saga."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaProducer

from common.clock import SystemClock
from common.server import ServiceBinding, start_registry
from conformance.contracts import CONTRACTS
from conformance.runner import run
from gateway.api import GatewayServicer
from gateway.app import SERVICE_NAME
from gateway.events import Topics
from gateway.kafka import send
from gateway.outbox import Outbox
from gateway.store import open_saga_store
from lienthong.gateway.v1 import gateway_pb2 as pb
from lienthong.gateway.v1 import gateway_pb2_grpc as pb_grpc
from tests.conformance.variants import failed


class AcknowledgingProducer:
    """AIOKafkaProducer.send's contract with the API: an acknowledgement."""

    async def send(self, topic: str, **record: Any) -> asyncio.Future[None]:
        acknowledged: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        acknowledged.set_result(None)
        return acknowledged


class KeyForgetting(GatewayServicer):
    """Every birth submission is filed under a key of its own."""

    async def SubmitBirthDeclaration(
        self, request: pb.SubmitBirthDeclarationRequest, context: Any
    ) -> pb.SubmitBirthDeclarationResponse:
        request.idempotency_key = f"{request.idempotency_key[:90]}-{uuid.uuid4().hex}"
        return await super().SubmitBirthDeclaration(request, context)


@pytest.fixture
async def forgetful_gateway(tmp_path: Path) -> AsyncIterator[str]:
    store = await open_saga_store(tmp_path / "gateway.sqlite3")
    outbox = Outbox(store, timeout=1.0)
    producer = cast(AIOKafkaProducer, AcknowledgingProducer())
    outbox.connect(lambda topic, event: send(producer, topic, event))
    servicer = KeyForgetting(
        store,
        outbox,
        Topics.with_prefix("conform"),
        SystemClock(),
        asyncio.Condition(),
        clock_tolerance=dt.timedelta(seconds=300),
    )
    running = await start_registry(
        [ServiceBinding(servicer, pb_grpc.add_GatewayServiceServicer_to_server, SERVICE_NAME)]
    )
    yield f"127.0.0.1:{running.port}"
    await running.stop(None)
    await store.close()


async def test_a_gateway_that_forgets_keys_fails_the_idempotency_rules(
    forgetful_gateway: str,
) -> None:
    rules = CONTRACTS["gateway"].select(["submit_birth_declaration"])
    broken = failed(await run(forgetful_gateway, rules))
    assert set(broken) == {
        "gateway.submit_birth_declaration.idempotent_repeat",
        "gateway.submit_birth_declaration.key_reused",
    }
    assert (
        "expected INVALID_ARGUMENT, got OK" in broken["gateway.submit_birth_declaration.key_reused"]
    )
