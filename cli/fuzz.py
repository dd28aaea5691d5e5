"""`lienthong fuzz`: arbitrary and malformed requests to every RPC of the four
services, a table of the status codes they got.

Each input goes over real gRPC as bytes (no client-side encoding, so what does
not decode reaches the server as it is). Each answer is judged: never UNKNOWN,
INTERNAL or RESOURCE_EXHAUSTED; a status message of at most 300 characters
that quotes no client value beyond about 100; a refused call leaves every
table of the service's SQLite file as it was; the service still SERVING.
"""

from __future__ import annotations

import collections
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from rich.console import Console
from rich.table import Table

from cli.fuzz_inputs import Input, Rpc, all_rpcs, inputs
from cli.fuzz_targets import FuzzTargets, fuzz_targets

FORBIDDEN = frozenset({"UNKNOWN", "INTERNAL", "RESOURCE_EXHAUSTED"})
MESSAGE_LIMIT = 300
QUOTE_LIMIT = 100
CALL_SECONDS = 60.0
TABLE_WIDTH = 200
# A window of QUOTE_LIMIT + 1 characters tried every QUOTE_STRIDE positions
# finds any run of a client's value longer than QUOTE_LIMIT + QUOTE_STRIDE - 1.
QUOTE_STRIDE = 10


@dataclass(frozen=True)
class Answer:
    code: str
    message: str
    details: tuple[str, ...] = ()


def _details(error: grpc.Call) -> tuple[str, ...]:
    status = rpc_status.from_call(error)
    if status is None:
        return ()
    texts: list[str] = []
    for detail in status.details:
        bad = error_details_pb2.BadRequest()
        failed = error_details_pb2.PreconditionFailure()
        if detail.Unpack(bad):
            texts.extend(f"{v.field}: {v.description}" for v in bad.field_violations)
        elif detail.Unpack(failed):
            texts.extend(v.description for v in failed.violations)
    return tuple(texts)


def call(channel: grpc.Channel, rpc: Rpc, sent: Input) -> Answer:
    """Send the bytes as they are; a streamed answer counts as OK at its first message."""
    try:
        if isinstance(sent.payload, tuple):
            streamed: grpc.StreamUnaryMultiCallable[bytes, bytes] = channel.stream_unary(rpc.path)
            streamed(iter(sent.payload), timeout=CALL_SECONDS)
        elif rpc.server_streaming:
            watch: grpc.UnaryStreamMultiCallable[bytes, bytes] = channel.unary_stream(rpc.path)
            responses = watch(sent.payload, timeout=CALL_SECONDS)
            try:
                next(responses)
            except StopIteration:
                pass
            finally:
                responses.cancel()
        else:
            unary: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(rpc.path)
            unary(sent.payload, timeout=CALL_SECONDS)
    except grpc.RpcError as error:
        assert isinstance(error, grpc.Call)
        return Answer(error.code().name, error.details() or "", _details(error))
    return Answer("OK", "")


def quoted_too_long(text: str, values: Iterable[str]) -> str | None:
    """A run of more than about QUOTE_LIMIT characters of one of the values
    found in text; None if there is none."""
    width = QUOTE_LIMIT + 1
    for value in values:
        for start in range(0, max(len(text) - width + 1, 0), QUOTE_STRIDE):
            window = text[start : start + width]
            if window in value:
                return window
    return None


def judge(rpc: Rpc, sent: Input, answer: Answer) -> list[str]:
    """What is wrong with this answer to this input (nothing, usually)."""
    problems = []
    if answer.code in FORBIDDEN:
        problems.append(f"{answer.code}: {answer.message[:200]}")
    if len(answer.message) > MESSAGE_LIMIT:
        problems.append(f"a status message of {len(answer.message)} characters")
    quoted = quoted_too_long("\n".join((answer.message, *answer.details)), sent.long_strings)
    if quoted is not None:
        problems.append(f"quotes more than {QUOTE_LIMIT} characters of a value: {quoted[:40]}…")
    return problems


@dataclass
class Tally:
    """Status codes per RPC, and every problem found (with what caused it)."""

    codes: dict[str, collections.Counter[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def count(self, rpc: Rpc, code: str) -> None:
        self.codes.setdefault(rpc.full_name, collections.Counter())[code] += 1

    def forbidden(self) -> int:
        return sum(c[code] for c in self.codes.values() for code in FORBIDDEN)


def check_one(
    targets: FuzzTargets, channel: grpc.Channel, rpc: Rpc, sent: Input
) -> tuple[Answer, list[str]]:
    """Send one input and judge the answer, the store and nothing else."""
    before = targets.row_counts(rpc.service)
    answer = call(channel, rpc, sent)
    problems = judge(rpc, sent, answer)
    if answer.code != "OK":
        after = targets.row_counts(rpc.service)
        if after != before:
            changed = {t: (before.get(t), n) for t, n in after.items() if before.get(t) != n}
            problems.append(f"refused ({answer.code}) but wrote rows: {changed}")
    return answer, problems


def fuzz_rpc(
    targets: FuzzTargets,
    rpc: Rpc,
    count: int,
    tally: Tally,
    *,
    seed: int | None = None,
    on_input: Callable[[], None] = lambda: None,
) -> None:
    """Send `count` inputs to one RPC, recording their codes and problems."""
    strategy = inputs(rpc, targets.pool)
    sent = 0
    rounds = 0
    with grpc.insecure_channel(targets.addresses[rpc.service]) as channel:
        # Hypothesis may stop a round early once it has tried what it can
        # think of; another round with another seed goes on.
        while sent < count:

            @settings(
                max_examples=count - sent,
                database=None,
                deadline=None,
                phases=[Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(strategy)
            def one(data: Input) -> None:
                nonlocal sent
                answer, problems = check_one(targets, channel, rpc, data)
                tally.count(rpc, answer.code)
                tally.problems.extend(f"{rpc.full_name}: {p}" for p in problems)
                sent += 1
                on_input()

            if seed is not None:
                one = hypothesis_seed(seed + rounds)(one)
            one()
            rounds += 1
    if not targets.serving(rpc.service):
        tally.problems.append(f"{rpc.full_name}: {rpc.service} no longer SERVING")


def table(tally: Tally, title: str) -> Table:
    codes = sorted(
        {code for counter in tally.codes.values() for code in counter},
        key=lambda name: grpc.StatusCode[name].value[0],
    )
    shown = Table(title=title, title_justify="left")
    shown.add_column("RPC", no_wrap=True)
    shown.add_column("inputs", justify="right")
    for code in codes:
        shown.add_column(code, justify="right")
    for name, counter in tally.codes.items():
        shown.add_row(
            name,
            f"{sum(counter.values()):,}",
            *(f"{counter[c]:,}" if counter[c] else "" for c in codes),
        )
    return shown


def print_table(console: Console, shown: Table) -> None:
    """The RPCs' full names whole: wider than a console piped (140 columns)."""
    wide = Console(
        file=console.file,
        width=max(console.width, TABLE_WIDTH),
        force_terminal=console.is_terminal,
        soft_wrap=False,
    )
    wide.print(shown)


def run_fuzz(
    console: Console,
    *,
    inputs_per_rpc: int,
    only: str | None,
    seed: int | None,
    keep: Path | None,
) -> int:
    rpcs = [r for r in all_rpcs() if only is None or only in r.full_name]
    if not rpcs:
        console.print(f"No RPC's full name contains {only!r}.")
        return 2
    tally = Tally()
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="lienthong-fuzz-") as scratch:
        directory = keep or Path(scratch)
        directory.mkdir(parents=True, exist_ok=True)
        with console.status("Starting Kafka (embedded), three registries and the gateway…"):
            targets_context = fuzz_targets(directory)
            targets = targets_context.__enter__()
        try:
            for number, rpc in enumerate(rpcs, start=1):
                label = f"[{number}/{len(rpcs)}] {rpc.full_name}"
                with console.status(label) as status:
                    done = 0

                    def progress(label: str = label) -> None:
                        nonlocal done
                        done += 1
                        if done % 100 == 0:
                            status.update(f"{label}: {done:,}/{inputs_per_rpc:,}")

                    fuzz_rpc(targets, rpc, inputs_per_rpc, tally, seed=seed, on_input=progress)
                console.print(f"{label}: {dict(tally.codes[rpc.full_name])}", highlight=False)
            traceback = "Traceback" in targets.server_log()
        finally:
            targets_context.__exit__(None, None, None)
    minutes = (time.monotonic() - began) / 60
    total = sum(sum(c.values()) for c in tally.codes.values())
    print_table(
        console,
        table(
            tally,
            f"lienthong fuzz: {total:,} inputs, {inputs_per_rpc:,} per RPC, {len(rpcs)} RPCs, "
            f"{minutes:.1f} min",
        ),
    )
    if traceback:
        tally.problems.append("a server logged a traceback")
    for problem in tally.problems[:50]:
        console.print(f"problem: {problem}", highlight=False, markup=False)
    if len(tally.problems) > 50:
        console.print(f"... and {len(tally.problems) - 50} more problems", highlight=False)
    forbidden = tally.forbidden()
    console.print(
        f"UNKNOWN, INTERNAL or RESOURCE_EXHAUSTED: {forbidden}; problems: {len(tally.problems)}",
        highlight=False,
    )
    return 1 if forbidden or tally.problems else 0
