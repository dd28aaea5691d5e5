"""Replay a scenario's synthetic citizens through a running stack.

An open model: each declaration is sent at its scheduled time whatever the
earlier ones are doing, and its latency is counted from that scheduled time,
so a slow gateway cannot hide its slowness by slowing the load down
(coordinated omission). The end of each dossier is heard on the gateway's
`<prefix>.dossier-settled` topic, one Kafka consumer for the whole run instead
of a poll per dossier; the dossier it carries has the timeline, so end-to-end
and per-step latencies come from the gateway's own timestamps. What was lost
or done twice is then counted from the registries' own records (audit.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import time
from collections import deque
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Protocol, TypeVar

import grpc
import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from google.protobuf.timestamp_pb2 import Timestamp

from common.channels import channel as open_channel
from common.errors import error_info
from lienthong.events.v1 import events_pb2 as ev
from lienthong.gateway.v1 import gateway_pb2 as gw
from lienthong.gateway.v1 import gateway_pb2_grpc as gw_grpc
from lienthong.health.v1 import health_pb2_grpc as hl_grpc
from lienthong.insurance.v1 import insurance_pb2_grpc as ins_grpc
from lienthong.population.v1 import population_pb2_grpc as pop_grpc
from scenarios import contract_records
from scenarios.audit import (
    AuditResult,
    InsuranceFile,
    InsuranceRecords,
    PopulationFile,
    PopulationRecords,
    audit_records,
    read_only,
)
from scenarios.chaos import (
    AGENCY_KILL,
    AGENCY_OUTAGE,
    BROKER_RESTART,
    DATABASE_RESTART,
    GATEWAY_KILL,
    PlannedFault,
    plan_faults,
    waiting_windows,
)
from scenarios.declarations import DeclarationPlan, PlannedDeclaration, plan_declarations
from scenarios.executions import ExecutionCounts
from scenarios.faults import DUPLICATE_SUBMISSION
from scenarios.population import SyntheticPopulation, generate_population
from scenarios.recovery import HOLD_S, PRE_FAULT_S, Backlog, episodes, time_to_recover
from scenarios.report import LatencyRecorder, OutcomeCounts, new_histogram, record_ms, summarize
from scenarios.scenario import Scenario
from scenarios.schedule import arrival_offsets
from scenarios.seed_batches import seed_requests

log = structlog.get_logger("replay")

# A submission the gateway could not take (down, overloaded) is retried with
# the same idempotency key, as a citizen's portal would, for this long.
SUBMIT_GIVE_UP_SECONDS = 30.0
# gRPC's reconnect backoff grows to 120 s by default; a replay that kills
# gateways wants to send to one again as soon as it is back.
GATEWAY_CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
]
SUBMIT_DEADLINE_SECONDS = 10.0
SEED_TIMEOUT_SECONDS = 600.0
STATE_NAMES = {
    gw.DOSSIER_STATE_COMPLETED: "COMPLETED",
    gw.DOSSIER_STATE_COMPLETED_WITH_REFUSALS: "COMPLETED_WITH_REFUSALS",
    gw.DOSSIER_STATE_REJECTED: "REJECTED",
    gw.DOSSIER_STATE_NEEDS_SUPPLEMENT: "NEEDS_SUPPLEMENT",
}
_RETRYABLE = {
    # CANCELLED: an overloaded server may drop a call it had not started.
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}


def stored_dossier(error: grpc.aio.AioRpcError) -> str | None:
    """The dossier a refused submission was stored as anyway: the gateway
    says so (ErrorInfo reason BROKER_UNAVAILABLE, metadata dossier_id) when
    the broker did not acknowledge in time."""
    info = error_info(error)
    if info is None or info.reason != "BROKER_UNAVAILABLE":
        return None
    return info.metadata.get("dossier_id") or None


@dataclass(frozen=True)
class ReplayTarget:
    """Where the stack listens, and the registries' own files for the audit."""

    gateway: str
    # agency name → host:port (common/agencies.py)
    agencies: dict[str, str]
    bootstrap_servers: str
    settled_topic: str
    # agency name → its SQLite file or PostgreSQL URL, for the agencies that
    # are ours; one plugged in from elsewhere (--agency) has none, and the
    # audit says what it could not check without it.
    databases: Mapping[str, str | Path]
    # Every gateway's address (the first is `gateway`); submissions go to each
    # in turn and, when one does not answer, to the next, as a load balancer would.
    gateways: tuple[str, ...] = ()

    @property
    def gateway_addresses(self) -> tuple[str, ...]:
        return self.gateways or (self.gateway,)


class AgencyFaults(Protocol):
    """What a scenario may do to the stack's processes while the replay runs."""

    def stop(self, agency: str) -> None: ...

    def start(self, name: str) -> None:
        """Start an agency or a gateway again; return once it serves."""

    def kill(self, name: str) -> None:
        """SIGKILL an agency or a gateway."""

    def kill_broker(self) -> None: ...

    def start_broker(self) -> None: ...

    def kill_database(self) -> None:
        """SIGKILL the stack's PostgreSQL server."""

    def start_database(self) -> None:
        """Start it again on its port and data; return once it accepts connections."""

    def set_latency(self, agency: str, milliseconds: float) -> None: ...


RECOVERY_DEFINITION = (
    "seconds after the fault ended (its process serving again) until the backlog "
    "(dossiers sent by their scheduled time less those ended) is back to at most its "
    f"highest level in the {PRE_FAULT_S} s before the fault (or one period of a fault "
    "recurring throughout, if longer) plus a tenth of the offered rate then (at least 1), "
    f"and stays there for {HOLD_S} s; faults that overlap are one episode, each measured "
    "from the episode's start and end; null: never before the run ended, or the process "
    "did not come back; submissions given up on count as never ended"
)
CONCURRENCY_DEFINITION = (
    "a (dossier, step) run by two different gateway processes whose executions "
    "[start, end] overlap, from the gateways' step log lines"
)


@dataclass
class ObservedFault:
    """A planned fault as it happened: seconds from the replay's start."""

    planned: PlannedFault
    at_s: float | None = None  # the kill or stop done
    restarted_s: float | None = None  # the start begun: the fault's end
    up_s: float | None = None  # serving again
    error: str | None = None

    def as_dict(
        self, recovery_s: float | None, episode: tuple[float, float] | None = None
    ) -> dict[str, Any]:
        def rounded(value: float | None) -> float | None:
            return None if value is None else round(value, 2)

        return {
            "kind": self.planned.kind,
            "target": self.planned.target,
            "planned_at_s": rounded(self.planned.at_s),
            "planned_end_s": rounded(self.planned.end_s),
            "at_s": rounded(self.at_s),
            "restarted_s": rounded(self.restarted_s),
            "up_s": rounded(self.up_s),
            "recovery_s": recovery_s,
            # The overlapping faults' span it was measured over (see recovery.py).
            "episode_s": None if episode is None else [rounded(episode[0]), rounded(episode[1])],
            "error": self.error,
        }


@dataclass(frozen=True)
class Prepared:
    population: SyntheticPopulation
    plan: DeclarationPlan
    offsets: list[float]  # one per planned declaration, seconds from the start
    seconds: float  # to generate it all


# Ends kept for a live view's windows (the console's last 10 s): enough for
# 5,000 dossiers a second; older ones go first, so memory stays bounded.
RECENT_ENDS = 50_000


@dataclass
class Progress:
    planned: int
    sent: int = 0
    accepted: int = 0
    settled: int = 0
    failed: int = 0
    elapsed_s: float = 0.0
    duration_s: float = 0.0
    phase: str = "replaying"
    # (seconds from the start when it ended, end-to-end ms), the newest last:
    # what a live view computes its recent percentiles and throughput from.
    recent_ends: deque[tuple[float, float]] = field(
        default_factory=lambda: deque(maxlen=RECENT_ENDS)
    )


@dataclass
class ReplayResult:
    counts: OutcomeCounts
    recorder: LatencyRecorder
    audit: AuditResult
    started_at: dt.datetime
    wall_seconds: float
    seed_seconds: float
    seeded_records: int
    generate_seconds: float
    # Submissions given up on, and why (a few examples each).
    submit_failures: dict[str, int] = field(default_factory=dict)
    # Submissions answered UNAVAILABLE until the replay gave up, but stored by
    # a gateway (BROKER_UNAVAILABLE): followed to their end like the others.
    stored_unacknowledged: int = 0
    # Declarations that ended otherwise than planned: "expected -> observed" counts.
    unexpected_outcomes: dict[str, int] = field(default_factory=dict)
    agency_rpcs: int = 0  # agency calls the plan needs (for the benchmark's ratio)
    # Per process, from the caller's sampler: MB after warm-up, at the end, growth.
    memory_mb: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The chaos: each fault as done, with its time to recover.
    faults: list[dict[str, Any]] = field(default_factory=list)
    # End-to-end latency of dossiers sent inside / outside an agency outage or
    # kill or a broker restart (those inside wait for it by design).
    latency_by_window: dict[str, Any] = field(default_factory=dict)
    # Unfinished dossiers by the state the gateway last gave them.
    unfinished_states: dict[str, int] = field(default_factory=dict)
    gateways: int = 1
    # From the gateways' logs, filled in by the caller (None: not measured).
    executions: ExecutionCounts | None = None

    @property
    def concurrent_step_executions(self) -> int:
        return 0 if self.executions is None else self.executions.concurrent_step_executions

    def chaos(self) -> dict[str, Any]:
        return {
            "gateways": self.gateways,
            "faults": self.faults,
            "recovery_definition": RECOVERY_DEFINITION,
            "latency_ms_by_window": self.latency_by_window,
            "unfinished_states": self.unfinished_states,
            "left_received": self.unfinished_states.get("RECEIVED", 0),
            "left_in_progress": self.unfinished_states.get("IN_PROGRESS", 0),
            "stored_unacknowledged": self.stored_unacknowledged,
            "executions": None if self.executions is None else self.executions.as_dict(),
            "concurrency_definition": CONCURRENCY_DEFINITION,
        }

    def extra(self) -> dict[str, Any]:
        """The report's fields beyond the standard ones."""
        return {
            "chaos": self.chaos(),
            "unexpected_effects": self.audit.unexpected_effects,
            "wrong_amounts": self.audit.wrong_amounts,
            "audited_dossiers": self.audit.checked,
            "audit_examples": self.audit.examples,
            "audit_not_checked": self.audit.not_checked,
            "submit_failures": self.submit_failures,
            "unexpected_outcomes": self.unexpected_outcomes,
            "seeding": {
                "records": self.seeded_records,
                "seconds": round(self.seed_seconds, 2),
                "records_per_s": round(self.seeded_records / self.seed_seconds)
                if self.seed_seconds
                else None,
            },
            "generation_seconds": round(self.generate_seconds, 2),
            "memory_mb": self.memory_mb,
        }


async def audit_of(
    target: ReplayTarget,
    declarations: Sequence[PlannedDeclaration],
    accepted: Collection[str],
    children: Mapping[str, str],
) -> AuditResult:
    """The audit of the registries' records: from our registries' own files,
    and through the contract's read RPCs for an agency plugged in from
    elsewhere (`--agency`), with what that could not check.

    `children`: birth certificate → the child's ID number, as the settled
    dossiers reported it (the contracts have no lookup by certificate)."""
    people = {
        *children.values(),
        *(d.deceased_id_number for d in declarations if d.deceased_id_number is not None),
    }
    population_db = target.databases.get("population")
    insurance_db = target.databases.get("insurance")
    citizens = (
        None
        if population_db is not None
        else await contract_records.read_citizens(target.agencies["population"], people)
    )
    participants = (
        None
        if insurance_db is not None
        else await contract_records.read_participants(target.agencies["insurance"], people)
    )

    def run() -> AuditResult:
        with contextlib.ExitStack() as files:
            population: PopulationRecords
            insurance: InsuranceRecords
            if population_db is not None:
                population = PopulationFile(files.enter_context(closing(read_only(population_db))))
            else:
                assert citizens is not None
                population = contract_records.PopulationThroughContract(citizens, children)
            if insurance_db is not None:
                insurance = InsuranceFile(files.enter_context(closing(read_only(insurance_db))))
            else:
                assert participants is not None
                insurance = contract_records.InsuranceThroughContract(participants)
            return audit_records(declarations, accepted, population, insurance)

    result = await asyncio.get_running_loop().run_in_executor(None, run)
    result.not_checked = [
        contract_records.NOT_CHECKED[name]
        for name, read in (("population", citizens), ("insurance", participants))
        if read is not None
    ]
    return result


def agency_rpcs(planned: PlannedDeclaration) -> int:
    """Registry calls a declaration that completes costs: births verify, register,
    reside, insure; deaths verify, register, remove the residence, end coverage,
    and settle the allowance when claimed."""
    if planned.kind == "birth":
        return 4
    if planned.kind == "death":
        claimed = bool(planned.request.declaration.claim_funeral_allowance)  # type: ignore[union-attr]
        return 5 if claimed else 4
    raise ValueError(f"no count of agency calls for a {planned.kind} declaration")


def prepare(scenario: Scenario, today: dt.date) -> Prepared:
    """Generate the citizens and the declarations, and give each its time."""
    began = time.perf_counter()
    offsets = arrival_offsets(scenario)
    duplicate_share = scenario.faults.get(DUPLICATE_SUBMISSION, 0.0)
    # A duplicate is a second send of the same declaration: plan fewer
    # originals so originals and repeats together fill the schedule.
    originals = round(len(offsets) / (1 + duplicate_share))
    births = round(originals * scenario.births_share)
    population = generate_population(scenario.population, seed=scenario.seed, today=today)
    plan = plan_declarations(
        population,
        births=births,
        deaths=originals - births,
        faults=scenario.faults,
        funeral_claim_share=scenario.funeral_claim_share,
        seed=scenario.seed,
        today=today,
    )
    count = len(plan.declarations)
    if count and len(offsets) != count:
        # Rounding leaves a declaration or two over or short: spread them
        # over the same schedule.
        offsets = [offsets[min(len(offsets) - 1, i * len(offsets) // count)] for i in range(count)]
    return Prepared(population, plan, offsets, time.perf_counter() - began)


S = TypeVar("S")


async def _seed_one(call: Callable[..., Any], batches: Iterable[S]) -> None:
    async def stream() -> Any:
        for batch in batches:
            yield batch

    await call(stream(), timeout=SEED_TIMEOUT_SECONDS, wait_for_ready=True)


async def seed(target: ReplayTarget, prepared: Prepared) -> tuple[int, float]:
    """Bulk-load the registries, all three at once. Returns (records, seconds)."""
    requests = seed_requests(prepared.population, prepared.plan)
    began = time.perf_counter()
    async with (
        open_channel(target.agencies["population"]) as population,
        open_channel(target.agencies["health"]) as health,
        open_channel(target.agencies["insurance"]) as insurance,
    ):
        await asyncio.gather(
            _seed_one(
                pop_grpc.PopulationRegistryServiceStub(population).SeedPopulation,
                requests.population,
            ),
            _seed_one(
                hl_grpc.HealthRegistryServiceStub(health).SeedHospitalRecords, requests.health
            ),
            _seed_one(
                ins_grpc.InsuranceRegistryServiceStub(insurance).SeedParticipants,
                requests.insurance,
            ),
        )
    expected = requests.expected
    records = (
        expected.households
        + expected.citizens
        + expected.facilities
        + expected.birth_certificates
        + expected.death_notices
        + expected.participants
    )
    return records, time.perf_counter() - began


async def _partitions(bootstrap_servers: str, topic: str) -> list[int]:
    """The topic's partition numbers (the gateway created it at start-up)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        described = await admin.describe_topics([topic])
    finally:
        await admin.close()
    found = [p["partition"] for t in described if t["topic"] == topic for p in t["partitions"]]
    if not found:
        raise RuntimeError(f"the topic {topic} does not exist: is the gateway running?")
    return sorted(found)


def _seconds(ts: Timestamp) -> float:
    return ts.seconds + ts.nanos / 1e9


class _Run:
    """The state of one replay while it runs."""

    def __init__(self, scenario: Scenario, prepared: Prepared, target: ReplayTarget) -> None:
        self.scenario = scenario
        self.prepared = prepared
        self.target = target
        self.recorder = LatencyRecorder.for_duration(scenario.duration_s)
        self.progress = Progress(planned=len(prepared.plan.declarations))
        self.progress.duration_s = scenario.duration_s
        self.wall_start = 0.0  # the wall-clock time of offset 0
        self.dossier_of: dict[str, str] = {}  # idempotency key -> dossier id
        self.planned_of: dict[str, tuple[PlannedDeclaration, float]] = {}  # dossier -> (plan, at)
        # Only how each ended (state, rejection reason): keeping whole dossiers
        # made this process grow by 120 MB over a national-year replay.
        self.settled: dict[str, tuple[str, str | None]] = {}
        # Each procedure's result, counted as dossiers end (procedure, result,
        # agency, reason) -> dossiers; kept apart from `settled` for the same reason.
        self.procedures: dict[tuple[str, str, str, str], int] = {}
        self.early: dict[str, gw.Dossier] = {}  # settled before its submission answered
        # Birth certificate → the child's ID number, from the births that
        # completed: how the audit finds a child through a contract.
        self.children: dict[str, str] = {}
        self.failures: dict[str, int] = {}
        self.repeats_merged = 0  # repeated submissions answered with the first's dossier
        self.repeats_split = 0  # ... answered with a new dossier: a duplicate
        self.last_end = 0.0
        self.all_settled = asyncio.Event()
        self.sending_done = False
        self.ended_at: list[float] = []  # seconds from the start, one per dossier ended
        self.waiting = waiting_windows(plan_faults(scenario))
        self.inside = new_histogram()  # sent while an agency or the broker was down
        self.outside = new_histogram()
        self.observed: list[ObservedFault] = []
        self.next_gateway = 0
        self.started = asyncio.Event()  # set once wall_start is known
        self.failed_at: list[float] = []  # scheduled times of submissions given up on
        # Given up on, but stored by a gateway (UNAVAILABLE, BROKER_UNAVAILABLE):
        # followed to their end all the same.
        self.stored_unacknowledged = 0

    # --- sending ---------------------------------------------------------------------

    async def submit(
        self,
        stubs: list[gw_grpc.GatewayServiceAsyncStub],
        planned: PlannedDeclaration,
        offset: float,
    ) -> None:
        self.recorder.record_submission(offset)
        give_up = time.monotonic() + SUBMIT_GIVE_UP_SECONDS
        turn = self.next_gateway
        self.next_gateway += 1
        stored_as: str | None = None  # the dossier a gateway said it stored
        while True:
            stub = stubs[turn % len(stubs)]
            try:
                if isinstance(planned.request, gw.SubmitBirthDeclarationRequest):
                    answer: Any = await stub.SubmitBirthDeclaration(
                        planned.request, timeout=SUBMIT_DEADLINE_SECONDS
                    )
                else:
                    answer = await stub.SubmitDeathDeclaration(
                        planned.request, timeout=SUBMIT_DEADLINE_SECONDS
                    )
                dossier_id = str(answer.dossier_id)
                break
            except grpc.aio.AioRpcError as error:
                stored_as = stored_dossier(error) or stored_as
                if error.code() in _RETRYABLE and time.monotonic() < give_up:
                    # The next gateway, with the same idempotency key: they
                    # share one saga store, so the key still finds its dossier.
                    turn += 1
                    await asyncio.sleep(0.2 / len(stubs))
                    continue
                if stored_as is not None:
                    # Stored while the broker was away: the gateway's relay
                    # publishes it when the broker is back, so it is followed
                    # like any other (a portal would show the citizen its id).
                    self.stored_unacknowledged += 1
                    dossier_id = stored_as
                    break
                reason = error.code().name
                self.failures[reason] = self.failures.get(reason, 0) + 1
                self.failed_at.append(offset)
                self.progress.failed += 1
                # Counted in the report; a line each would drown a console.
                log.info("submission failed", key=planned.key, code=reason, detail=error.details())
                return
        known = self.dossier_of.get(planned.key)
        if known is not None:
            # A repeated submission: it must come back to the same dossier
            # (the first send is the one timed).
            if known == dossier_id:
                self.repeats_merged += 1
            else:
                self.repeats_split += 1
            return
        self.progress.accepted += 1
        self.dossier_of[planned.key] = dossier_id
        self.planned_of[dossier_id] = (planned, offset)
        early = self.early.pop(dossier_id, None)
        if early is not None:
            self._ended(dossier_id, early)

    async def send_all(self) -> None:
        loop = asyncio.get_running_loop()
        async with contextlib.AsyncExitStack() as channels:
            stubs: list[gw_grpc.GatewayServiceAsyncStub] = []
            for address in self.target.gateway_addresses:
                channel = await channels.enter_async_context(
                    # A killed gateway comes back within seconds: reconnect as soon.
                    open_channel(address, options=GATEWAY_CHANNEL_OPTIONS)
                )
                await channel.channel_ready()
                stubs.append(gw_grpc.GatewayServiceStub(channel))
            start = loop.time() + 0.2
            self.wall_start = time.time() + 0.2
            self.started.set()
            tasks = []
            for planned, offset in zip(
                self.prepared.plan.declarations, self.prepared.offsets, strict=True
            ):
                delay = start + offset - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                self.progress.sent += 1
                tasks.append(asyncio.create_task(self.submit(stubs, planned, offset)))
            await asyncio.gather(*tasks)
        self.sending_done = True
        self._check_all_settled()

    # --- hearing the ends --------------------------------------------------------------

    def _ended(self, dossier_id: str, dossier: gw.Dossier) -> None:
        if dossier_id in self.settled:
            return
        self.settled[dossier_id] = (
            STATE_NAMES.get(dossier.state, "UNSPECIFIED"),
            dossier.rejection.reason or None,
        )
        planned, offset = self.planned_of[dossier_id]
        child = dossier.birth_result.personal_id_number
        if child and planned.birth_certificate_number is not None:
            self.children[planned.birth_certificate_number] = child
        if dossier.state != gw.DOSSIER_STATE_NEEDS_SUPPLEMENT:
            for procedure in dossier.procedures:
                result = (
                    gw.ProcedureState.Name(procedure.state).removeprefix("PROCEDURE_STATE_").lower()
                )
                key = (procedure.procedure, result, procedure.agency, procedure.reason)
                self.procedures[key] = self.procedures.get(key, 0) + 1
        self.progress.settled += 1
        end = (
            _seconds(dossier.finished_at if dossier.HasField("finished_at") else dossier.updated_at)
            - self.wall_start
        )
        self.last_end = max(self.last_end, end)
        self.recorder.record_dossier(offset, end)
        self.progress.recent_ends.append((end, max(0.0, (end - offset) * 1000)))
        self.ended_at.append(end)
        inside = any(begin <= offset < until for begin, until in self.waiting)
        record_ms(self.inside if inside else self.outside, (end - offset) * 1000)
        for step in dossier.timeline:
            if step.HasField("started_at") and step.HasField("finished_at"):
                ms = (_seconds(step.finished_at) - _seconds(step.started_at)) * 1000
                self.recorder.record_step(step.name, max(ms, 0.0))
        self._check_all_settled()

    def _check_all_settled(self) -> None:
        if self.sending_done and len(self.settled) >= len(self.planned_of):
            self.all_settled.set()

    async def listen(self, ready: asyncio.Event) -> None:
        # No consumer group: the replay reads every partition itself, from the
        # start, and needs no group coordinator (nor its start-up wait).
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.target.bootstrap_servers,
            group_id=None,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            # The end is timed when heard: not a fetch window later (Tansu
            # answers late within the window: brokers/embedded.py). One
            # consumer, for the replay's length only: 50 fetches a second idle.
            fetch_max_wait_ms=20,
        )
        await consumer.start()
        try:
            partitions = await _partitions(self.target.bootstrap_servers, self.target.settled_topic)
            consumer.assign(
                [TopicPartition(self.target.settled_topic, p) for p in sorted(partitions)]
            )
            ready.set()
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=2000)
                for records in batches.values():
                    for record in records:
                        if record.value is None:
                            continue
                        dossier = ev.DossierSettled.FromString(record.value).dossier
                        if dossier.dossier_id in self.planned_of:
                            self._ended(dossier.dossier_id, dossier)
                        elif dossier.dossier_id not in self.settled:
                            self.early[dossier.dossier_id] = dossier
        finally:
            await consumer.stop()

    # --- faults ------------------------------------------------------------------------

    async def _window(
        self, begin_s: float, end_s: float, begin: Callable[[], None], end: Callable[[], None]
    ) -> None:
        """Do `begin` at begin_s and `end` at end_s, in that order even when
        `begin` is slow (stopping an agency waits for its calls in flight)."""
        loop = asyncio.get_running_loop()
        # The sender sets offset 0 only once the gateways' channels are ready;
        # counted from before that (wall_start 0), every window began and
        # ended at once.
        await self.started.wait()
        for at, action in ((begin_s, begin), (end_s, end)):
            await asyncio.sleep(max(0.0, self.wall_start + at - time.time()))
            # The stack's start waits for the agency to serve: off the event loop.
            await loop.run_in_executor(None, action)

    async def _faults_of(self, target: list[ObservedFault], faults: AgencyFaults) -> None:
        """One target's faults in order: its kill never overtakes its previous
        restart (a start waits until the process serves, and may be slow)."""
        loop = asyncio.get_running_loop()
        await self.started.wait()
        for observed in target:
            planned = observed.planned
            down: Callable[[], None]
            up: Callable[[], None]
            if planned.kind == AGENCY_OUTAGE:
                down, up = (
                    partial(faults.stop, planned.target),
                    partial(faults.start, planned.target),
                )
            elif planned.kind in (AGENCY_KILL, GATEWAY_KILL):
                down, up = (
                    partial(faults.kill, planned.target),
                    partial(faults.start, planned.target),
                )
            elif planned.kind == DATABASE_RESTART:
                down, up = faults.kill_database, faults.start_database
            else:
                assert planned.kind == BROKER_RESTART
                down, up = faults.kill_broker, faults.start_broker
            try:
                await asyncio.sleep(max(0.0, self.wall_start + planned.at_s - time.time()))
                await loop.run_in_executor(None, down)
                observed.at_s = time.time() - self.wall_start
                await asyncio.sleep(max(0.0, self.wall_start + planned.end_s - time.time()))
                observed.restarted_s = time.time() - self.wall_start
                # The stack's start waits for the process to serve: off the event loop.
                await loop.run_in_executor(None, up)
                observed.up_s = time.time() - self.wall_start
            # A fault that cannot be done (a start that fails) must not end
            # the replay: the report names it and the dossiers show the rest.
            except Exception as error:
                observed.error = str(error).splitlines()[0] if str(error) else repr(error)
                log.warning("fault failed", fault=planned.label, error=observed.error)

    def fault_tasks(self, faults: AgencyFaults) -> list[asyncio.Task[None]]:
        by_target: dict[str, list[ObservedFault]] = {}
        for planned in plan_faults(self.scenario):
            observed = ObservedFault(planned)
            self.observed.append(observed)
            by_target.setdefault(planned.target, []).append(observed)
        windows = [self._faults_of(target, faults) for target in by_target.values()]
        windows += [
            self._window(
                added.at_s,
                added.end_s,
                partial(faults.set_latency, added.agency, added.latency_ms),
                partial(faults.set_latency, added.agency, 0),
            )
            for added in self.scenario.latencies
        ]
        return [asyncio.create_task(window) for window in windows]

    # --- the outcome ---------------------------------------------------------------------

    def faults_report(self) -> list[dict[str, Any]]:
        """Each fault as done, with its time to recover (scenarios/recovery.py)."""
        # Submissions given up on were offered load never served: they stay
        # in the backlog, as a dossier that never ends does.
        sent = [offset for _, offset in self.planned_of.values()] + self.failed_at
        backlog = Backlog(sent, self.ended_at)
        # A recurring fault (a gateway killed every N s) is the stack's
        # weather while it lasts: the level before a fault spans one period.
        pre_fault_s = max(
            [PRE_FAULT_S, *(math.ceil(k.every_s) for k in self.scenario.gateway_kills)]
        )
        # A process that did not come back has not recovered, whatever the
        # backlog says (nothing may be sent or end at all).
        came_back = [o for o in self.observed if o.up_s is not None and o.at_s is not None]
        spans = [(o.at_s or 0.0, o.up_s or 0.0) for o in came_back]
        episode_of = dict(zip(map(id, came_back), episodes(spans), strict=True))
        report = []
        for observed in self.observed:
            episode = episode_of.get(id(observed))
            recovery = None
            if episode is not None:
                recovery = time_to_recover(backlog, *episode, pre_fault_s=pre_fault_s)
            report.append(observed.as_dict(recovery, episode))
        return report

    async def unfinished_states(self) -> dict[str, int]:
        """Where the dossiers that never ended stand, by the gateways' word:
        RECEIVED (never started), IN_PROGRESS... UNKNOWN when no gateway answers."""
        missing = [d for d in self.planned_of if d not in self.settled]
        states: dict[str, int] = {}
        if not missing:
            return states
        limit = asyncio.Semaphore(32)
        async with contextlib.AsyncExitStack() as channels:
            stubs = [
                gw_grpc.GatewayServiceStub(
                    await channels.enter_async_context(open_channel(address))
                )
                for address in self.target.gateway_addresses
            ]

            async def state_of(index: int, dossier_id: str) -> str:
                async with limit:
                    for k in range(len(stubs)):
                        stub = stubs[(index + k) % len(stubs)]
                        try:
                            answer = await stub.GetDossier(
                                gw.GetDossierRequest(dossier_id=dossier_id), timeout=5
                            )
                        except grpc.aio.AioRpcError:
                            continue
                        return str(gw.DossierState.Name(answer.dossier.state)).removeprefix(
                            "DOSSIER_STATE_"
                        )
                    return "UNKNOWN"

            found = await asyncio.gather(*(state_of(i, d) for i, d in enumerate(missing)))
        for state in found:
            states[state] = states.get(state, 0) + 1
        return dict(sorted(states.items()))

    def counts(self, audited: AuditResult) -> tuple[OutcomeCounts, dict[str, int]]:
        counts = OutcomeCounts(submitted=len(self.planned_of))
        unexpected: dict[str, int] = {}
        for dossier_id, (planned, _) in self.planned_of.items():
            fault = planned.fault if planned.fault != DUPLICATE_SUBMISSION else None
            if fault is not None:
                counts.faults_expected[fault] = counts.faults_expected.get(fault, 0) + 1
            ended = self.settled.get(dossier_id)
            if ended is None:
                counts.unfinished += 1
                continue
            state, reason = ended
            if state == "COMPLETED":
                counts.completed += 1
            elif state == "COMPLETED_WITH_REFUSALS":
                counts.completed_with_refusals += 1
            elif state == "REJECTED":
                counts.rejected += 1
            else:
                counts.needs_supplement += 1
            as_planned = state == planned.expected_state and (
                planned.expected_reason is None or reason == planned.expected_reason
            )
            if as_planned and fault is not None:
                counts.faults_observed[fault] = counts.faults_observed.get(fault, 0) + 1
            if not as_planned:
                label = f"{planned.expected_state} -> {state}" + (f" ({reason})" if reason else "")
                unexpected[label] = unexpected.get(label, 0) + 1
        repeats = self.repeats_merged + self.repeats_split
        if repeats:
            counts.faults_expected[DUPLICATE_SUBMISSION] = repeats
            counts.faults_observed[DUPLICATE_SUBMISSION] = self.repeats_merged
        for (procedure, result, agency, reason), n in sorted(self.procedures.items()):
            counts.count_procedure(procedure, result, agency, reason, n)
        counts.lost = audited.lost
        counts.duplicated_effects = audited.duplicated_effects
        return counts, unexpected


async def replay(
    scenario: Scenario,
    prepared: Prepared,
    target: ReplayTarget,
    faults: AgencyFaults,
    *,
    on_progress: Callable[[Progress], None] | None = None,
    seeded: tuple[int, float] = (0, 0.0),
) -> ReplayResult:
    """Send every planned declaration at its time, wait until each dossier
    ends (or the drain timeout passes), then audit the registries."""
    run = _Run(scenario, prepared, target)
    started_at = dt.datetime.now(dt.UTC)
    ready = asyncio.Event()
    listener = asyncio.create_task(run.listen(ready))
    await asyncio.wait(
        [listener, asyncio.create_task(ready.wait())], return_when=asyncio.FIRST_COMPLETED
    )
    if listener.done():
        listener.result()  # the consumer failed to start: say why
    sender = asyncio.create_task(run.send_all())
    fault_tasks = run.fault_tasks(faults)

    async def report_progress() -> None:
        while on_progress is not None:
            run.progress.elapsed_s = time.time() - run.wall_start if run.wall_start else 0.0
            run.progress.phase = "draining" if run.sending_done else "replaying"
            on_progress(run.progress)
            await asyncio.sleep(0.25)

    ticker = asyncio.create_task(report_progress())
    try:
        await sender
        try:
            await asyncio.wait_for(run.all_settled.wait(), scenario.drain_timeout_s)
        except TimeoutError:
            log.warning("drain timeout", unfinished=len(run.planned_of) - len(run.settled))
        await asyncio.gather(*fault_tasks)
    finally:
        for task in (listener, ticker, sender, *fault_tasks):
            task.cancel()
        await asyncio.gather(listener, ticker, sender, *fault_tasks, return_exceptions=True)
    if on_progress is not None:
        run.progress.phase = "auditing"
        on_progress(run.progress)
    unfinished_states = await run.unfinished_states()
    audited = await audit_of(target, prepared.plan.declarations, set(run.dossier_of), run.children)
    counts, unexpected = run.counts(audited)
    last_end = max(run.last_end, prepared.offsets[-1] if prepared.offsets else 0.0)
    return ReplayResult(
        counts=counts,
        recorder=run.recorder,
        audit=audited,
        started_at=started_at,
        wall_seconds=max(last_end, 1e-9),
        seed_seconds=seeded[1],
        seeded_records=seeded[0],
        generate_seconds=prepared.seconds,
        submit_failures=run.failures,
        stored_unacknowledged=run.stored_unacknowledged,
        unexpected_outcomes=unexpected,
        agency_rpcs=sum(
            agency_rpcs(p) for p, _ in run.planned_of.values() if p.expected_state == "COMPLETED"
        ),
        faults=run.faults_report(),
        latency_by_window={
            "inside_outages": summarize(run.inside),
            "outside_outages": summarize(run.outside),
            "windows_s": [[round(a, 2), round(b, 2)] for a, b in run.waiting],
        },
        unfinished_states=unfinished_states,
        gateways=len(target.gateway_addresses),
    )
