"""Two social security registries (real gRPC on loopback) over ONE PostgreSQL
database, as replicas behind client-side round-robin: cards issued on both at
once get distinct social insurance numbers, contiguous around a seeded one; a
request sent to both at once has one effect and one answer; one card per
child and one funeral allowance per death when two requests for the same
person reach the two replicas at once.

The expected numbers and references are written out by hand, not computed
with the registry's code."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import psycopg
import pytest

from lienthong.insurance.v1 import insurance_pb2 as pb
from lienthong.insurance.v1 import insurance_pb2_grpc as pb_grpc
from tests.grpc_errors import outcome
from tests.services.test_insurance import build_on_today, card_request, seed, settle_request

CHILDREN = 60  # distinct children, half sent to each replica
REPEATS = 10  # card requests sent to both replicas at once under one request id
TWINS = 10  # children declared twice at once (two request ids), once on each replica
DEATHS = 10  # per kind: a repeat sent to both, and two settlements of one death


def child(n: int) -> str:
    """A girl born in 2024, registered in Hà Nội: 001 3 24 and a serial."""
    return f"001324{n:06d}"


def deceased(n: int) -> str:
    """A man born in 1950: 001 1 50 and a serial."""
    return f"001150{n:06d}"


@pytest.fixture
async def replicas(start: Any, postgres_url: str) -> list[Any]:
    started = [await start(build_on_today, database=postgres_url) for _ in range(2)]
    # Someone insured earlier already holds 0100000002: new cards step over it.
    holder = pb.Participant(
        social_insurance_number="0100000002",
        personal_id_number="001185000777",
        full_name="Đã có số",
        date_of_birth="1985-01-01",
    )
    pensioners = [
        pb.Participant(
            social_insurance_number=f"79{n:08d}",
            personal_id_number=deceased(n),
            full_name=f"Trần Văn {n}",
            date_of_birth="1950-04-02",
            pensioner=True,
        )
        for n in range(1, 3 * DEATHS + 1)
    ]
    await seed(
        pb_grpc.InsuranceRegistryServiceStub(started[1].channel),
        pb.SeedParticipantsRequest(participants=[holder, *pensioners]),
    )
    return started


def stubs(replicas: list[Any]) -> list[Any]:
    return [pb_grpc.InsuranceRegistryServiceStub(r.channel) for r in replicas]


async def test_cards_on_two_replicas_at_once_get_distinct_contiguous_numbers(
    replicas: list[Any],
) -> None:
    both = stubs(replicas)
    calls: list[tuple[str, Awaitable[Any]]] = []
    for n in range(CHILDREN):
        request = card_request(f"card-{n}", personal_id_number=child(n))
        calls.append((f"c{n}", outcome(both[n % 2].IssueChildHealthInsuranceCard(request))))
    for n in range(REPEATS):
        request = card_request(f"repeat-{n}", personal_id_number=child(100 + n))
        calls += [(f"r{n}", outcome(s.IssueChildHealthInsuranceCard(request))) for s in both]
    for n in range(TWINS):
        calls += [
            (
                f"t{n}",
                outcome(
                    s.IssueChildHealthInsuranceCard(
                        card_request(f"twin-{n}-{side}", personal_id_number=child(200 + n))
                    )
                ),
            )
            for side, s in enumerate(both)
        ]
    results = await asyncio.gather(*(call for _, call in calls))
    by_label: dict[str, list[Any]] = {}
    for (label, _), result in zip(calls, results, strict=True):
        by_label.setdefault(label, []).append(result)

    cards = [by_label[f"c{n}"][0] for n in range(CHILDREN)]
    assert all(isinstance(c, pb.IssueChildHealthInsuranceCardResponse) for c in cards), cards
    for label in [f"r{n}" for n in range(REPEATS)] + [f"t{n}" for n in range(TWINS)]:
        first, second = by_label[label]
        assert isinstance(first, pb.IssueChildHealthInsuranceCardResponse), (label, first)
        # A repeat, or the same child declared twice: one card, the same answer.
        assert first == second, label
        cards.append(first)

    numbers = [c.card.social_insurance_number for c in cards]
    assert len(set(numbers)) == len(numbers) == CHILDREN + REPEATS + TWINS
    # Contiguous from 1 with the seeded 2 stepped over: no number lost to a
    # repeat, a twin or a lost race.
    expected = ["0100000001", *(f"01{n:08d}" for n in range(3, len(numbers) + 2))]
    assert sorted(numbers) == expected

    stored = replicas[0].store.run_sync(
        lambda conn: conn.execute(
            "SELECT count(*), count(DISTINCT personal_id_number) FROM participants "
            "WHERE social_insurance_number LIKE '01%'"
        ).fetchone()
    )
    assert tuple(stored) == (len(numbers) + 1, len(numbers) + 1)
    card_rows = replicas[1].store.run_sync(
        lambda conn: conn.execute("SELECT count(*) FROM cards").fetchone()
    )
    assert card_rows[0] == len(numbers)


async def test_one_funeral_allowance_per_death_across_replicas(replicas: list[Any]) -> None:
    both = stubs(replicas)
    calls: list[tuple[str, Awaitable[Any]]] = []
    for n in range(1, DEATHS + 1):
        request = settle_request(f"same-{n}", personal_id_number=deceased(n))
        calls += [(f"r{n}", outcome(s.SettleFuneralAllowance(request))) for s in both]
    for n in range(DEATHS + 1, 2 * DEATHS + 1):
        calls += [
            (
                f"t{n}",
                outcome(
                    s.SettleFuneralAllowance(
                        settle_request(f"claim-{n}-{side}", personal_id_number=deceased(n))
                    )
                ),
            )
            for side, s in enumerate(both)
        ]
    results = await asyncio.gather(*(call for _, call in calls))
    by_label: dict[str, list[Any]] = {}
    for (label, _), result in zip(calls, results, strict=True):
        by_label.setdefault(label, []).append(result)

    paid = []
    for n in range(1, DEATHS + 1):
        first, second = by_label[f"r{n}"]
        assert isinstance(first, pb.SettleFuneralAllowanceResponse), first
        assert first == second, "a repeat on the other replica gets the same answer"
        paid.append(first.allowance)
    for n in range(DEATHS + 1, 2 * DEATHS + 1):
        outcomes = by_label[f"t{n}"]
        accepted = [o for o in outcomes if isinstance(o, pb.SettleFuneralAllowanceResponse)]
        assert len(accepted) == 1, outcomes
        assert "ALREADY_EXISTS:ALLOWANCE_ALREADY_SETTLED" in outcomes, outcomes
        paid.append(accepted[0].allowance)

    assert all(a.eligible and a.amount_vnd == 23_400_000 for a in paid), paid
    references = sorted(a.payment_reference for a in paid)
    # One reference per death, numbered without a gap: a refused or rerun
    # settlement gives its number back.
    assert references == [f"MT-2024-{n:08d}" for n in range(1, 2 * DEATHS + 1)]
    stored = replicas[0].store.run_sync(
        lambda conn: conn.execute("SELECT count(*) FROM funeral_allowances").fetchone()
    )
    assert stored[0] == 2 * DEATHS


async def test_one_date_of_death_when_two_reach_the_replicas_at_once(replicas: list[Any]) -> None:
    both = stubs(replicas)
    people = range(2 * DEATHS + 1, 3 * DEATHS + 1)
    calls = [
        outcome(
            s.EndCoverage(
                pb.EndCoverageRequest(
                    request_id=f"end-{n}-{side}",
                    personal_id_number=deceased(n),
                    date_of_death=f"2024-07-0{side + 1}",
                )
            )
        )
        for n in people
        for side, s in enumerate(both)
    ]
    results = await asyncio.gather(*calls)
    recorded = {}
    for k, n in enumerate(people):
        pair = results[2 * k : 2 * k + 2]
        accepted = [i for i, o in enumerate(pair) if isinstance(o, pb.EndCoverageResponse)]
        # A person dies once: the second date is a conflict, not an overwrite.
        assert len(accepted) == 1, pair
        assert "FAILED_PRECONDITION:DEATH_DATE_CONFLICT" in pair, pair
        recorded[deceased(n)] = f"2024-07-0{accepted[0] + 1}"
    stored = replicas[0].store.run_sync(
        lambda conn: {
            row[0]: row[1]
            for row in conn.execute(
                "SELECT personal_id_number, date_of_death FROM participants "
                "WHERE date_of_death <> ''"
            )
        }
    )
    assert stored == recorded


async def test_no_card_stays_active_for_a_child_whose_death_another_replica_is_recording(
    replicas: list[Any], postgres_url: str
) -> None:
    """The death is recorded by a transaction that has written the participant
    row and not yet committed (another replica mid EndCoverage); the card
    request must wait for it and then be refused, not slip a card in beside it."""
    first = stubs(replicas)[0]
    minor = pb.Participant(
        social_insurance_number="0199990001",
        personal_id_number=child(999),
        full_name="Nguyễn Thị Mai",
        date_of_birth="2024-03-10",
    )
    await seed(first, pb.SeedParticipantsRequest(participants=[minor]))
    dying = await psycopg.AsyncConnection.connect(postgres_url)
    watcher = await psycopg.AsyncConnection.connect(postgres_url, autocommit=True)
    try:
        await dying.execute(
            "UPDATE participants SET date_of_death = '2024-03-20' WHERE personal_id_number = %s",
            (child(999),),
        )
        issue = asyncio.ensure_future(
            outcome(
                first.IssueChildHealthInsuranceCard(card_request(personal_id_number=child(999)))
            )
        )

        async def blocked() -> None:
            # The card's transaction waits on the death's row lock.
            while True:
                cursor = await watcher.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                )
                row = await cursor.fetchone()
                if row is not None and row[0] > 0:
                    return
                await asyncio.sleep(0.02)

        waiting = asyncio.ensure_future(blocked())
        done, _ = await asyncio.wait(
            {issue, waiting}, timeout=30, return_when=asyncio.FIRST_COMPLETED
        )
        waiting.cancel()
        assert issue not in done, (
            f"the card was answered before the death committed: {issue.result()}"
        )
        assert waiting in done, "the card request neither waited nor answered within 30 s"
        await dying.commit()
        assert await asyncio.wait_for(issue, 30) == "FAILED_PRECONDITION:PARTICIPANT_DECEASED"
        cursor = await watcher.execute(
            "SELECT count(*) FROM cards WHERE social_insurance_number = '0199990001'"
        )
        assert await cursor.fetchone() == (0,)
    finally:
        await dying.close()
        await watcher.close()
