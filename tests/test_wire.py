"""At the wire (common/rpc.py's interceptor, shared by every server): bytes
that do not decode, and values too long to quote, on real gRPC over loopback.

Raw bytes go through channels with no serializer, so they reach the server
exactly as written here.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterator, MutableMapping
from pathlib import Path
from typing import Any, cast

import grpc
import pytest
import structlog
from structlog.testing import capture_logs

import common.rpc
from common.clock import SystemClock
from common.quoting import quote
from common.server import ServiceBinding, start_registry
from gateway.api import GatewayServicer
from gateway.events import Topics
from gateway.store import open_saga_store
from lienthong.common.v1.common_pb2 import SEX_FEMALE
from lienthong.gateway.v1 import gateway_pb2 as gw
from lienthong.gateway.v1 import gateway_pb2_grpc as gw_grpc
from lienthong.insurance.v1 import insurance_pb2 as ins
from lienthong.insurance.v1 import insurance_pb2_grpc as ins_grpc
from lienthong.population.v1 import population_pb2 as pop
from services.insurance.app import build as build_insurance
from services.population.app import build as build_population
from tests.grpc_errors import call_error

POPULATION = "/lienthong.population.v1.PopulationRegistryService"
# A string field (tag 1, length 2) holding bytes that are not UTF-8: no
# proto3 message decodes from it.
NOT_UTF8 = b"\x0a\x02\xff\xfe"
MEGABYTE = "9" * 1_000_000


@pytest.fixture(autouse=True)
def capturable_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A test of the suite that ran configure_logging (quiet: warnings only,
    loggers cached on first use) leaves the interceptor's info lines out of
    capture_logs' reach: the defaults and a fresh logger for each test here."""
    saved = structlog.get_config()
    structlog.reset_defaults()
    monkeypatch.setattr(common.rpc, "log", structlog.get_logger("rpc"))
    yield
    structlog.configure(**saved)


def rpc_lines(logs: list[MutableMapping[str, Any]]) -> list[MutableMapping[str, Any]]:
    return [line for line in logs if line["event"] == "rpc"]


def no_traceback(line: MutableMapping[str, Any]) -> bool:
    return line.get("log_level") != "error" and "exc_info" not in line and "exception" not in line


def citizens(database: Path) -> int:
    with sqlite3.connect(database) as conn:
        count: int = conn.execute("SELECT count(*) FROM citizens").fetchone()[0]
    return count


async def test_bytes_that_do_not_decode_to_a_unary_rpc_are_an_invalid_argument(
    start: Callable[..., Any],
) -> None:
    registry = await start(build_population)
    get_citizen = registry.channel.unary_unary(f"{POPULATION}/GetCitizen")
    with capture_logs() as logs, pytest.raises(grpc.aio.AioRpcError) as caught:
        await get_citizen(NOT_UTF8)
    error = call_error(caught.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.message == "the request is not a valid lienthong.population.v1.GetCitizenRequest"
    assert error.reason == "REQUEST_NOT_DECODABLE"
    lines = rpc_lines(logs)
    assert len(logs) == len(lines) == 1
    assert lines[0]["code"] == "INVALID_ARGUMENT"
    assert no_traceback(lines[0])


async def test_a_stream_message_that_does_not_decode_refuses_the_stream_and_stores_nothing(
    start: Callable[..., Any], tmp_path: Path
) -> None:
    database = tmp_path / "population.sqlite3"
    registry = await start(build_population, database)
    good = pop.SeedPopulationRequest(
        citizens=[
            pop.Citizen(
                personal_id_number="001190000001",
                full_name="Nguyễn Thị Lan",
                sex=SEX_FEMALE,
                date_of_birth="1990-04-12",
                place_of_birth="Hà Nội",
                ethnicity="Kinh",
                nationality="Việt Nam",
                registration_province_code="001",
            )
        ]
    ).SerializeToString()

    async def stream() -> AsyncIterator[bytes]:
        yield good
        yield NOT_UTF8

    seed = registry.channel.stream_unary(f"{POPULATION}/SeedPopulation")
    with capture_logs() as logs, pytest.raises(grpc.aio.AioRpcError) as caught:
        await seed(stream())
    error = call_error(caught.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.message == (
        "message 1 of the stream is not a valid lienthong.population.v1.SeedPopulationRequest"
    )
    assert error.reason == "REQUEST_NOT_DECODABLE"
    assert error.field_violations == {
        "message[1]": "is not a valid lienthong.population.v1.SeedPopulationRequest"
    }
    assert len(logs) == 1
    assert no_traceback(logs[0])
    # The good first message was not stored either: all or nothing.
    assert citizens(database) == 0


async def test_the_standard_health_check_refuses_bytes_that_do_not_decode(
    start: Callable[..., Any],
) -> None:
    registry = await start(build_population)
    check = registry.channel.unary_unary("/grpc.health.v1.Health/Check")
    with capture_logs() as logs, pytest.raises(grpc.aio.AioRpcError) as caught:
        await check(NOT_UTF8)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == "the request is not a valid grpc.health.v1.HealthCheckRequest"
    assert [no_traceback(line) for line in logs] == [True]


@pytest.fixture
async def gateway_api(tmp_path: Path) -> AsyncIterator[grpc.aio.Channel]:
    """The gateway's API alone: WatchDossier and GetDossier read the saga
    store and never touch Kafka, so no producer is needed for them."""
    store = await open_saga_store(tmp_path / "gateway.sqlite3")
    servicer = GatewayServicer(
        store, cast(Any, None), Topics.with_prefix("t"), SystemClock(), asyncio.Condition()
    )
    running = await start_registry(
        [
            ServiceBinding(
                servicer,
                gw_grpc.add_GatewayServiceServicer_to_server,
                "lienthong.gateway.v1.GatewayService",
            )
        ]
    )
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{running.port}")
    yield channel
    await channel.close()
    await running.stop(None)
    await store.close()


async def test_bytes_that_do_not_decode_to_a_server_streaming_rpc_are_an_invalid_argument(
    gateway_api: grpc.aio.Channel,
) -> None:
    watch: grpc.aio.UnaryStreamMultiCallable[bytes, bytes] = gateway_api.unary_stream(
        "/lienthong.gateway.v1.GatewayService/WatchDossier"
    )
    with capture_logs() as logs, pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in watch(NOT_UTF8):
            pass
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert caught.value.details() == (
        "the request is not a valid lienthong.gateway.v1.WatchDossierRequest"
    )
    assert [no_traceback(line) for line in rpc_lines(logs)] == [True]


async def test_a_megabyte_field_gets_a_short_answer_and_a_short_log_line(
    gateway_api: grpc.aio.Channel,
) -> None:
    stub = gw_grpc.GatewayServiceStub(gateway_api)
    with capture_logs() as logs, pytest.raises(grpc.aio.AioRpcError) as caught:
        async for _ in stub.WatchDossier(gw.WatchDossierRequest(dossier_id=MEGABYTE)):
            pass
    error = call_error(caught.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert len(error.message) <= 300
    assert "9" * 101 not in error.message
    assert all(len(text) <= 300 for text in error.field_violations.values())
    (line,) = rpc_lines(logs)
    assert len(str(line)) < 1000


async def test_a_long_value_the_contract_allows_is_quoted_short(
    gateway_api: grpc.aio.Channel,
) -> None:
    # 64 characters is the contract's limit; the message quotes it whole.
    stub = gw_grpc.GatewayServiceStub(gateway_api)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.GetDossier(gw.GetDossierRequest(dossier_id="d" * 64))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert caught.value.details() == f"no dossier has id {'d' * 64}"


def test_quote_keeps_a_hundred_characters_and_says_how_long_the_value_was() -> None:
    assert quote("short") == "short"
    assert quote("x" * 100) == "x" * 100
    assert quote("x" * 1_000_000) == "x" * 100 + "… (1000000 characters)"


# Found by the fuzz: a client's input that reached a bug behind the contract.


async def test_a_card_requested_on_a_day_near_year_9999_is_refused_not_a_crash(
    start: Callable[..., Any],
) -> None:
    # The child born in 9998 would be covered until 10004, which is no date;
    # a registry whose today is the last day there is lets the request reach it.
    registry = await start(functools.partial(build_insurance, today=lambda: dt.date(9999, 12, 31)))
    stub = ins_grpc.InsuranceRegistryServiceStub(registry.channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.IssueChildHealthInsuranceCard(
            ins.IssueChildHealthInsuranceCardRequest(
                request_id="far-future",
                personal_id_number="001322000001",
                full_name="Nguyễn Văn An",
                sex=SEX_FEMALE,
                date_of_birth="9998-01-01",
                province_code="001",
                initial_facility_code="01003",
                requested_on="9999-12-31",
            )
        )
    error = call_error(caught.value)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "date_of_birth" in error.field_violations
