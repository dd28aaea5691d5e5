"""The interceptor tells its observers (common.rpc.CallObserver) about every
call of the server's own services: the message log and the metrics build on
this. Real gRPC on loopback, the population registry on a real SQLite file."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from common.rpc import CallRecord
from common.server import start_registry
from lienthong.population.v1 import population_pb2 as pop
from lienthong.population.v1 import population_pb2_grpc as pop_grpc
from services.population.app import build

SERVICE = "lienthong.population.v1.PopulationRegistryService"


class Recorder:
    def __init__(self) -> None:
        self.records: list[CallRecord] = []

    def observe(self, record: CallRecord) -> None:
        self.records.append(record)


class Broken:
    def observe(self, record: CallRecord) -> None:
        raise RuntimeError("an observer's own bug")


@pytest.fixture
async def heard(tmp_path: Path) -> AsyncIterator[tuple[Recorder, grpc.aio.Channel]]:
    bindings, store = build(tmp_path / "population.sqlite3")
    recorder = Recorder()
    running = await start_registry(bindings, observers=[Broken(), recorder])
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    yield recorder, channel
    await channel.close()
    await running.stop(None)
    store.close()


async def test_an_answer_a_refusal_and_a_stream_are_each_one_record(
    heard: tuple[Recorder, grpc.aio.Channel],
) -> None:
    recorder, channel = heard
    stub = pop_grpc.PopulationRegistryServiceStub(channel)
    household = pop.Household(household_id="HK-OBS-1", address="1 Tràng Tiền", province_code="001")

    async def batches() -> AsyncIterator[pop.SeedPopulationRequest]:
        yield pop.SeedPopulationRequest(households=[household])
        yield pop.SeedPopulationRequest()

    # An observer that fails does not fail the call (Broken is heard first).
    await stub.SeedPopulation(batches())
    answer = await stub.GetHousehold(pop.GetHouseholdRequest(household_id="HK-OBS-1"))
    with pytest.raises(grpc.aio.AioRpcError):
        await stub.GetCitizen(pop.GetCitizenRequest(personal_id_number="001190999999"))
    # Probes are the library's, not the service's: not told.
    await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))

    seeded, got, refused = recorder.records
    assert seeded.method == f"/{SERVICE}/SeedPopulation"
    assert (seeded.service, seeded.method_name) == (SERVICE, "SeedPopulation")
    assert seeded.code == "OK" and seeded.request is not None and len(seeded.request) == 2
    assert got.code == "OK" and got.caller == "anonymous"
    assert got.request == [pop.GetHouseholdRequest(household_id="HK-OBS-1")]
    assert got.response == [answer]
    assert (refused.code, refused.reason) == ("NOT_FOUND", "CITIZEN_NOT_FOUND")
    assert refused.response is None
    assert all(r.duration_ms >= 0 and r.correlation_id for r in recorder.records)


async def test_bytes_that_do_not_decode_are_heard_without_a_request(
    heard: tuple[Recorder, grpc.aio.Channel],
) -> None:
    recorder, channel = heard
    raw: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
        f"/{SERVICE}/GetCitizen"
    )
    with pytest.raises(grpc.aio.AioRpcError):
        await raw(b"\x0a\x02\xff\xfe")
    [record] = recorder.records
    assert (record.code, record.reason, record.request) == (
        "INVALID_ARGUMENT",
        "REQUEST_NOT_DECODABLE",
        None,
    )
