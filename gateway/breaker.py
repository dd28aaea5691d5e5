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
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import structlog

log = structlog.get_logger("agencies")


class Breaker:
    def __init__(
        self,
        agency: str,
        *,
        threshold: int = 3,
        probe_every: float = 0.5,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if threshold < 1 or probe_every <= 0:
            raise ValueError(f"need threshold >= 1 and probe_every > 0 for {agency}")
        self.agency = agency
        self.threshold = threshold
        self.probe_every = probe_every
        self._monotonic = monotonic
        self.failures = 0  # transient failures in a row
        self.opened_at: float | None = None
        self._closed = asyncio.Event()
        self._closed.set()
        self._probe_until = 0.0  # the probe slot is taken until then
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
            self._closed.set()

    def failed(self) -> None:
        self.failures += 1
        self._probe_until = 0.0  # the probe has its answer: the next one may go
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
        own backoff while closed, else as admit()."""
        if self.opened_at is None:
            await asyncio.sleep(backoff)
        else:
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
                await asyncio.sleep(self.probe_every)
                return
            try:
                # Woken when the breaker closes; else look again for a free
                # probe slot now and then (the prober may be gone).
                await asyncio.wait_for(self._closed.wait(), 4 * self.probe_every)
            except TimeoutError:
                continue
