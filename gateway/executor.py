"""The step executor: runs each step command at its agency and sends the
outcome. Transient agency failures are retried with exponential backoff and
full jitter, each call under a deadline; the agency's own refusals become a
REJECTED outcome with its reason."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
import time
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiokafka import AIOKafkaProducer

from common.clock import Clock
from gateway.agencies import Agencies, AgencyRefusalError, TransientAgencyError
from gateway.events import Event, PoisonEventError, Topics
from gateway.kafka import Lease, send, send_now
from gateway.metrics import GatewayMetrics
from gateway.procedures import PROCEDURES, StepPlan, UnknownProcedureError
from gateway.saga import delivery_note
from gateway.steps import Handler, StepDone, StepInput, succeeded
from lienthong.events.v1 import events_pb2 as ev

log = structlog.get_logger("steps")


def plan_of(command: ev.StepCommand) -> StepPlan:
    """The command's step in its dossier's group: the handler to run and the
    agency to run it at. PoisonEventError for a kind or a step the table does
    not hold: such a command can never be run here."""
    try:
        return PROCEDURES.plan(command.dossier, command.step)
    except UnknownProcedureError as unknown:
        raise PoisonEventError(str(unknown)) from None


def step_outcome(
    command: ev.StepCommand,
    *,
    agency: str,
    done: StepDone,
    attempts: int,
    started: dt.datetime,
    finished: dt.datetime,
) -> ev.StepOutcome:
    """The outcome the saga hears: the step's part of the result goes in the
    field its group names."""
    outcome = ev.StepOutcome(
        dossier_id=command.dossier_id,
        step=command.step,
        agency=agency,
        kind=done.kind,
        attempts=attempts,
        outcome=done.outcome,
        reason=done.reason,
        message=done.outcome if done.kind == ev.STEP_OUTCOME_KIND_REJECTED else "",
        started_at_unix_ms=int(started.timestamp() * 1000),
        finished_at_unix_ms=int(finished.timestamp() * 1000),
    )
    if done.result is not None:
        result_field = PROCEDURES.of(command.dossier).result_field
        getattr(outcome, result_field).CopyFrom(done.result)
    return outcome


# Where a step's outcome goes: returns the future of its durability (the
# broker's acknowledgement, or the saga's store transaction in this process).
Deliver = Callable[[str, Event], Awaitable["asyncio.Future[Any]"]]


class StepExecutor:
    def __init__(
        self,
        agencies: Agencies,
        producer: AIOKafkaProducer,
        topics: Topics,
        clock: Clock,
        *,
        retry_base_seconds: float,
        retry_cap_seconds: float,
        metrics: GatewayMetrics | None = None,
        deliver: Deliver | None = None,
    ) -> None:
        self.agencies = agencies
        self.metrics = GatewayMetrics() if metrics is None else metrics
        # Through the broker unless told otherwise (gateway/local_outcomes.py).
        self.deliver: Deliver = deliver or (lambda topic, event: send(producer, topic, event))
        self.producer = producer
        self.topics = topics
        self.clock = clock
        self.retry_base = retry_base_seconds
        self.retry_cap = retry_cap_seconds

    def backoff(self, attempt: int) -> float:
        """Full jitter (AWS architecture blog): spreads retries of many dossiers."""
        return random.uniform(0, min(self.retry_cap, self.retry_base * 2**attempt))

    def check(self, event: Event) -> None:
        command = event.message
        if not isinstance(command, ev.StepCommand):
            raise PoisonEventError(f"the executor does not handle {event.type}")
        plan_of(command)
        if not command.dossier.timeline:
            raise PoisonEventError(f"step {command.step!r} sent without a started timeline")

    async def handle_batch(self, events: list[Event], lease: Lease) -> None:
        """Run the batch's steps concurrently, one dossier's in order, and
        return once every outcome is acknowledged by the broker. Once the
        partition is no longer this process's (the lease says), no agency is
        called and no outcome sent: PartitionRevokedError ends the batch."""
        by_dossier: dict[str, list[ev.StepCommand]] = {}
        for event in events:
            assert isinstance(event.message, ev.StepCommand)  # check() let it through
            by_dossier.setdefault(event.dossier_id, []).append(event.message)
        runs = [asyncio.ensure_future(self._run_in_order(c, lease)) for c in by_dossier.values()]
        try:
            sent = await asyncio.gather(*runs)
        except BaseException:
            # One dossier found the partition gone (or failed): the others
            # stop too, rather than call agencies for a batch that is dropped.
            for run in runs:
                run.cancel()
            raise
        # Every outcome of the batch is sent: none lingers for company.
        send_now(self.producer)
        for acknowledged in (future for futures in sent for future in futures):
            await acknowledged

    async def _run_in_order(
        self, commands: list[ev.StepCommand], lease: Lease
    ) -> list[asyncio.Future[Any]]:
        # Each dossier runs in a task of its own: its id goes on every line
        # logged meanwhile (the agency retries too).
        with structlog.contextvars.bound_contextvars(dossier_id=commands[0].dossier_id):
            return [await self._run(command, lease) for command in commands]

    async def _attempts(
        self, command: ev.StepCommand, agency: str, handler: Handler, lease: Lease
    ) -> tuple[int, str, StepDone]:
        """Call the step's handler until it has an answer: (attempts, the
        agency that answered, what it said). Transient failures are retried:
        after the caller's own backoff while the agency's breaker is closed,
        else when the breaker says (gateway/breaker.py). One wait per attempt."""
        # While the agency is down, one step probes it and the rest wait.
        await self.agencies.breaker(agency).admit()
        attempts = 0
        while True:
            attempts += 1
            lease.check()
            try:
                done = await handler(self.agencies, StepInput(command.dossier, command.step))
                return attempts, agency, done
            except TransientAgencyError as error:
                self.metrics.step_retried(error.agency, command.step)
                pause = self.backoff(attempts)
                breaker = self.agencies.breaker(error.agency)
                if not breaker.open:  # else the breaker said it, once
                    log.warning(
                        "agency unavailable; retrying",
                        step=command.step,
                        error=str(error),
                        attempt=attempts,
                        pause_s=round(pause, 3),
                    )
                await breaker.before_retry(pause)
            except AgencyRefusalError as refusal:
                done = StepDone(ev.STEP_OUTCOME_KIND_REJECTED, refusal.message, refusal.reason)
                return attempts, refusal.agency, done

    async def _run(self, command: ev.StepCommand, lease: Lease) -> asyncio.Future[Any]:
        """Run one step; returns the future of its outcome's acknowledgement."""
        plan = plan_of(command)  # check() let it through
        agency, handler = plan.agency, plan.handler
        started = self.clock.now()
        began = time.perf_counter()
        if handler is None:
            # The gateway's own step (delivering the result), which the saga
            # now does itself; a command for it sent by an older gateway,
            # still in the topic, is run rather than dead-lettered.
            attempts, done = 1, succeeded(delivery_note(command.dossier))
        else:
            attempts, agency, done = await self._attempts(command, agency, handler, lease)
        finished = self.clock.now()
        outcome = step_outcome(
            command,
            agency=agency,
            done=done,
            attempts=attempts,
            started=started,
            finished=finished,
        )
        lease.check()
        acknowledged = await self.deliver(
            self.topics.step_outcomes,
            Event(
                f"{command.dossier_id}/{command.step}/outcome",
                command.dossier_id,
                outcome,
                finished,
            ),
        )
        self.metrics.step_done(agency, command.step, done.kind)
        log.info(
            "step",
            step=command.step,
            agency=agency,
            outcome=ev.StepOutcomeKind.Name(done.kind),
            reason=done.reason or None,
            attempts=attempts,
            duration_ms=round((time.perf_counter() - began) * 1000, 2),
        )
        return acknowledged
