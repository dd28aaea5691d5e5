"""How fast SeedPopulation loads a synthetic population over real gRPC into a
fresh SQLite file, or into an empty PostgreSQL database (--database URL).

    .venv/bin/python -m services.population.benchmark
    .venv/bin/python -m services.population.benchmark --citizens 20000 --households 6000
    .venv/bin/python -m services.population.benchmark --database postgresql://user@host:5432/empty

The clock runs from the first batch sent to the answer, so it covers
serialising, the contract check, the rule checks and the commit; building the
records beforehand is not counted. A second run of the same stream (a replay,
which must add nothing) is timed too. It prints; it asserts nothing about time.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc

from common.database_url import redacted
from common.provinces import provinces
from common.server import start_registry
from lienthong.common.v1.common_pb2 import SEX_FEMALE, SEX_MALE
from lienthong.population.v1 import population_pb2 as pb
from lienthong.population.v1 import population_pb2_grpc as pb_grpc
from services.population.app import build
from services.population.rules import id_prefix, personal_id_number

FAMILY_NAMES = ("Nguyễn", "Trần", "Lê", "Phạm", "Hoàng", "Phan", "Vũ", "Đặng", "Bùi", "Đỗ")
GIVEN_NAMES = ("An", "Bình", "Chi", "Dũng", "Giang", "Hà", "Hùng", "Lan", "Minh", "Thảo")


def synthetic_population(
    citizens: int, households: int, seed: int = 2024
) -> tuple[list[pb.Household], list[pb.Citizen]]:
    """Households, and citizens with well-formed ID numbers, most of them
    resident in one of the households."""
    chance = random.Random(seed)
    codes = sorted(provinces())
    homes = [
        pb.Household(
            household_id=f"HK-{i:08d}",
            address=f"Số {i % 300 + 1} đường {chance.choice(GIVEN_NAMES)}",
            province_code=chance.choice(codes),
        )
        for i in range(households)
    ]
    serials: dict[str, int] = {}
    people = []
    for i in range(citizens):
        sex = chance.choice((SEX_MALE, SEX_FEMALE))
        born = dt.date(1930, 1, 1) + dt.timedelta(days=chance.randrange(95 * 365))
        province = chance.choice(codes)
        prefix = id_prefix(province, born, sex)
        serials[prefix] = serials.get(prefix, 0) + 1
        people.append(
            pb.Citizen(
                personal_id_number=personal_id_number(prefix, serials[prefix]),
                full_name=f"{chance.choice(FAMILY_NAMES)} {chance.choice(GIVEN_NAMES)}",
                sex=sex,
                date_of_birth=born.isoformat(),
                place_of_birth=provinces()[province],
                ethnicity="Kinh",
                nationality="Việt Nam",
                birth_certificate_number=f"GCS-{i:09d}" if born.year >= 2010 else "",
                registration_province_code=province,
                # One in ten has no registered permanent residence.
                household_id=homes[i % households].household_id if households and i % 10 else "",
            )
        )
    return homes, people


def batches_of(
    households: list[pb.Household], citizens: list[pb.Citizen], size: int
) -> Iterator[pb.SeedPopulationRequest]:
    for start in range(0, len(households), size):
        yield pb.SeedPopulationRequest(households=households[start : start + size])
    for start in range(0, len(citizens), size):
        yield pb.SeedPopulationRequest(citizens=citizens[start : start + size])


@dataclass(frozen=True)
class SeedTiming:
    records: int
    added: int
    seconds: float

    @property
    def per_second(self) -> float:
        return self.records / self.seconds


async def _timed_seed(
    stub: pb_grpc.PopulationRegistryServiceAsyncStub, batches: list[pb.SeedPopulationRequest]
) -> SeedTiming:
    async def stream() -> AsyncIterator[pb.SeedPopulationRequest]:
        for batch in batches:
            yield batch

    records = sum(len(b.households) + len(b.citizens) for b in batches)
    started = time.perf_counter()
    response = await stub.SeedPopulation(stream())
    seconds = time.perf_counter() - started
    return SeedTiming(records, response.households + response.citizens, seconds)


async def measure(
    citizens: int, households: int, batch_size: int, database: Path | str
) -> tuple[SeedTiming, SeedTiming]:
    """(first load, replay) of one synthetic stream into `database`."""
    homes, people = synthetic_population(citizens, households)
    batches = list(batches_of(homes, people, batch_size))
    bindings, store = build(database)
    running = await start_registry(bindings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = pb_grpc.PopulationRegistryServiceStub(channel)
            first = await _timed_seed(stub, batches)
            replay = await _timed_seed(stub, batches)
    finally:
        await running.stop(None)
        store.close()
    return first, replay


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--citizens", type=int, default=200_000)
    parser.add_argument("--households", type=int, default=60_000)
    parser.add_argument("--batch", type=int, default=5_000, help="records per message")
    parser.add_argument(
        "--database",
        help="a postgresql:// URL of an EMPTY database (default: a fresh SQLite file)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        database = args.database or Path(folder) / "bench.sqlite3"
        print(f"into {redacted(database)}")
        first, replay = asyncio.run(measure(args.citizens, args.households, args.batch, database))
    for label, timing in (("load", first), ("replay", replay)):
        print(
            f"{label}: {timing.records:,} records ({timing.added:,} added) in "
            f"{timing.seconds:.2f} s = {timing.per_second:,.0f} records/s"
        )


if __name__ == "__main__":
    main()
