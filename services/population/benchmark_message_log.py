"""What the message log (common/message_log.py) costs a registry.

    .venv/bin/python -m services.population.benchmark_message_log
    .venv/bin/python -m services.population.benchmark_message_log --seconds 5 --clients 32

Two numbers: (a) the log alone, MessageLog.observe on a typical record in a
loop (digests, hash, one os.write; a signed checkpoint with an fsync every
1000 records), in microseconds a call; (b) the population registry over real
gRPC on loopback answering GetHousehold to concurrent clients, calls/s
without and with the log, alternated (off, on, off, on) so a drifting machine
does not favour one. Client and server share one process and one event loop,
as a small deployment's cores would be shared; the server's own log lines are
off (warnings only), so they do not hide the cost measured. It prints; it
asserts nothing.
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

from common.logging import configure_logging
from common.message_log import MessageLog, Signer
from common.rpc import CallObserver, CallRecord
from common.server import start_registry
from lienthong.population.v1 import population_pb2 as pb
from lienthong.population.v1 import population_pb2_grpc as pb_grpc
from services.population.app import build

HOUSEHOLD = pb.Household(household_id="HK-BENCH-1", address="1 Tràng Tiền", province_code="001")


def observe_cost(directory: Path, records: int) -> float:
    """Microseconds a record, the log alone."""
    log = MessageLog(directory, "bench", Signer.for_log_directory(directory, "bench"))
    record = CallRecord(
        at=dt.datetime.now(dt.UTC),
        caller="gateway",
        method="/lienthong.population.v1.PopulationRegistryService/GetHousehold",
        code="OK",
        reason="",
        correlation_id="birth-0123456789abcdef",
        duration_ms=0.8,
        request=[pb.GetHouseholdRequest(household_id=HOUSEHOLD.household_id)],
        response=[pb.GetHouseholdResponse(household=HOUSEHOLD)],
        dossier_id="birth-0123456789abcdef",
    )
    began = time.perf_counter()
    for _ in range(records):
        log.observe(record)
    elapsed = time.perf_counter() - began
    log.close()
    return elapsed / records * 1e6


async def calls_per_second(
    database: Path, observers: Sequence[CallObserver], seconds: float, clients: int
) -> float:
    bindings, store = build(database)
    running = await start_registry(bindings, observers=observers)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = pb_grpc.PopulationRegistryServiceStub(channel)

            async def batches() -> AsyncIterator[pb.SeedPopulationRequest]:
                yield pb.SeedPopulationRequest(households=[HOUSEHOLD])

            await stub.SeedPopulation(batches())
            request = pb.GetHouseholdRequest(household_id=HOUSEHOLD.household_id)
            deadline = time.monotonic() + seconds
            counts = [0] * clients

            async def client(index: int) -> None:
                while time.monotonic() < deadline:
                    await stub.GetHousehold(request)
                    counts[index] += 1

            began = time.monotonic()
            await asyncio.gather(*(client(i) for i in range(clients)))
            return sum(counts) / (time.monotonic() - began)
    finally:
        await running.stop(None)
        store.close()


async def compare(seconds: float, clients: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory(prefix="lienthong-log-bench-") as temporary:
        root = Path(temporary)
        cost = observe_cost(root / "alone", 20_000)
        print(f"message log alone: {cost:.1f} µs a call (observe, 20,000 records)")
        off: list[float] = []
        on: list[float] = []
        for index in range(rounds):
            off.append(await calls_per_second(root / f"off-{index}.db", [], seconds, clients))
            log_dir = root / f"messages-{index}"
            log = MessageLog(log_dir, "population", Signer.for_log_directory(log_dir, "p"))
            try:
                on.append(await calls_per_second(root / f"on-{index}.db", [log], seconds, clients))
            finally:
                log.close()
        without, with_log = statistics.median(off), statistics.median(on)
        print(
            f"GetHousehold over gRPC, {clients} clients, {rounds} x {seconds:g} s each: "
            f"without the log {without:,.0f} calls/s, with it {with_log:,.0f} calls/s "
            f"({(with_log / without - 1) * 100:+.1f}%)"
        )
        print(f"  runs without: {', '.join(f'{v:,.0f}' for v in off)}")
        print(f"  runs with:    {', '.join(f'{v:,.0f}' for v in on)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="per run (default 3)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent callers (16)")
    parser.add_argument("--rounds", type=int, default=2, help="off/on pairs (2)")
    args = parser.parse_args()
    # Warnings only: a line a call on the console would cost more than the
    # log being measured, and hide it.
    configure_logging(service="benchmark", verbose=False)
    asyncio.run(compare(args.seconds, args.clients, args.rounds))


if __name__ == "__main__":
    main()
