"""Every process of a stack serves Prometheus metrics: a Stack (the embedded
broker, the three registries and the gateway as processes) runs one birth
dossier to the end, then the gateway's and the population registry's
`/metrics` are scraped over HTTP, as Prometheus would, at the addresses the
stack gave them. The expected numbers are this one dossier's, by hand."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import urllib.request
from collections.abc import Callable, Iterator

import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from cli.stack import Stack
from common.clock import SystemClock, vietnam_today
from lienthong.gateway.v1 import gateway_pb2 as g
from lienthong.gateway.v1 import gateway_pb2_grpc as gg
from tests.gateway.world import birth_form, new_family, seed_families

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(300)]

TODAY = vietnam_today(SystemClock())
BORN = (TODAY - dt.timedelta(days=2)).isoformat()
DIED = (TODAY - dt.timedelta(days=1)).isoformat()
POPULATION = "lienthong.population.v1.PopulationRegistryService"
GATEWAY = "lienthong.gateway.v1.GatewayService"


class Scraped:
    """One scrape of an endpoint: samples by name and labels."""

    def __init__(self, text: str) -> None:
        self.samples = [
            (s.name, dict(s.labels), s.value)
            for family in text_string_to_metric_families(text)
            for s in family.samples
        ]

    def find(self, name: str, **labels: str) -> list[tuple[dict[str, str], float]]:
        return [
            (found, value)
            for sample_name, found, value in self.samples
            if sample_name == name and labels.items() <= found.items()
        ]

    def total(self, name: str, **labels: str) -> float:
        return sum(value for _, value in self.find(name, **labels))


def scrape(address: str) -> Scraped:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=10) as answer:
        return Scraped(answer.read().decode("utf-8"))


async def scraped_until(
    address: str, condition: Callable[[Scraped], bool], within: float = 30.0
) -> Scraped:
    """Scrape until the condition holds (a deadline, no fixed sleep)."""
    deadline = time.monotonic() + within
    while True:
        scraped = await asyncio.to_thread(scrape, address)
        if condition(scraped) or time.monotonic() > deadline:
            return scraped
        await asyncio.sleep(0.2)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack(broker="embedded") as running:
        yield running


async def test_a_dossier_run_to_the_end_is_seen_in_the_metrics(
    stack: Stack, channels: dict[str, grpc.aio.Channel]
) -> None:
    family = new_family(31)
    await seed_families(channels, [family], born=BORN, died=DIED)
    gateway = gg.GatewayServiceStub(channels["gateway"])
    submitted = await gateway.SubmitBirthDeclaration(
        g.SubmitBirthDeclarationRequest(
            idempotency_key="metrics-birth", declaration=birth_form(family, BORN)
        )
    )
    async for update in gateway.WatchDossier(
        g.WatchDossierRequest(dossier_id=submitted.dossier_id), timeout=90
    ):
        if update.dossier.state == g.DOSSIER_STATE_COMPLETED:
            break

    metrics = stack.metrics_addresses
    assert set(metrics) == {"gateway", "population", "insurance", "health"}

    # The population registry: each call the gateway made, by method and status.
    population = await asyncio.to_thread(scrape, metrics["population"])
    calls = "lienthong_rpc_calls_total"
    births = population.find(calls, service=POPULATION, method="RegisterBirth", code="OK")
    assert [value for _, value in births] == [1]
    # The gateway's identity under mutual TLS; "anonymous" on plain text.
    assert births[0][0]["caller"] in ("gateway", "anonymous")
    assert population.total(calls, method="RegisterPermanentResidence", code="OK") == 1
    assert population.total(calls, method="SeedPopulation", code="OK") == 1
    assert population.total(calls, code="PERMISSION_DENIED") == 0
    assert population.total("lienthong_rpc_duration_seconds_count", method="RegisterBirth") == 1
    assert population.find("lienthong_process_info", process="population")

    # The gateway: its own API's calls, the dossier's state, its steps, and
    # no lag left once the saga and the lanes have handled everything.
    def settled(scraped: Scraped) -> bool:
        lags = scraped.find("lienthong_consumer_lag")
        return bool(lags) and all(value == 0 for _, value in lags)

    gateway_metrics = await scraped_until(metrics["gateway"], settled)
    assert gateway_metrics.total(calls, service=GATEWAY, method="SubmitBirthDeclaration") == 1
    assert gateway_metrics.total("lienthong_dossiers", state="COMPLETED") == 1
    assert gateway_metrics.total("lienthong_dossiers", state="IN_PROGRESS") == 0
    steps = "lienthong_steps_total"
    assert gateway_metrics.total(steps, agency="population", outcome="SUCCEEDED") == 2
    assert gateway_metrics.total(steps, step="register_birth", outcome="SUCCEEDED") == 1
    assert gateway_metrics.total(steps, outcome="REJECTED") == 0
    groups = {labels["group"] for labels, _ in gateway_metrics.find("lienthong_consumer_lag")}
    assert {"lienthong-saga", "lienthong-steps-population"} <= groups
    assert settled(gateway_metrics), gateway_metrics.find("lienthong_consumer_lag")
    assert gateway_metrics.total("lienthong_dead_letters_total") == 0
    breakers = gateway_metrics.find("lienthong_agency_breaker_open")
    assert sorted((labels["agency"], value) for labels, value in breakers) == [
        ("health", 0),
        ("insurance", 0),
        ("population", 0),
    ]
    assert gateway_metrics.find("lienthong_outbox_pending")


async def test_an_agency_outage_shows_in_step_retries_and_its_breaker(
    stack: Stack, channels: dict[str, grpc.aio.Channel]
) -> None:
    family = new_family(32)
    await seed_families(channels, [family], born=BORN, died=DIED)
    gateway = gg.GatewayServiceStub(channels["gateway"])
    address = stack.metrics_addresses["gateway"]
    retries = "lienthong_step_retries_total"
    card = {"agency": "insurance", "step": "issue_health_insurance_card"}
    before = (await asyncio.to_thread(scrape, address)).total(retries, **card)

    def down(scraped: Scraped) -> bool:
        # Three failures in a row open the breaker (gateway/breaker.py).
        open_ = scraped.total("lienthong_agency_breaker_open", agency="insurance") == 1
        return open_ and scraped.total(retries, **card) >= before + 3

    stack.stop_component("insurance")
    try:
        submitted = await gateway.SubmitBirthDeclaration(
            g.SubmitBirthDeclarationRequest(
                idempotency_key="metrics-outage", declaration=birth_form(family, BORN)
            )
        )
        during = await scraped_until(address, down)
        assert down(during), during.find("lienthong_agency_breaker_open")
        assert during.total("lienthong_agency_breaker_open", agency="population") == 0
        assert during.total("lienthong_dossiers", state="IN_PROGRESS") == 1
    finally:
        stack.start_component("insurance")
    async for update in gateway.WatchDossier(
        g.WatchDossierRequest(dossier_id=submitted.dossier_id), timeout=90
    ):
        if update.dossier.state == g.DOSSIER_STATE_COMPLETED:
            break
    after = await scraped_until(
        address, lambda s: s.total("lienthong_agency_breaker_open", agency="insurance") == 0
    )
    assert after.total("lienthong_agency_breaker_open", agency="insurance") == 0
    assert after.total("lienthong_dossiers", state="IN_PROGRESS") == 0
    assert after.total("lienthong_steps_total", **card, outcome="SUCCEEDED") >= 1
