"""Run a contract's rules against a server, one after another, and collect
each rule's verdict with its evidence."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

import grpc

from conformance.kit import Context, Failure, Rule, cap
from conformance.wire import Refusal

# Seeding streams and their answers may be large; match the registries.
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]
CONNECT_SECONDS = 5.0


@dataclass(frozen=True)
class Verdict:
    rule: Rule
    passed: bool
    evidence: str
    seconds: float


class Unreachable(Exception):
    """Nobody answers at the target: no rule could be judged."""


async def judge(rule: Rule, ctx: Context) -> Verdict:
    started = time.perf_counter()
    try:
        evidence = await rule.check(ctx)
        passed = True
    except Failure as failure:
        evidence, passed = str(failure), False
    except grpc.aio.AioRpcError as error:
        # A call the rule did not guard: still evidence, not a crash of the kit.
        evidence, passed = f"unexpected refusal: {Refusal.of(error)}", False
    except Exception as error:
        evidence, passed = f"the rule could not run: {error!r}", False
    return Verdict(rule, passed, cap(evidence), time.perf_counter() - started)


def _channel(target: str, credentials: grpc.ChannelCredentials | None) -> grpc.aio.Channel:
    if credentials is None:
        return grpc.aio.insecure_channel(target, options=CHANNEL_OPTIONS)
    return grpc.aio.secure_channel(target, credentials, options=CHANNEL_OPTIONS)


async def run(
    target: str, rules: Sequence[Rule], *, credentials: grpc.ChannelCredentials | None = None
) -> list[Verdict]:
    """Each rule in order, every one with fresh identifiers of its own.
    `credentials`: the kit's mutual TLS identity (plain text without): a
    server enforcing lienthong's access policy grants the test identity
    `conformance` every method. Plain gRPC credentials, so that the kit
    depends on none of the code it judges."""
    async with _channel(target, credentials) as channel:
        try:
            await asyncio.wait_for(channel.channel_ready(), CONNECT_SECONDS)
        except TimeoutError:
            raise Unreachable(f"nobody answers at {target} within {CONNECT_SECONDS:g} s") from None
        verdicts = []
        for rule in rules:
            verdicts.append(await judge(rule, Context(channel)))
        return verdicts
