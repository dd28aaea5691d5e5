"""Checks at the wire that every contract shares: how a refusal looks
(status code, google.rpc ErrorInfo reason, BadRequest field violations),
undecodable bytes, standard health checking and server reflection.

The kit reads the google.rpc details itself rather than through the
project's helpers: it judges any server, ours included.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import ServiceDescriptor
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from conformance.kit import CALL_TIMEOUT_SECONDS, Context, Failure, RuleBook, cap

T = TypeVar("T")

# Not a protobuf message of any type: a length-delimited field (tag 1, wire
# type 2) that claims 127 bytes when 3 follow. Every parser must refuse it.
UNDECODABLE = b"\x0a\x7f\xff\xff\xff"


@dataclass(frozen=True)
class Refusal:
    """What a failed call said, read from its status and google.rpc details."""

    code: grpc.StatusCode
    message: str
    reason: str = ""
    fields: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, error: grpc.aio.AioRpcError) -> Refusal:
        reason = ""
        fields: dict[str, str] = {}
        try:
            status = rpc_status.from_call(error)
        except ValueError:
            status = None  # details that contradict the status: none to read
        for detail in status.details if status is not None else ():
            info = error_details_pb2.ErrorInfo()
            bad = error_details_pb2.BadRequest()
            if detail.Unpack(info):
                reason = info.reason
            elif detail.Unpack(bad):
                fields.update({v.field: v.description for v in bad.field_violations})
        return cls(error.code(), error.details() or "", reason, fields)

    def __str__(self) -> str:
        words = [self.code.name]
        if self.reason:
            words.append(f"reason {self.reason}")
        if self.fields:
            words.append("fields " + ", ".join(sorted(self.fields)))
        words.append(repr(cap(self.message, 120)))
        return " ".join(words)


async def answer(call: Awaitable[T], what: str) -> T:
    """The answer of a call that should succeed; Failure naming `what` otherwise."""
    try:
        return await call
    except grpc.aio.AioRpcError as error:
        raise Failure(f"{what}: {Refusal.of(error)}") from None


async def refused(
    call: Awaitable[Any], code: grpc.StatusCode, *, reason: str | None = None
) -> Refusal:
    """Expect the call refused with `code` (and ErrorInfo `reason`); what it said."""
    wanted = code.name + (f" reason {reason}" if reason else "")
    try:
        await call
    except grpc.aio.AioRpcError as error:
        got = Refusal.of(error)
    else:
        raise Failure(f"expected {wanted}, got OK")
    if got.code != code or (reason is not None and got.reason != reason):
        raise Failure(f"expected {wanted}, got {got}")
    return got


async def refusal(
    call: Awaitable[Any],
    code: grpc.StatusCode,
    *,
    reason: str | None = None,
    fields: Iterable[str] = (),
) -> str:
    """Expect the call refused with `code`, ErrorInfo `reason` and (for
    INVALID_ARGUMENT) a BadRequest naming each of `fields`; the evidence."""
    got = await refused(call, code, reason=reason)
    missing = [f for f in fields if f not in got.fields]
    if missing:
        raise Failure(f"expected BadRequest violations for {', '.join(missing)}, got {got}")
    return str(got)


def expect(condition: bool, evidence: str) -> None:
    if not condition:
        raise Failure(evidence)


async def undecodable_bytes(ctx: Context, service: ServiceDescriptor) -> str:
    """Every method of `service`, sent bytes that are no message, answers
    INVALID_ARGUMENT (the client's fault), never UNKNOWN or INTERNAL."""
    answers = []
    for method in service.methods:
        path = f"/{service.full_name}/{method.name}"
        # No serializers: the bytes go on the wire as they are.
        channel: Any = ctx.channel
        kind = (method.client_streaming, method.server_streaming)
        sent: Any = _one(UNDECODABLE) if method.client_streaming else UNDECODABLE
        multicallable = {
            (False, False): channel.unary_unary,
            (True, False): channel.stream_unary,
            (False, True): channel.unary_stream,
            (True, True): channel.stream_stream,
        }[kind](path)
        opened = multicallable(sent, timeout=CALL_TIMEOUT_SECONDS)
        call: Awaitable[Any] = _drained(opened) if method.server_streaming else opened
        try:
            await refusal(call, grpc.StatusCode.INVALID_ARGUMENT)
        except Failure as failure:
            raise Failure(f"{method.name}: {failure}") from None
        answers.append(method.name)
    return f"INVALID_ARGUMENT from {len(answers)} methods: {', '.join(answers)}"


async def _one(message: bytes) -> AsyncIterator[bytes]:
    yield message


async def _drained(answers: AsyncIterator[Any]) -> None:
    """Read a server stream to its end: its refusal arrives on the first read."""
    async for _ in answers:
        pass


async def health_serving(ctx: Context, service: ServiceDescriptor) -> str:
    """grpc.health.v1: the contract's service and the server ("") are SERVING."""
    stub: Any = health_pb2_grpc.HealthStub(ctx.channel)
    said = []
    for name in (service.full_name, ""):
        reply = await answer(
            stub.Check(health_pb2.HealthCheckRequest(service=name), timeout=CALL_TIMEOUT_SECONDS),
            f"Health.Check({name!r})",
        )
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        expect(
            reply.status == health_pb2.HealthCheckResponse.SERVING,
            f"Health.Check({name!r}) is {status}",
        )
        said.append(f"{name or '(server)'}: {status}")
    return "; ".join(said)


async def _reflect(
    ctx: Context, request: reflection_pb2.ServerReflectionRequest
) -> reflection_pb2.ServerReflectionResponse:
    stub: Any = reflection_pb2_grpc.ServerReflectionStub(ctx.channel)

    async def ask() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
        yield request

    async def first() -> reflection_pb2.ServerReflectionResponse:
        async for reply in stub.ServerReflectionInfo(ask(), timeout=CALL_TIMEOUT_SECONDS):
            return reply
        raise Failure("server reflection answered nothing")

    return await answer(first(), "ServerReflectionInfo")


async def reflection_describes(ctx: Context, service: ServiceDescriptor) -> str:
    """Server reflection lists the service and describes every one of its methods."""
    listed = await _reflect(ctx, reflection_pb2.ServerReflectionRequest(list_services=""))
    names = {s.name for s in listed.list_services_response.service}
    expect(service.full_name in names, f"reflection lists {sorted(names)}, not {service.full_name}")
    found = await _reflect(
        ctx, reflection_pb2.ServerReflectionRequest(file_containing_symbol=service.full_name)
    )
    if found.HasField("error_response"):
        raise Failure(f"file_containing_symbol: {found.error_response.error_message}")
    described: set[str] = set()
    for raw in found.file_descriptor_response.file_descriptor_proto:
        file = descriptor_pb2.FileDescriptorProto.FromString(raw)
        for svc in file.service:
            if f"{file.package}.{svc.name}" == service.full_name:
                described = {m.name for m in svc.method}
    wanted = {m.name for m in service.methods}
    expect(
        wanted <= described,
        f"reflection describes methods {sorted(described)}; missing {sorted(wanted - described)}",
    )
    return f"lists {service.full_name}; describes its {len(wanted)} methods"


def add_wire_rules(book: RuleBook, service: ServiceDescriptor) -> None:
    """The rules every contract's server honours at the wire, whatever its
    domain: undecodable bytes refused cleanly, health, reflection."""

    @book.rule(
        "wire.undecodable_bytes",
        "bytes that are no protobuf message, sent to every method: INVALID_ARGUMENT, never "
        "UNKNOWN or INTERNAL",
    )
    async def _undecodable(ctx: Context) -> str:
        return await undecodable_bytes(ctx, service)

    @book.rule(
        "wire.health", "grpc.health.v1 Check says SERVING for the service and for the server"
    )
    async def _health(ctx: Context) -> str:
        return await health_serving(ctx, service)

    @book.rule(
        "wire.reflection", "server reflection lists the service and describes all its methods"
    )
    async def _reflection(ctx: Context) -> str:
        return await reflection_describes(ctx, service)
