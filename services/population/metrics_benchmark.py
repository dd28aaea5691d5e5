"""What counting every call in Prometheus metrics costs (common/metrics.py).

    .venv/bin/python -m services.population.metrics_benchmark
    .venv/bin/python -m services.population.metrics_benchmark --calls 5000 --rounds 5

Two measures. The observer alone: how long CallMetrics.observe takes for one
call record (counter, histogram; the series' children found once and kept).
Then the population registry in-process over real gRPC on loopback,
answering GetHousehold to a few concurrent callers, with no observer and
with the metrics observer, in alternating rounds (the machine's other load
falls on both alike); calls per second of each, the median round of each.
It prints; it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import grpc
from prometheus_client import CollectorRegistry

from common.logging import configure_logging
from common.metrics import CallMetrics
from common.rpc import CallObserver, CallRecord
from common.server import start_registry
from lienthong.population.v1 import population_pb2 as pb
from lienthong.population.v1 import population_pb2_grpc as pb_grpc
from services.population.app import build

METHOD = "/lienthong.population.v1.PopulationRegistryService/GetHousehold"


def observe_cost(repeats: int) -> float:
    """Microseconds per CallMetrics.observe, for a record like a real call's."""
    metrics = CallMetrics(CollectorRegistry())
    record = CallRecord(
        at=dt.datetime.now(dt.UTC),
        caller="gateway",
        method=METHOD,
        code="OK",
        reason="",
        correlation_id="bench",
        duration_ms=1.5,
        request=None,
        response=None,
    )
    began = time.perf_counter()
    for _ in range(repeats):
        metrics.observe(record)
    return (time.perf_counter() - began) / repeats * 1e6


async def _one(message: pb.SeedPopulationRequest) -> AsyncIterator[pb.SeedPopulationRequest]:
    yield message


async def calls_per_second(
    database: Path, observers: Sequence[CallObserver], calls: int, callers: int
) -> float:
    bindings, store = build(database)
    running = await start_registry(bindings, observers=observers)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = pb_grpc.PopulationRegistryServiceStub(channel)
            await stub.SeedPopulation(
                _one(
                    pb.SeedPopulationRequest(
                        households=[
                            pb.Household(
                                household_id="HK-BENCH", address="1 Tràng Tiền", province_code="001"
                            )
                        ]
                    )
                )
            )
            request = pb.GetHouseholdRequest(household_id="HK-BENCH")
            await stub.GetHousehold(request)  # the channel connected before the clock starts

            async def caller(share: int) -> None:
                for _ in range(share):
                    await stub.GetHousehold(request)

            began = time.perf_counter()
            await asyncio.gather(*(caller(calls // callers) for _ in range(callers)))
            elapsed = time.perf_counter() - began
    finally:
        await running.stop(None)
        store.close()
    return (calls // callers) * callers / elapsed


async def compare(calls: int, rounds: int, callers: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {"without": [], "with": []}
    with tempfile.TemporaryDirectory() as directory:
        for index in range(rounds):
            for name in ("without", "with"):
                observers = [CallMetrics(CollectorRegistry())] if name == "with" else []
                database = Path(directory) / f"{name}-{index}.sqlite3"
                results[name].append(await calls_per_second(database, observers, calls, callers))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=3000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each")
    parser.add_argument("--callers", type=int, default=8, help="concurrent callers")
    args = parser.parse_args()
    # A log line per call would cost more than the metrics measured here.
    configure_logging(service="metrics-benchmark", verbose=False)
    print(f"CallMetrics.observe: {observe_cost(100_000):.2f} µs per call record")
    results = asyncio.run(compare(args.calls, args.rounds, args.callers))
    without = statistics.median(results["without"])
    with_metrics = statistics.median(results["with"])
    print(
        f"GetHousehold over gRPC, {args.callers} callers, median of {args.rounds} rounds "
        f"of {args.calls} calls:"
    )
    print(f"  without the metrics observer: {without:8.0f} calls/s")
    print(f"  with the metrics observer:    {with_metrics:8.0f} calls/s")
    print(f"  difference: {(with_metrics - without) / without * 100:+.1f}%")
    print(
        "  (rounds: without "
        + ", ".join(f"{r:.0f}" for r in results["without"])
        + "; with "
        + ", ".join(f"{r:.0f}" for r in results["with"])
        + ")"
    )


if __name__ == "__main__":
    main()
