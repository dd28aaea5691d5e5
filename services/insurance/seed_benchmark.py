"""How fast SeedParticipants loads: participants per second over real gRPC.

    python -m services.insurance.seed_benchmark                 # in-process registry
    python -m services.insurance.seed_benchmark --database postgresql://user@host:5432/db
    python -m services.insurance.seed_benchmark --target 127.0.0.1:50052

With no --target it starts a registry on 127.0.0.1:0 over --database (a fresh
SQLite file in a temporary folder by default, as the tests do; a PostgreSQL
URL names an empty database to load into). The batches are built before the
clock starts, so the rate is the registry's (transfer, validation, one
transaction), not the generator's. A second, replayed load shows the path
where every row is already stored (ON CONFLICT DO NOTHING).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

from common.server import SERVER_OPTIONS, start_registry
from lienthong.insurance.v1 import insurance_pb2 as pb
from lienthong.insurance.v1 import insurance_pb2_grpc as pb_grpc
from services.insurance.app import build


def participants(count: int, batch_size: int) -> list[pb.SeedParticipantsRequest]:
    """Men born in 1990 and registered in Hà Nội: prefix 001 0 90, serials 0.."""
    people = [
        pb.Participant(
            social_insurance_number=f"01{n:08d}",
            personal_id_number=f"001090{n:06d}",
            full_name=f"Nguyễn Văn {n}",
            date_of_birth="1990-05-17",
            compulsory_contribution_months=n % 400,
            voluntary_contribution_months=n % 90,
            pensioner=n % 7 == 0,
        )
        for n in range(count)
    ]
    return [
        pb.SeedParticipantsRequest(participants=people[i : i + batch_size])
        for i in range(0, count, batch_size)
    ]


async def load(target: str, batches: list[pb.SeedParticipantsRequest]) -> tuple[int, float]:
    async def stream() -> AsyncIterator[pb.SeedParticipantsRequest]:
        for batch in batches:
            yield batch

    async with grpc.aio.insecure_channel(target, options=SERVER_OPTIONS) as channel:
        stub = pb_grpc.InsuranceRegistryServiceStub(channel)
        started = time.perf_counter()
        response: pb.SeedParticipantsResponse = await stub.SeedParticipants(stream())
        return response.participants, time.perf_counter() - started


async def run(count: int, batch_size: int, target: str | None, database: str | None) -> None:
    batches = participants(count, batch_size)
    with tempfile.TemporaryDirectory() as folder:
        store = None
        running = None
        if target is None:
            bindings, store = build(database or Path(folder) / "insurance.sqlite3")
            running = await start_registry(bindings)
            target = f"127.0.0.1:{running.port}"
        try:
            for label in ("first load", "replay"):
                added, seconds = await load(target, batches)
                print(
                    f"{label}: {count} participants in {len(batches)} batches of {batch_size}, "
                    f"{added} added, {seconds:.2f} s, {count / seconds:,.0f} records/s"
                )
        finally:
            if running is not None:
                await running.stop(None)
            if store is not None:
                store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=5_000)
    parser.add_argument("--target", help="host:port of a running registry (default: in-process)")
    parser.add_argument(
        "--database",
        help="the in-process registry's store: a SQLite path or a PostgreSQL URL "
        "(default: a fresh SQLite file in a temporary folder)",
    )
    args = parser.parse_args()
    asyncio.run(run(args.count, args.batch_size, args.target, args.database))


if __name__ == "__main__":
    main()
