"""A circuit breaker per agency: while an agency is down, one call probes it
and the others wait for the probe's answer instead of each retrying on its
own timer.

Without it, every dossier held up by an outage slept out its own jittered
backoff (up to the retry cap), so after the agency came back the last of
them called it up to a cap later, and the batch they belonged to waited for
the last one: a chaos replay saw the population lane take 20 s to drain a
30 s outage. Meanwhile hundreds of held steps each failed and logged a retry
every few seconds.

Closed (the agency answers): a failed call is retried after its own backoff.
After `threshold` transient failures in a row the breaker opens: one caller
at a time probes the agency every `probe_every` seconds, the rest wait. The
first call that succeeds closes it and wakes every waiter at once. A prober
that never reports (its task cancelled, its partition handed over) loses its
turn after a few probe intervals, so the breaker cannot stick open.

A caller waits once before each call: admit() before its first, and
before_retry() (which admits) before each retry, never both. A caller that
did both held the probe slot it had just taken, waited for that slot to
lapse (4 probe intervals), and probed every 3 s instead of every 0.5 s: a
registry back from an outage was called again 0-3 s late (2.6 s after the
population registry served again, in a chaos replay).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger("agencies")


def _caller() -> object | None:
    """The task calling: a probe and its report are made by one step's task."""
    try:
        return asyncio.current_task()
    except RuntimeError:  # no loop running: no task can be the prober
        return None


class Breaker:
    def __init__(
        self,
        agency: str,
        *,
        threshold: int = 3,
        probe_every: float = 0.5,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if threshold < 1 or probe_every <= 0:
            raise ValueError(f"need threshold >= 1 and probe_every > 0 for {agency}")
        self.agency = agency
        self.threshold = threshold
        self.probe_every = probe_every
        self._monotonic = monotonic
        self._sleep = sleep  # with monotonic, a test's clock
        self.failures = 0  # transient failures in a row
        self.opened_at: float | None = None
        self._closed = asyncio.Event()
        self._closed.set()
        self._probe_until = 0.0  # the probe slot is taken until then
        self._prober: object | None = None  # the task that holds it
        self.held = 0  # calls that waited for a probe while open (for the log)

    @property
    def open(self) -> bool:
        return self.opened_at is not None

    def succeeded(self) -> None:
        self.failures = 0
        if self.opened_at is not None:
            log.info(
                "agency answers again; held steps go on",
                agency=self.agency,
                down_s=round(self._monotonic() - self.opened_at, 1),
                held=self.held,
            )
            self.opened_at = None
            self.held = 0
            self._probe_until = 0.0
            self._prober = None
            self._closed.set()

    def failed(self) -> None:
        self.failures += 1
        if self._prober is not None and self._prober is _caller():
            # The probe has its answer: the next one may go. Only the
            # prober's failure frees the slot: calls let through while the
            # breaker was closed still fail as it opens, and each freeing
            # the slot for its own next try made them all probers, in step,
            # for as long as the outage lasted (28 calls every 0.5 s).
            self._probe_until = 0.0
            self._prober = None
        if self.opened_at is None and self.failures >= self.threshold:
            self.opened_at = self._monotonic()
            self._closed.clear()
            log.warning(
                "agency unavailable; its steps wait for a probe",
                agency=self.agency,
                failures=self.failures,
                probe_every_s=self.probe_every,
            )

    async def before_retry(self, backoff: float) -> None:
        """Wait before trying again after a transient failure: the caller's
        own backoff while closed, then as admit() (the breaker may have
        opened meanwhile). The retry that follows needs no admit() of its own."""
        if self.opened_at is None:
            await self._sleep(backoff)
        await self.admit()

    async def admit(self) -> None:
        """Wait before a call: at once while closed; while open, until this
        caller's turn to probe or until the breaker closes."""
        if self.opened_at is None:
            return
        self.held += 1
        while self.opened_at is not None:
            now = self._monotonic()
            if now >= self._probe_until:
                # This caller probes; the slot is its own until it reports or
                # a few intervals pass without a report.
                self._probe_until = now + 4 * self.probe_every
                self._prober = _caller()
                await self._sleep(self.probe_every)
                return
            # Woken when the breaker closes; else look again for a free
            # probe slot now and then (the prober may be gone).
            await self._closed_or_after(4 * self.probe_every)

    async def _closed_or_after(self, seconds: float) -> None:
        closed = asyncio.ensure_future(self._closed.wait())
        lapsed = asyncio.ensure_future(self._sleep(seconds))
        try:
            await asyncio.wait((closed, lapsed), return_when=asyncio.FIRST_COMPLETED)
        finally:
            closed.cancel()
            lapsed.cancel()
