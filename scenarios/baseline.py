"""The plain gRPC unary echo baseline for `lienthong bench`.

How many unary RPCs per second this machine's Python and loopback carry when
nothing else happens: `scenarios.echo_server` (a grpc.aio server in its own
process, one generic bytes-in/bytes-out method) against one grpc.aio channel
driven by `concurrency` coroutines in a closed loop, each sending a ~256-byte
payload (about an agency request) and sending the next as soon as the answer
arrives. A warm-up comes first; only calls completing inside the measured
window count. The bench divides by it: dossiers per s ÷ (baseline RPC per s ÷
agency RPCs per dossier).

Exploration (2 cores shared by both processes, Python 3.11, grpcio 1.85.1,
256 B, 4 s windows after 1 s of warm-up, two runs each while the machine was
otherwise idle; `python -m scenarios.baseline --sweep` repeats it):

    concurrency  channels  requests/s   p50 ms     p99 ms   CPU client + server
              1         1  2,150-2,260  0.42-0.46  0.6-0.8  0.4 + 0.6 cores
              8         1  6,370-6,430  1.2        2.5-3.3  0.8 + 1.0-1.1
             16         1  4,890-6,500  2.4        4.8-9.0  0.7-0.8 + 0.9-1.1
             32         1  6,120-6,960  4.5-5.2    7.7-7.8  0.8 + 1.0-1.1
             64         1  6,350-7,390  8.2-10.1   13-14    0.8 + 1.0-1.1
            128         1  6,760-7,030  18-19      28-29    0.8 + 1.1
             32         2  7,270-7,290  4.2-4.6    6.6-6.7  0.8 + 1.1
             64         2  7,050-7,060  9.3-9.5    15       0.8 + 1.1
            128         2  6,430-7,240  16-20      27-28    0.8 + 1.0-1.1

One call at a time is latency-bound (~0.45 ms a round trip). From about 8 in
flight the two processes fill both cores (the server ~1.05, the client ~0.8)
and throughput is flat at 6-7.4 k/s within run-to-run noise (±10%; under load
from other processes it fell as low as 2-4 k/s, so measure on a quiet
machine); more calls in flight only add queueing latency, and a second
channel (its own TCP connection) adds nothing beyond noise. The default, 32
calls over one channel, sits on that plateau well past its knee without
piling up latency: the machine's unary gRPC capacity, neither starved nor
inflated. Three default runs: 7,102, 6,418 and 6,616 requests/s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc

from common.processes import LOOPBACK, describe_exit, free_port, spawn, tail, terminate
from scenarios.echo_server import FULL_METHOD
from scenarios.report import nearest_rank

DEFAULT_SECONDS = 5.0
DEFAULT_CONCURRENCY = 32
DEFAULT_PAYLOAD_BYTES = 256
DEFAULT_WARMUP_SECONDS = 1.0
START_TIMEOUT_SECONDS = 30.0
STOP_GRACE_SECONDS = 5.0
# One echo on loopback takes well under a millisecond; a call this slow means
# the server is stuck, and the measurement should fail rather than hang.
CALL_TIMEOUT_SECONDS = 10.0
# (concurrency, channels) pairs that `--sweep` tries, in order.
SWEEP = ((1, 1), (8, 1), (16, 1), (32, 1), (64, 1), (128, 1), (32, 2), (64, 2), (128, 2))
# Retry a refused connection quickly while the server process starts (gRPC's
# default first reconnect backoff is a whole second). Only the readiness probe
# uses these; the measured channel has default arguments, as the gateway's do.
_PROBE_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 50),
    ("grpc.min_reconnect_backoff_ms", 50),
    ("grpc.max_reconnect_backoff_ms", 250),
]


class BaselineError(Exception):
    """The echo server did not start, or the measurement failed."""


@dataclass(frozen=True)
class BaselineResult:
    requests: int  # calls completed inside the measured window
    seconds: float  # the measured window's length
    requests_per_s: float
    p50_ms: float  # latency of the calls counted (nan when there are none)
    p99_ms: float
    concurrency: int

    def describe(self) -> str:
        return (
            f"gRPC unary echo baseline: {self.requests_per_s:,.0f} requests/s "
            f"({self.requests:,} in {self.seconds:.2f} s, concurrency {self.concurrency}, "
            f"p50 {self.p50_ms:.2f} ms, p99 {self.p99_ms:.2f} ms)"
        )


def measure_echo_baseline(
    *,
    seconds: float = DEFAULT_SECONDS,
    concurrency: int = DEFAULT_CONCURRENCY,
    payload_bytes: int = DEFAULT_PAYLOAD_BYTES,
    warmup_s: float = DEFAULT_WARMUP_SECONDS,
) -> BaselineResult:
    """Start an echo server process, load it, stop it; the measured window's result.

    Runs its own event loop (asyncio.run): call it from synchronous code. From
    inside a running loop, use `echo_server()` and `echo_load()` instead.
    """
    with echo_server() as target:
        return asyncio.run(
            echo_load(
                target,
                seconds=seconds,
                concurrency=concurrency,
                payload_bytes=payload_bytes,
                warmup_s=warmup_s,
            )
        )


@contextlib.contextmanager
def echo_server(*, start_timeout: float = START_TIMEOUT_SECONDS) -> Iterator[str]:
    """Run `python -m scenarios.echo_server` on a free loopback port; yield its
    address once it answers; SIGTERM it (SIGKILL after a grace period) on exit."""
    with tempfile.TemporaryDirectory(prefix="lienthong-echo-") as tmp:
        log_file = Path(tmp) / "echo_server.log"
        port = free_port()
        proc = spawn(
            [sys.executable, "-m", "scenarios.echo_server", "--port", str(port)],
            log_file=log_file,
        )
        try:
            target = f"{LOOPBACK}:{port}"
            _wait_answering(target, proc, log_file, start_timeout)
            yield target
        finally:
            terminate([proc], grace_seconds=STOP_GRACE_SECONDS)


def _wait_answering(
    target: str, proc: subprocess.Popen[bytes], log_file: Path, timeout: float
) -> None:
    """Echo until the server answers, it exits, or the deadline passes. Each
    probe waits for the connection (wait_for_ready), so there is no sleep."""
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(target, options=_PROBE_OPTIONS) as channel:
        echo: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
            FULL_METHOD,
            _registered_method=True,  # type: ignore[call-arg]  # not in types-grpcio yet
        )
        while (remaining := deadline - time.monotonic()) > 0:
            if proc.poll() is not None:
                raise BaselineError(
                    f"the echo server {describe_exit(proc.returncode)} while starting:\n"
                    + tail(log_file)
                )
            try:
                echo(b"ready?", timeout=min(0.5, remaining), wait_for_ready=True)
            except grpc.RpcError as error:
                if error.code() not in (
                    grpc.StatusCode.DEADLINE_EXCEEDED,
                    grpc.StatusCode.UNAVAILABLE,
                ):
                    raise
                continue
            return
    raise BaselineError(f"the echo server did not answer within {timeout:.0f} s:\n{tail(log_file)}")


class _Window:
    """Whether a completing call counts; flipped by the controller only, so the
    count covers exactly the calls completing between its two timestamps."""

    def __init__(self) -> None:
        self.recording = False
        self.stopping = False
        self.latencies: list[float] = []


async def echo_load(
    target: str,
    *,
    seconds: float = DEFAULT_SECONDS,
    concurrency: int = DEFAULT_CONCURRENCY,
    payload_bytes: int = DEFAULT_PAYLOAD_BYTES,
    warmup_s: float = DEFAULT_WARMUP_SECONDS,
    channels: int = 1,
) -> BaselineResult:
    """Closed-loop unary echo load against `target`: `concurrency` coroutines
    shared round-robin over `channels` grpc.aio channels (each its own TCP
    connection), `warmup_s` uncounted, then `seconds` counted."""
    if concurrency < 1 or channels < 1:
        raise ValueError("concurrency and channels must be at least 1")
    if seconds <= 0 or warmup_s < 0 or payload_bytes < 0:
        raise ValueError("seconds must be positive, warmup_s and payload_bytes not negative")
    payload = bytes(i % 251 for i in range(payload_bytes))
    # Separate subchannel pools: otherwise channels to one target share one connection.
    options = [("grpc.use_local_subchannel_pool", 1)] if channels > 1 else []
    opened = [grpc.aio.insecure_channel(target, options=options) for _ in range(channels)]
    window = _Window()
    try:
        # Registered, as in the generated stubs our agency clients use.
        calls: list[grpc.aio.UnaryUnaryMultiCallable[bytes, bytes]] = [
            c.unary_unary(FULL_METHOD, _registered_method=True)  # type: ignore[call-arg]
            for c in opened
        ]
        async with asyncio.TaskGroup() as workers:
            for index in range(concurrency):
                workers.create_task(_worker(calls[index % channels], payload, window))
            await asyncio.sleep(warmup_s)
            window.recording = True
            started = time.perf_counter()
            await asyncio.sleep(seconds)
            window.recording = False
            elapsed = time.perf_counter() - started
            window.stopping = True
    finally:
        for channel in opened:
            await channel.close()
    latencies = sorted(window.latencies)
    return BaselineResult(
        requests=len(latencies),
        seconds=elapsed,
        requests_per_s=len(latencies) / elapsed,
        p50_ms=nearest_rank(latencies, 0.50) * 1000,
        p99_ms=nearest_rank(latencies, 0.99) * 1000,
        concurrency=concurrency,
    )


async def _worker(
    echo: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes], payload: bytes, window: _Window
) -> None:
    while not window.stopping:
        sent = time.perf_counter()
        answer = await echo(payload, timeout=CALL_TIMEOUT_SECONDS)
        if window.recording:
            window.latencies.append(time.perf_counter() - sent)
        if len(answer) != len(payload):
            raise BaselineError(f"echo answered {len(answer)} bytes for {len(payload)}")


async def _sweep(target: str, seconds: float, payload_bytes: int, warmup_s: float) -> None:
    for concurrency, channels in SWEEP:
        result = await echo_load(
            target,
            seconds=seconds,
            concurrency=concurrency,
            payload_bytes=payload_bytes,
            warmup_s=warmup_s,
            channels=channels,
        )
        print(
            f"concurrency {concurrency:4d}, channels {channels}: "
            f"{result.requests_per_s:8,.0f} requests/s, "
            f"p50 {result.p50_ms:6.2f} ms, p99 {result.p99_ms:6.2f} ms",
            flush=True,
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m scenarios.baseline",
        description="Measure the plain gRPC unary echo baseline on this machine.",
    )
    parser.add_argument("--seconds", type=float, default=DEFAULT_SECONDS)
    parser.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    parser.add_argument("--payload-bytes", type=int, default=DEFAULT_PAYLOAD_BYTES)
    parser.add_argument("--warmup", type=float, default=DEFAULT_WARMUP_SECONDS)
    parser.add_argument(
        "--sweep", action="store_true", help="try several concurrencies and channel counts"
    )
    args = parser.parse_args(argv)
    try:
        if args.sweep:
            with echo_server() as target:
                asyncio.run(_sweep(target, args.seconds, args.payload_bytes, args.warmup))
            return
        result = measure_echo_baseline(
            seconds=args.seconds,
            concurrency=args.concurrency,
            payload_bytes=args.payload_bytes,
            warmup_s=args.warmup,
        )
    except BaselineError as error:
        raise SystemExit(f"baseline: {error}") from None
    print(result.describe())


if __name__ == "__main__":
    main()
