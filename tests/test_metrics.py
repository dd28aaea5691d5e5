"""A registry's Prometheus metrics (common/metrics.py), scraped over HTTP:
the population registry in-process on real gRPC and a real SQLite file, its
calls counted by the call metrics observer, the endpoint read with urllib and
parsed with prometheus_client's own parser. The expected numbers are the
calls this test makes, counted by hand."""

from __future__ import annotations

import asyncio
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from common.errors import DomainError
from common.metrics import CallMetrics, MetricsSettings, serve
from common.server import ServiceBinding, start_registry
from lienthong.population.v1 import population_pb2 as pop
from lienthong.population.v1 import population_pb2_grpc as pop_grpc
from services.population.app import build

SERVICE = "lienthong.population.v1.PopulationRegistryService"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


class AccessDenied(DomainError):
    code = grpc.StatusCode.PERMISSION_DENIED


class DenyGetCitizen:
    """A stand-in for the access policy: the population servicer, except that
    GetCitizen is refused as the policy refuses (PERMISSION_DENIED, reason
    ACCESS_DENIED)."""

    def __init__(self, servicer: Any) -> None:
        self._servicer = servicer

    def __getattr__(self, name: str) -> Any:
        return getattr(self._servicer, name)

    async def GetCitizen(self, request: Any, context: Any) -> Any:
        raise AccessDenied("anonymous may not call GetCitizen", reason="ACCESS_DENIED")


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        text = answer.read().decode("utf-8")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.fixture
def registry() -> CollectorRegistry:
    return CollectorRegistry()


@pytest.fixture
def endpoint(registry: CollectorRegistry) -> Iterator[int]:
    server = serve(registry, "127.0.0.1", 0)
    yield int(server.server_port)
    server.shutdown()
    server.server_close()


@pytest.fixture
async def channel(tmp_path: Path, registry: CollectorRegistry) -> AsyncIterator[grpc.aio.Channel]:
    [binding], store = build(tmp_path / "population.sqlite3")
    guarded = ServiceBinding(DenyGetCitizen(binding.servicer), binding.add_to_server, SERVICE)
    running = await start_registry([guarded], observers=[CallMetrics(registry)])
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as opened:
        yield opened
    await running.stop(None)
    store.close()


async def test_calls_refusals_and_latencies_are_scraped_by_label(
    channel: grpc.aio.Channel, endpoint: int
) -> None:
    stub = pop_grpc.PopulationRegistryServiceStub(channel)
    household = pop.Household(household_id="HK-MET-1", address="1 Tràng Tiền", province_code="001")

    async def batches() -> AsyncIterator[pop.SeedPopulationRequest]:
        yield pop.SeedPopulationRequest(households=[household])

    await stub.SeedPopulation(batches())
    for _ in range(2):
        await stub.GetHousehold(pop.GetHouseholdRequest(household_id="HK-MET-1"))
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.GetHousehold(pop.GetHouseholdRequest(household_id="HK-MET-404"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.GetCitizen(pop.GetCitizenRequest(personal_id_number="001190000001"))
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # The library's health checks are not the service's calls: not counted.
    await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))

    # Scraped from another thread, as Prometheus would.
    samples = await asyncio.to_thread(scrape, endpoint)
    calls = "lienthong_rpc_calls_total"
    anonymous = {"service": SERVICE, "caller": "anonymous"}
    assert value(samples, calls, **anonymous, method="SeedPopulation", code="OK") == 1
    assert value(samples, calls, **anonymous, method="GetHousehold", code="OK") == 2
    assert value(samples, calls, **anonymous, method="GetHousehold", code="NOT_FOUND") == 1
    assert value(samples, calls, **anonymous, method="GetCitizen", code="PERMISSION_DENIED") == 1
    assert sum(v for (name, _), v in samples.items() if name == calls) == 5

    refusals = "lienthong_access_refusals_total"
    assert value(samples, refusals, **anonymous, method="GetCitizen") == 1
    assert sum(v for (name, _), v in samples.items() if name == refusals) == 1

    durations = "lienthong_rpc_duration_seconds"
    household_calls = {"service": SERVICE, "method": "GetHousehold"}
    assert value(samples, durations + "_count", **household_calls) == 3
    # Every call ends within the largest bucket and under +Inf; a loopback
    # lookup takes well over nothing, so the sum is positive.
    assert value(samples, durations + "_bucket", **household_calls, le="10.0") == 3
    assert value(samples, durations + "_bucket", **household_calls, le="+Inf") == 3
    total = value(samples, durations + "_sum", **household_calls)
    assert total is not None and total > 0
    citizen_calls = {"service": SERVICE, "method": "GetCitizen"}
    assert value(samples, durations + "_count", **citizen_calls) == 1


def test_callers_past_the_limit_count_as_other(registry: CollectorRegistry) -> None:
    metrics = CallMetrics(registry)
    names = [f"agency-{n}" for n in range(40)] + ["x" * 500]
    labels = [metrics.caller_label(name) for name in names]
    assert labels[:32] == names[:32]
    assert set(labels[32:]) == {"other"}
    fresh = CallMetrics(CollectorRegistry())
    assert len(fresh.caller_label("x" * 500)) == 64


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, MetricsSettings("127.0.0.1", None)),
        ({"LIENTHONG_METRICS_PORT": "9651"}, MetricsSettings("127.0.0.1", 9651)),
        (
            {"LIENTHONG_METRICS_PORT": "9651", "LIENTHONG_METRICS_HOST": "0.0.0.0"},
            MetricsSettings("0.0.0.0", 9651),
        ),
    ],
)
def test_settings_from_the_environment(env: dict[str, str], expected: MetricsSettings) -> None:
    assert MetricsSettings.from_env(env) == expected


@pytest.mark.parametrize("port", ["ninety", "-1", "70000"])
def test_a_port_that_is_no_port_is_named(port: str) -> None:
    with pytest.raises(SystemExit, match="LIENTHONG_METRICS_PORT must be a port number"):
        MetricsSettings.from_env({"LIENTHONG_METRICS_PORT": port})
