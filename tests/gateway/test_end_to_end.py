"""The gateway end to end: real processes (three registries, gateway), a real
Kafka broker (Apache Kafka when java and mvn are here, else the embedded one;
LIENTHONG_TEST_BROKER chooses), real gRPC and SQLite files.

Effects are counted in the registries' own databases, not from the gateway's
view of them.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import murmur2

from cli.stack import Stack
from common.clock import SystemClock, vietnam_today
from gateway.events import STEP_LANES, Event, Topics, encode
from lienthong.events.v1 import events_pb2 as ev
from lienthong.gateway.v1 import gateway_pb2 as g
from lienthong.gateway.v1 import gateway_pb2_grpc as gg
from tests.gateway.world import (
    Family,
    birth_form,
    death_form,
    new_family,
    seed_families,
)

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(300)]

TODAY = vietnam_today(SystemClock())
BORN = (TODAY - dt.timedelta(days=2)).isoformat()
DIED = (TODAY - dt.timedelta(days=1)).isoformat()
TERMINAL = (
    g.DOSSIER_STATE_COMPLETED,
    g.DOSSIER_STATE_COMPLETED_WITH_REFUSALS,
    g.DOSSIER_STATE_REJECTED,
)


def broker_kind() -> str:
    chosen = os.environ.get("LIENTHONG_TEST_BROKER")
    if chosen:
        return chosen
    return "apache" if shutil.which("java") and shutil.which("mvn") else "embedded"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack(
        broker=broker_kind(),
        gateway_env={"LIENTHONG_RETRY_CAP_SECONDS": "0.5", "LIENTHONG_CALL_DEADLINE_SECONDS": "2"},
    ) as running:
        yield running


def gateway(channels: dict[str, grpc.aio.Channel]) -> gg.GatewayServiceAsyncStub:
    return gg.GatewayServiceStub(channels["gateway"])


async def finished(
    stub: gg.GatewayServiceAsyncStub, dossier_id: str, within: float = 90
) -> g.Dossier:
    """Wait (with a deadline) until the dossier has ended."""
    deadline = time.monotonic() + within
    while True:
        try:
            async for update in stub.WatchDossier(
                g.WatchDossierRequest(dossier_id=dossier_id),
                timeout=max(1.0, deadline - time.monotonic()),
            ):
                if update.dossier.state in TERMINAL:
                    return update.dossier
        except grpc.aio.AioRpcError as error:
            # A restarted or killed gateway drops its streams: watch again.
            if error.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.2)


async def submit_birth(stub: gg.GatewayServiceAsyncStub, key: str, form: g.BirthDeclaration) -> str:
    answer = await stub.SubmitBirthDeclaration(
        g.SubmitBirthDeclarationRequest(idempotency_key=key, declaration=form)
    )
    return answer.dossier_id


async def submit_death(stub: gg.GatewayServiceAsyncStub, key: str, form: g.DeathDeclaration) -> str:
    answer = await stub.SubmitDeathDeclaration(
        g.SubmitDeathDeclarationRequest(idempotency_key=key, declaration=form)
    )
    return answer.dossier_id


def read_log(stack: Stack, name: str) -> str:
    return Path(stack.log_file(name)).read_text(encoding="utf-8")


def count(stack: Stack, registry: str, sql: str, *args: object) -> int:
    with sqlite3.connect(
        f"file:{stack.data_dir / f'{registry}.sqlite3'}?mode=ro", uri=True
    ) as conn:
        return int(conn.execute(sql, args).fetchone()[0])


def births_recorded(stack: Stack, families: list[Family]) -> tuple[int, int, int]:
    """(citizens, current residences, cards) the registries hold for these births."""
    certs = [f.certificate for f in families]
    marks = ",".join("?" * len(certs))
    citizens = count(
        stack,
        "population",
        f"SELECT COUNT(*) FROM citizens WHERE birth_certificate_number IN ({marks})",
        *certs,
    )
    residences = count(
        stack,
        "population",
        "SELECT COUNT(*) FROM residences r JOIN citizens c USING (personal_id_number) "
        f"WHERE c.birth_certificate_number IN ({marks})",
        *certs,
    )
    ids = [
        r[0]
        for r in sqlite3.connect(
            f"file:{stack.data_dir / 'population.sqlite3'}?mode=ro", uri=True
        ).execute(
            f"SELECT personal_id_number FROM citizens WHERE birth_certificate_number IN ({marks})",
            certs,
        )
    ]
    id_marks = ",".join("?" * len(ids)) or "''"
    cards = count(
        stack,
        "insurance",
        "SELECT COUNT(*) FROM cards c JOIN participants p USING "
        f"(social_insurance_number) WHERE p.personal_id_number IN ({id_marks})",
        *ids,
    )
    return citizens, residences, cards


def test_every_process_of_the_stack_runs_on_uvloop(stack: Stack) -> None:
    # Each says so in its start line; the loop is what the process's own
    # coroutine found running, not the setting (common/event_loop.py).
    for name in ("gateway", "population", "health", "insurance"):
        listening = [line for line in read_log(stack, name).splitlines() if '"listening"' in line]
        assert listening and all('"event_loop": "uvloop"' in line for line in listening), name


async def test_the_card_carries_the_province_of_the_residence_not_of_the_registration(
    stack: Stack, channels: dict[str, grpc.aio.Channel]
) -> None:
    # Registered in Hà Nội (001), resident in Hồ Chí Minh City (079): the VSS
    # office there manages the card, and its code says 79.
    family = new_family(21)
    await seed_families(channels, [family], born=BORN, died=DIED, household_province="079")
    stub = gateway(channels)
    birth = await finished(stub, await submit_birth(stub, "e2e-province", birth_form(family, BORN)))
    assert birth.state == g.DOSSIER_STATE_COMPLETED, birth.rejection
    assert birth.birth_result.personal_id_number.startswith("001")
    card = birth.birth_result.card
    assert card.card_code == "TE179" + card.social_insurance_number


async def test_a_card_refused_after_the_birth_took_effect_completes_with_that_refusal(
    stack: Stack, channels: dict[str, grpc.aio.Channel]
) -> None:
    # Declared when the child is 7: too late for a card, not for the birth.
    born = dt.date(TODAY.year - 7, 1, 15).isoformat()
    family = new_family(22)
    await seed_families(channels, [family], born=born, died=DIED)
    stub = gateway(channels)
    birth = await finished(stub, await submit_birth(stub, "e2e-late", birth_form(family, born)))
    assert birth.state == g.DOSSIER_STATE_COMPLETED_WITH_REFUSALS, birth.rejection
    assert birth.birth_result.personal_id_number and birth.birth_result.household_id
    assert not birth.birth_result.HasField("card")
    assert [(p.procedure, p.state, p.reason) for p in birth.procedures] == [
        ("birth_registration", g.PROCEDURE_STATE_DONE, ""),
        ("permanent_residence", g.PROCEDURE_STATE_DONE, ""),
        ("health_insurance_card", g.PROCEDURE_STATE_REFUSED, "CHILD_TOO_OLD"),
    ]
    assert birth.procedures[2].agency == "insurance"
    delivered = birth.timeline[-1]
    assert delivered.name == "deliver_result" and "refused by insurance" in delivered.outcome


async def test_birth_and_death_complete_with_every_result(
    stack: Stack, channels: dict[str, grpc.aio.Channel]
) -> None:
    family = new_family(1)
    await seed_families(channels, [family], born=BORN, died=DIED)
    stub = gateway(channels)
    birth_id = await submit_birth(stub, "e2e-birth-1", birth_form(family, BORN))
    death_id = await submit_death(stub, "e2e-death-1", death_form(family, DIED))

    birth = await finished(stub, birth_id)
    assert birth.state == g.DOSSIER_STATE_COMPLETED, birth.rejection
    assert [s.name for s in birth.timeline] == [
        "verify_birth_certificate",
        "register_birth",
        "register_permanent_residence",
        "issue_health_insurance_card",
        "deliver_result",
    ]
    assert all(s.HasField("started_at") and s.HasField("finished_at") for s in birth.timeline)
    result = birth.birth_result
    assert result.personal_id_number.startswith("0012" + BORN[2:4])  # Hà Nội, male, 21st c.
    assert result.household_id == family.household
    assert result.card.beneficiary_group == "TE"
    assert result.card.valid_from == BORN

    death = await finished(stub, death_id)
    assert death.state == g.DOSSIER_STATE_COMPLETED, death.rejection
    assert death.death_result.funeral_allowance.eligible
    assert death.death_result.funeral_allowance.amount_vnd == 23_400_000
    assert death.death_result.residence_removed_from == family.household
    assert (
        death.death_result.pension_stopped_from
        == (dt.date.fromisoformat(DIED).replace(day=1) + dt.timedelta(days=32))
        .replace(day=1)
        .isoformat()
    )
    assert death.HasField("due_at") and not death.deadline_breached


async def test_a_steps_outcome_is_handled_in_the_gateways_own_process(
    stack: Stack, channels: dict[str, grpc.aio.Channel]
) -> None:
    # One gateway holds every partition here: each outcome goes straight to
    # its saga worker (gateway/local_outcomes.py), none through the broker,
    # while the commands still do. The broker's topics are the oracle.
    family = new_family(12)
    await seed_families(channels, [family], born=BORN, died=DIED)
    stub = gateway(channels)
    birth_id = await submit_birth(stub, "e2e-local-outcomes", birth_form(family, BORN))
    assert (await finished(stub, birth_id)).state == g.DOSSIER_STATE_COMPLETED
    topics = Topics.with_prefix(stack.topic_prefix)
    commands = [
        r
        for lane in topics.step_lanes.values()
        for r in await _read_all(stack, lane, until=1)
        if r.key == birth_id.encode()  # type: ignore[attr-defined]
    ]
    assert len(commands) == 4  # health, population twice, insurance
    # A marker after the dossier completed, keyed like its outcomes (so in
    # their partition, after any of them): read up to it, nothing else of
    # this dossier is there. The marker repeats the first outcome's event id,
    # which the saga already handled: it is dropped as a redelivery.
    marker = Event(
        f"{birth_id}/verify_birth_certificate/outcome",
        birth_id,
        ev.StepOutcome(dossier_id=birth_id, step="verify_birth_certificate"),
        dt.datetime.now(dt.UTC),
    )
    key, value, headers = encode(marker)
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(topics.step_outcomes, key=key, value=value, headers=headers)
    finally:
        await producer.stop()
    ours: list[object] = []
    deadline = time.monotonic() + 60
    while not ours and time.monotonic() < deadline:
        ours = [
            r
            for r in await _read_all(stack, topics.step_outcomes, until=1)
            if r.key == key  # type: ignore[attr-defined]
        ]
    assert [r.value for r in ours] == [value]  # type: ignore[attr-defined]
    assert (await finished(stub, birth_id)).state == g.DOSSIER_STATE_COMPLETED


async def test_not_eligible_for_the_allowance_still_completes(
    stack: Stack, channels: dict[str, grpc.aio.Channel]
) -> None:
    family = new_family(2)
    await seed_families(channels, [family], born=BORN, died=DIED, pensioner=False)
    stub = gateway(channels)
    death = await finished(stub, await submit_death(stub, "e2e-death-ne", death_form(family, DIED)))
    assert death.state == g.DOSSIER_STATE_COMPLETED
    allowance = death.death_result.funeral_allowance
    assert not allowance.eligible and allowance.amount_vnd == 0 and allowance.reason


@pytest.mark.parametrize(
    ("kind", "agency", "reason"),
    [
        ("mother_mismatch", "health", "MOTHER_ID_MISMATCH"),
        ("unknown_certificate", "health", "BIRTH_CERTIFICATE_NOT_FOUND"),
        ("already_dead", "population", "ALREADY_DEAD"),
        ("unknown_facility", "health", "FACILITY_NOT_FOUND"),
    ],
)
async def test_rejections_name_the_agency_and_reason(
    stack: Stack, channels: dict[str, grpc.aio.Channel], kind: str, agency: str, reason: str
) -> None:
    family, other = new_family(3), new_family(4)
    await seed_families(channels, [family, other], born=BORN, died=DIED)
    stub = gateway(channels)
    if kind == "already_dead":
        first = await finished(
            stub, await submit_death(stub, f"e2e-{kind}-1", death_form(family, DIED))
        )
        assert first.state == g.DOSSIER_STATE_COMPLETED
        dossier_id = await submit_death(
            stub, f"e2e-{kind}-2", death_form(family, DIED, claim_funeral_allowance=False)
        )
    else:
        changes: dict[str, str] = {
            "mother_mismatch": {"mother_id_number": other.mother},
            "unknown_certificate": {"birth_certificate_number": "GCS-01001-NOPE"},
            "unknown_facility": {"initial_facility_code": "99999"},
        }[kind]
        dossier_id = await submit_birth(stub, f"e2e-{kind}", birth_form(family, BORN, **changes))
    dossier = await finished(stub, dossier_id)
    assert dossier.state == g.DOSSIER_STATE_REJECTED
    assert (dossier.rejection.agency, dossier.rejection.reason) == (agency, reason)
    assert dossier.rejection.message
    if kind != "already_dead":
        # Refused at the health step: no agency acted on the birth.
        assert births_recorded(stack, [family]) == (0, 0, 0)


async def test_duplicate_submission_returns_the_same_dossier_and_acts_once(
    stack: Stack, channels: dict[str, grpc.aio.Channel]
) -> None:
    family = new_family(5)
    await seed_families(channels, [family], born=BORN, died=DIED)
    stub = gateway(channels)
    form = birth_form(family, BORN)
    first = await submit_birth(stub, "e2e-dup", form)
    second = await submit_birth(stub, "e2e-dup", form)
    assert first == second
    assert (await finished(stub, first)).state == g.DOSSIER_STATE_COMPLETED
    assert births_recorded(stack, [family]) == (1, 1, 1)
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await submit_birth(stub, "e2e-dup", birth_form(family, BORN, child_full_name="Khác"))
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_missing_data_asks_for_a_supplement_then_completes(
    stack: Stack, channels: dict[str, grpc.aio.Channel]
) -> None:
    family = new_family(6)
    await seed_families(channels, [family], born=BORN, died=DIED)
    stub = gateway(channels)
    dossier_id = await submit_birth(stub, "e2e-supp", birth_form(family, BORN, ethnicity=""))
    deadline = time.monotonic() + 60
    while True:
        dossier = (await stub.GetDossier(g.GetDossierRequest(dossier_id=dossier_id))).dossier
        if dossier.state == g.DOSSIER_STATE_NEEDS_SUPPLEMENT or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)
    assert dossier.state == g.DOSSIER_STATE_NEEDS_SUPPLEMENT
    assert list(dossier.supplement.missing_fields) == ["ethnicity"]
    await stub.SupplementDossier(
        g.SupplementDossierRequest(
            dossier_id=dossier_id,
            idempotency_key="s1",
            birth_declaration=g.BirthDeclaration(ethnicity="Tày"),
        )
    )
    done = await finished(stub, dossier_id)
    assert done.state == g.DOSSIER_STATE_COMPLETED
    assert done.birth_declaration.ethnicity == "Tày"
    # The key is the supplement's: its repeat is answered, another body refused.
    again = g.SupplementDossierRequest(
        dossier_id=dossier_id,
        idempotency_key="s1",
        birth_declaration=g.BirthDeclaration(ethnicity="Tày"),
    )
    assert (await stub.SupplementDossier(again)).dossier_id == dossier_id
    again.birth_declaration.ethnicity = "Nùng"
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.SupplementDossier(again)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "idempotency_key" in (raised.value.details() or "")


async def test_agency_down_for_a_while_then_back(
    stack: Stack, channels: dict[str, grpc.aio.Channel]
) -> None:
    family = new_family(7)
    await seed_families(channels, [family], born=BORN, died=DIED)
    stub = gateway(channels)
    stack.stop_component("insurance")
    try:
        dossier_id = await submit_birth(stub, "e2e-down", birth_form(family, BORN))
        deadline = time.monotonic() + 60
        while True:
            dossier = (await stub.GetDossier(g.GetDossierRequest(dossier_id=dossier_id))).dossier
            if dossier.timeline and dossier.timeline[-1].name == "issue_health_insurance_card":
                break
            assert time.monotonic() < deadline, dossier
            await asyncio.sleep(0.1)
        assert dossier.state == g.DOSSIER_STATE_IN_PROGRESS
    finally:
        stack.start_component("insurance")
    done = await finished(stub, dossier_id)
    assert done.state == g.DOSSIER_STATE_COMPLETED
    card_step = done.timeline[3]
    assert card_step.attempts > 1


def deaths_recorded(stack: Stack, families: list[Family]) -> tuple[int, int, int]:
    """(deaths, residences removed, funeral allowances) the registries hold for these deaths."""
    ids = [f.deceased for f in families]
    marks = ",".join("?" * len(ids))
    return (
        count(
            stack,
            "population",
            f"SELECT COUNT(*) FROM deaths WHERE personal_id_number IN ({marks})",
            *ids,
        ),
        count(
            stack,
            "population",
            "SELECT COUNT(*) FROM residences WHERE removed_on IS NOT NULL "
            f"AND personal_id_number IN ({marks})",
            *ids,
        ),
        count(
            stack,
            "insurance",
            f"SELECT COUNT(*) FROM funeral_allowances WHERE personal_id_number IN ({marks})",
            *ids,
        ),
    )


def partition_of(dossier_id: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives a record keyed by this dossier."""
    return int(murmur2(dossier_id.encode()) & 0x7FFFFFFF) % partitions


INSURANCE_STEPS = ("issue_health_insurance_card", "settle_insurance")


def at_insurance_step(dossier: g.Dossier) -> bool:
    """Every step before the insurance one is done: the saga has sent the card
    or allowance command (the population steps come first in both groups)."""
    return bool(dossier.timeline) and dossier.timeline[-1].name in INSURANCE_STEPS


async def wait_at_insurance_step(
    stub: gg.GatewayServiceAsyncStub,
    ids: list[str],
    within: float,
    enough: Callable[[set[str]], bool] | None = None,
) -> set[str]:
    """The dossiers that reached their insurance step before the deadline
    (or before `enough` of them did)."""
    reached: set[str] = set()
    deadline = time.monotonic() + within
    while len(reached) < len(ids) and time.monotonic() < deadline:
        for dossier_id in ids:
            if dossier_id not in reached:
                got = (await stub.GetDossier(g.GetDossierRequest(dossier_id=dossier_id))).dossier
                if at_insurance_step(got):
                    reached.add(dossier_id)
        if enough is not None and enough(reached):
            break
        await asyncio.sleep(0.1)
    return reached


# How long the test keeps insurance down for the probes' population steps.
OUTAGE_SECONDS = 30.0


async def test_an_agency_down_while_another_agencys_steps_keep_flowing(
    stack: Stack, channels: dict[str, grpc.aio.Channel]
) -> None:
    # Insurance goes down. Births and deaths submitted first reach their
    # insurance step and retry there, until every partition has one retrying.
    # The probes submitted after that must still get their health and
    # population steps done while insurance is down: those never wait behind
    # another agency's retries. Then insurance comes back and all complete,
    # each effect once.
    families = [new_family(11) for _ in range(40)]
    probes = families[-3:]
    await seed_families(channels, families, born=BORN, died=DIED)
    stub = gateway(channels)
    topics = Topics.with_prefix(stack.topic_prefix)
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap_servers)
    await producer.start()
    try:
        partitions = len(await producer.partitions_for(topics.dossiers))
    finally:
        await producer.stop()
    stack.stop_component("insurance")
    try:
        blockers: list[str] = []
        blocked: set[int] = set()
        used: list[Family] = []
        for n, family in enumerate(families[:-3]):
            if blocked == set(range(partitions)):
                break
            used.append(family)
            for dossier_id in (
                await submit_birth(stub, f"e2e-iso-b{n}", birth_form(family, BORN)),
                await submit_death(stub, f"e2e-iso-d{n}", death_form(family, DIED)),
            ):
                blockers.append(dossier_id)
                blocked.add(partition_of(dossier_id, partitions))
        assert blocked == set(range(partitions)), "not every partition got a blocker"

        def every_partition_retrying(reached: set[str]) -> bool:
            return {partition_of(d, partitions) for d in reached} == blocked

        # One retrying insurance step per partition is enough to hold up a
        # partition that waits for its whole batch.
        stuck = await wait_at_insurance_step(
            stub, blockers, within=60, enough=every_partition_retrying
        )
        assert every_partition_retrying(stuck), "a partition has no insurance step retrying"
        probe_ids = [
            dossier_id
            for n, family in enumerate(probes)
            for dossier_id in (
                await submit_birth(stub, f"e2e-iso-pb{n}", birth_form(family, BORN)),
                await submit_death(stub, f"e2e-iso-pd{n}", death_form(family, DIED)),
            )
        ]
        flowed = await wait_at_insurance_step(stub, probe_ids, within=OUTAGE_SECONDS)
    finally:
        stack.start_component("insurance")
    back = time.time()
    # Each probe, from submission to its last population step done.
    waited = {}
    for dossier_id in probe_ids:
        done = await finished(stub, dossier_id, within=120)
        assert done.state == g.DOSSIER_STATE_COMPLETED, done.rejection
        population = [s for s in done.timeline if s.agency == "population"][-1]
        waited[dossier_id] = round(
            (population.finished_at.ToMilliseconds() - done.submitted_at.ToMilliseconds()) / 1000, 2
        )
    assert set(flowed) == set(probe_ids), (
        f"population steps waited for insurance (seconds from submission): {waited}"
    )
    print(f"population steps done while insurance was down, seconds from submission: {waited}")
    last_insurance_step = 0
    for dossier_id in blockers:
        done = await finished(stub, dossier_id, within=120)
        assert done.state == g.DOSSIER_STATE_COMPLETED
        insurance = [s for s in done.timeline if s.agency == "insurance"][-1]
        last_insurance_step = max(last_insurance_step, insurance.finished_at.ToMilliseconds())
    print(
        f"{len(blockers)} insurance steps waiting out the outage all done "
        f"{last_insurance_step / 1000 - back:.2f} s after insurance served again"
    )
    everyone = [*used, *probes]
    assert births_recorded(stack, everyone) == (len(everyone),) * 3
    assert deaths_recorded(stack, everyone) == (len(everyone),) * 3


async def test_gateway_killed_mid_saga_acts_exactly_once(
    stack: Stack, channels: dict[str, grpc.aio.Channel]
) -> None:
    families = [new_family(8) for _ in range(20)]
    await seed_families(channels, families, born=BORN, died=DIED)
    stub = gateway(channels)
    ids = [
        await submit_birth(stub, f"e2e-kill-{n}", birth_form(f, BORN))
        for n, f in enumerate(families)
    ]
    stack.kill("gateway")
    stack.start_component("gateway")
    await channels["gateway"].close()
    channels["gateway"] = stack.channel("gateway")
    stub = gateway(channels)
    for dossier_id in ids:
        assert (await finished(stub, dossier_id, within=120)).state == g.DOSSIER_STATE_COMPLETED
    assert births_recorded(stack, families) == (20, 20, 20)


async def test_two_gateways_share_the_work(
    stack: Stack, channels: dict[str, grpc.aio.Channel]
) -> None:
    second = stack.add_gateway(database=stack.data_dir / "gateway.sqlite3")
    # Submit only once the group has given the newcomer its share of the steps.
    lanes = [f"steps-{agency}" for agency in STEP_LANES]
    deadline = time.monotonic() + 60
    while not all(
        re.search(rf'"consumer": "{lane}", "partitions": [1-9]', read_log(stack, second))
        for lane in lanes
    ):
        assert time.monotonic() < deadline, "the second gateway was never given every lane's share"
        await asyncio.sleep(0.1)
    families = [new_family(9) for _ in range(24)]
    await seed_families(channels, families, born=BORN, died=DIED)
    async with stack.channel(second) as other:
        stubs = [gateway(channels), gg.GatewayServiceStub(other)]
        ids = [
            await submit_birth(stubs[n % 2], f"e2e-two-{n}", birth_form(f, BORN))
            for n, f in enumerate(families)
        ]
        for n, dossier_id in enumerate(ids):
            done = await finished(stubs[(n + 1) % 2], dossier_id, within=120)
            assert done.state == g.DOSSIER_STATE_COMPLETED
    assert births_recorded(stack, families) == (24, 24, 24)
    logs = [read_log(stack, name) for name in ("gateway", second)]
    assert all('"logger": "steps"' in log for log in logs), "both gateways ran steps"
    stack.stop_component(second)


async def _read_all(stack: Stack, topic: str, *, until: int, within: float = 60) -> list[object]:
    """Every record of `topic` from the start, once at least `until` are there."""
    assert stack.bootstrap_servers is not None
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=stack.bootstrap_servers,
        group_id=f"e2e-reader-{time.monotonic_ns()}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    records: list[object] = []
    deadline = time.monotonic() + within
    try:
        while len(records) < until and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
    finally:
        await consumer.stop()
    return records


async def test_poison_records_are_dead_lettered_and_the_partitions_move_on(
    stack: Stack, channels: dict[str, grpc.aio.Channel]
) -> None:
    # One record per partition that no gateway can read, ahead of a real
    # submission: each goes to the dead-letter topic alone, not its batch.
    topics = Topics.with_prefix(stack.topic_prefix)
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap_servers)
    await producer.start()
    try:
        partitions = await producer.partitions_for(topics.dossiers)
        for partition in sorted(partitions):
            await producer.send_and_wait(
                topics.dossiers,
                key=b"birth-poison",
                value=b"\x00not a protobuf",
                partition=partition,
                headers=[("ce_id", b"poison"), ("ce_type", b"vn.lienthong.nonsense.v9")],
            )
    finally:
        await producer.stop()
    family = new_family(9)
    await seed_families(channels, [family], born=BORN, died=DIED)
    stub = gateway(channels)
    dossier_id = await submit_birth(stub, "e2e-after-poison", birth_form(family, BORN))
    assert (await finished(stub, dossier_id)).state == g.DOSSIER_STATE_COMPLETED
    dead = await _read_all(stack, topics.deadletter, until=len(partitions))
    reasons = [dict(r.headers).get("x-deadletter-reason", b"") for r in dead]  # type: ignore[attr-defined]
    assert len(dead) == len(partitions)
    assert all(b"missing CloudEvents headers" in reason for reason in reasons)


async def test_settled_dossiers_are_announced_with_their_timeline(
    stack: Stack, channels: dict[str, grpc.aio.Channel]
) -> None:
    family = new_family(10)
    await seed_families(channels, [family], born=BORN, died=DIED)
    stub = gateway(channels)
    completed = await submit_birth(stub, "e2e-announced", birth_form(family, BORN))
    waiting = await submit_death(
        stub, "e2e-announced-incomplete", death_form(family, DIED, place_of_death="")
    )
    assert (await finished(stub, completed)).state == g.DOSSIER_STATE_COMPLETED
    topics = Topics.with_prefix(stack.topic_prefix)
    wanted = {completed, waiting}
    announced: dict[str, g.Dossier] = {}
    deadline = time.monotonic() + 60
    while not wanted <= set(announced) and time.monotonic() < deadline:
        for record in await _read_all(stack, topics.settled, until=1):
            dossier = ev.DossierSettled.FromString(record.value).dossier  # type: ignore[attr-defined]
            announced.setdefault(dossier.dossier_id, dossier)
    assert announced[completed].state == g.DOSSIER_STATE_COMPLETED
    assert len(announced[completed].timeline) == 5
    assert announced[waiting].state == g.DOSSIER_STATE_NEEDS_SUPPLEMENT
    assert list(announced[waiting].supplement.missing_fields) == ["place_of_death"]


def test_the_gateway_says_serving_only_once_every_consumer_joined_its_group() -> None:
    # Stack.start() returns when the gateway's health says SERVING: by then
    # every consumer (the saga's, each agency lane's, the old step topic's)
    # must already hold its share of the partitions.
    expected = {"saga", "steps", *(f"steps-{agency}" for agency in STEP_LANES)}
    with Stack(broker=broker_kind()) as fresh:
        log = read_log(fresh, "gateway")
        joined = {
            consumer
            for consumer in expected
            if re.search(rf'"consumer": "{consumer}".*"partitions assigned"', log)
        }
        assert joined == expected


async def test_a_command_left_on_the_step_topic_of_before_the_lanes_is_still_run(
    stack: Stack, channels: dict[str, grpc.aio.Channel]
) -> None:
    # A gateway of before the lanes sent every command to <prefix>.step-commands;
    # one still there after an upgrade is run (here a repeat of a dossier's
    # first step, which the hospital answers from its ledger and the saga
    # ignores as an outcome it has applied).
    family = new_family(12)
    await seed_families(channels, [family], born=BORN, died=DIED)
    stub = gateway(channels)
    dossier = await finished(
        stub, await submit_birth(stub, "e2e-old-topic", birth_form(family, BORN))
    )
    assert dossier.state == g.DOSSIER_STATE_COMPLETED
    snapshot = g.Dossier()
    snapshot.CopyFrom(dossier)
    del snapshot.timeline[1:]
    command = ev.StepCommand(
        dossier_id=dossier.dossier_id, step="verify_birth_certificate", dossier=snapshot
    )
    key, value, headers = encode(
        Event(
            f"{dossier.dossier_id}/verify_birth_certificate",
            dossier.dossier_id,
            command,
            dt.datetime.now(dt.UTC),
        )
    )
    producer = AIOKafkaProducer(bootstrap_servers=stack.bootstrap_servers)
    await producer.start()
    try:
        topic = Topics.with_prefix(stack.topic_prefix).step_commands
        await producer.send_and_wait(topic, key=key, value=value, headers=headers)
    finally:
        await producer.stop()

    def runs() -> int:
        return sum(
            1
            for line in read_log(stack, "gateway").splitlines()
            if '"event": "step"' in line
            and dossier.dossier_id in line
            and '"step": "verify_birth_certificate"' in line
        )

    deadline = time.monotonic() + 60
    while runs() < 2:
        assert time.monotonic() < deadline, "the command on the old topic was never run"
        await asyncio.sleep(0.1)
    again = (await stub.GetDossier(g.GetDossierRequest(dossier_id=dossier.dossier_id))).dossier
    assert again.state == g.DOSSIER_STATE_COMPLETED
    assert births_recorded(stack, [family]) == (1, 1, 1)
