"""The server interceptor every server uses (the registries and the gateway,
through common.server.start_registry): the one place at the wire.

For each call it refuses bytes that do not decode as the request message
(INVALID_ARGUMENT, reason REQUEST_NOT_DECODABLE; in a stream, naming the
message's position) on unary and streaming RPCs alike, binds a correlation id
(metadata `x-correlation-id`, or a new one) into structlog's context, validates
the request against the contract's protovalidate rules, turns DomainError into
a gRPC status with google.rpc details (the message capped, a few field
violations at most), and writes one log line with the method, the code and the
duration. A refusal is one line without a traceback; only a bug (any other
exception) is logged with one, and answered INTERNAL.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, TypeAlias, cast

import grpc
import protovalidate
import structlog
from google.protobuf import any_pb2, descriptor_pool, duration_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from common.access import AccessPolicy, refusal
from common.errors import (
    DomainError,
    FieldViolation,
    InvalidArgument,
    NotDecodable,
    PermissionDenied,
    Unavailable,
)
from common.injected_latency import InjectedLatency
from common.logging import loggable_token
from common.quoting import cap, quote

log = structlog.get_logger("rpc")

CORRELATION_HEADER = "x-correlation-id"
CORRELATION_ID_LIMIT = 64
# The dossier a call serves, when its caller says so (the gateway's agency
# calls): a label for the message log's trail, like the correlation id, not
# a proof of anything.
DOSSIER_HEADER = "x-dossier-id"
# google.rpc details travel in a trailer, and a client refuses trailers past
# a few kilobytes (RESOURCE_EXHAUSTED): name the first few fields only.
MAX_VIOLATIONS = 10
DESCRIPTION_LIMIT = 200
ERROR_DOMAIN = "lienthong.vn"

# protovalidate names the regex; a person wants to hear what the field is.
_PATTERN_WORDS = {
    "^[0-9]{12}$": "must be a 12-digit personal identification number",
    "^([0-9]{12})?$": "must be empty or a 12-digit personal identification number",
    "^[0-9]{10}$": "must be a 10-digit social insurance number",
    "^[0-9]{3}$": "must be a 3-digit province code",
    "^[0-9]{5}$": "must be a 5-digit medical facility code",
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}$": "must be a date written YYYY-MM-DD",
    "^([0-9]{4}-[0-9]{2}-[0-9]{2})?$": "must be empty or a date written YYYY-MM-DD",
    "^([01][0-9]|2[0-3]):[0-5][0-9]$": "must be a time written HH:MM (24-hour)",
    "^(([01][0-9]|2[0-3]):[0-5][0-9])?$": "must be empty or a time written HH:MM (24-hour)",
    "^[A-Z0-9-]{4,40}$": "must be a document number: 4 to 40 capital letters, digits or dashes",
    "^([A-Z0-9-]{4,40})?$": "must be empty or a document number: 4 to 40 capital letters, "
    "digits or dashes",
    "^([0-9]{6,20})?$": "must be a bank account number of 6 to 20 digits",
}


def _path_element(element: Any) -> str:
    # Repeated fields carry the index as a subscript: citizens[3].full_name.
    subscript = element.subscript
    if subscript is not None and subscript.field == "index":
        return f"{element.field_name}[{subscript.value}]"
    return str(element.field_name)


def _describe(violation: protovalidate.Violation) -> FieldViolation:
    proto = violation.proto
    elements = proto.field.elements if proto.field is not None else []
    field = ".".join(_path_element(e) for e in elements) or "(request)"
    description = proto.message
    if proto.rule_id == "string.pattern":
        description = _PATTERN_WORDS.get(str(violation.rule_value), description)
    elif proto.rule_id in ("required", "string.min_len") and violation.rule_value in (True, 1):
        description = "is required"
    elif proto.rule_id == "enum.not_in":
        description = "is required (choose one of the listed values)"
    return FieldViolation(field, description)


def validate_message(message: Message, *, prefix: str = "") -> None:
    """Raise InvalidArgument naming every field that breaks the contract."""
    violations = protovalidate.collect_violations(message)
    if violations:
        described = [_describe(v) for v in violations]
        if prefix:
            described = [FieldViolation(f"{prefix}.{v.field}", v.description) for v in described]
        raise InvalidArgument(described)


def to_status(error: DomainError) -> grpc.Status:
    details: list[Message] = [
        error_details_pb2.ErrorInfo(
            reason=error.reason, domain=ERROR_DOMAIN, metadata=error.metadata
        ),
    ]
    if isinstance(error, InvalidArgument):
        details.append(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=cap(v.field, DESCRIPTION_LIMIT),
                        description=cap(v.description, DESCRIPTION_LIMIT),
                    )
                    for v in error.violations[:MAX_VIOLATIONS]
                ]
            )
        )
    elif isinstance(error, Unavailable):
        delay = duration_pb2.Duration()
        delay.FromTimedelta(dt.timedelta(seconds=error.retry_after_seconds))
        details.append(error_details_pb2.RetryInfo(retry_delay=delay))
    elif error.code == grpc.StatusCode.FAILED_PRECONDITION:
        details.append(
            error_details_pb2.PreconditionFailure(
                violations=[
                    error_details_pb2.PreconditionFailure.Violation(
                        type=error.reason, description=cap(error.message)
                    )
                ]
            )
        )
    packed = []
    for d in details:
        any_detail = any_pb2.Any()
        any_detail.Pack(d)
        packed.append(any_detail)
    code = getattr(code_pb2, error.code.name)
    status: grpc.Status = rpc_status.to_status(
        status_pb2.Status(code=code, message=cap(error.message), details=packed)
    )
    return status


def _header(context: grpc.aio.ServicerContext[Any, Any], name: str) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == name and isinstance(value, str):
            return quote(value, CORRELATION_ID_LIMIT)
    return ""


def _correlation_id(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    return _header(context, CORRELATION_HEADER) or loggable_token(32)


def caller_of(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """Who is calling, from what the transport proved: the common name of
    the client's certificate under mutual TLS, never from metadata a caller
    could write. "anonymous" on a plain-text port."""
    names = list((context.auth_context() or {}).get("x509_common_name") or [])
    return names[0].decode("utf-8", "replace") if names else "anonymous"


@dataclass(frozen=True)
class CallRecord:
    """One finished call, as every observer of a server hears it."""

    # When the call began (UTC).
    at: dt.datetime
    caller: str
    # The full method name, "/lienthong.population.v1.PopulationRegistryService/RegisterBirth".
    method: str
    # The gRPC status code's name ("OK", "INVALID_ARGUMENT"...).
    code: str
    # ErrorInfo.reason of a refusal; "" otherwise.
    reason: str
    correlation_id: str
    duration_ms: float
    # The request and the answer as they crossed the wire (a stream's
    # messages in order); None when there was none (a refusal, undecodable
    # bytes). Observers keep digests, never these.
    request: Sequence[Message] | None
    response: Sequence[Message] | None
    # Metadata `x-dossier-id` (quoted, capped like the correlation id); "" when not sent.
    dossier_id: str = ""

    @property
    def service(self) -> str:
        return self.method.lstrip("/").partition("/")[0]

    @property
    def method_name(self) -> str:
        return self.method.rpartition("/")[2]


class CallObserver(Protocol):
    """Hears every call a server answered or refused (the message log, metrics).
    Called on the server's event loop: it must not block for long."""

    def observe(self, record: CallRecord) -> None: ...


Handler = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]
StreamHandler = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], AsyncIterator[Any]]
Deserializer = Callable[[bytes], Any]
# A load test's added latency (see common/injected_latency.py); none unless set.
INJECTED_LATENCY = InjectedLatency.from_env()


class _Undecodable:
    """What a guarded deserializer yields for bytes that are not the request
    message; the handler's wrapper turns it into INVALID_ARGUMENT."""

    __slots__ = ()


UNDECODABLE = _Undecodable()


def _guard(deserializer: Deserializer | None) -> Deserializer | None:
    """The deserializer, answering UNDECODABLE where it would raise: gRPC
    itself would answer UNKNOWN to a unary call and fail a stream's handler."""
    if deserializer is None:
        return None
    decode = deserializer

    def guarded(data: bytes) -> Any:
        try:
            return decode(data)
        except Exception:
            return UNDECODABLE

    return guarded


def request_type_name(method: str) -> str:
    """`/pkg.Service/Method` → the full name of its request message."""
    try:
        found = descriptor_pool.Default().FindMethodByName(method.lstrip("/").replace("/", "."))
    except KeyError:
        return "request message"
    return str(found.input_type.full_name)


async def _checked(
    requests: AsyncIterator[Any], type_name: str, heard: Callable[[Any], None]
) -> AsyncIterator[Any]:
    """A request stream that raises NotDecodable at the first message that did not decode."""
    position = 0
    async for request in requests:
        if request is UNDECODABLE:
            raise NotDecodable(type_name, position=position)
        heard(request)
        yield request
        position += 1


class _Call:
    """One call's log line and its refusal: the same for every kind of RPC."""

    def __init__(
        self,
        method: str,
        context: grpc.aio.ServicerContext[Any, Any],
        *,
        quiet: bool,
        observers: Sequence[CallObserver] = (),
    ) -> None:
        self.method = method
        self.context = context
        self.quiet = quiet
        self.observers = observers
        self.at = dt.datetime.now(dt.UTC)
        self.started = time.perf_counter()
        self.correlation_id = _correlation_id(context)
        # What crossed the wire, for the observers (kept only when there are some).
        self.requests: list[Message] | None = None
        self.responses: list[Message] = []

    def _elapsed_ms(self) -> float:
        return round((time.perf_counter() - self.started) * 1000, 2)

    def heard(self, request: Any) -> None:
        if self.observers and isinstance(request, Message):
            if self.requests is None:
                self.requests = []
            self.requests.append(request)

    def said(self, response: Any) -> None:
        if self.observers and isinstance(response, Message):
            self.responses.append(response)

    def _tell(self, code: str, reason: str = "") -> None:
        if not self.observers:
            return
        record = CallRecord(
            at=self.at,
            caller=caller_of(self.context),
            method=self.method,
            code=code,
            reason=reason,
            correlation_id=self.correlation_id,
            duration_ms=self._elapsed_ms(),
            request=self.requests,
            response=self.responses if code == "OK" else None,
            dossier_id=_header(self.context, DOSSIER_HEADER),
        )
        for observer in self.observers:
            try:
                observer.observe(record)
            except Exception:
                # An observer's failure is its own: the call was answered.
                log.exception("call observer failed", method=self.method)

    def answered(self) -> None:
        if not self.quiet:
            log.info("rpc", method=self.method, code="OK", duration_ms=self._elapsed_ms())
        self._tell("OK")

    async def refuse(self, failure: DomainError) -> NoReturn:
        self._tell(failure.code.name, failure.reason)
        # A refusal is one line and no traceback, whoever's service it is;
        # a caller reaching beyond its grants is a warning (someone should look).
        denied = isinstance(failure, PermissionDenied)
        say = log.warning if denied else log.info
        say(
            "rpc",
            method=self.method,
            **({"caller": failure.metadata.get("caller", "")} if denied else {}),
            code=failure.code.name,
            reason=failure.reason,
            detail=cap(failure.message),
            duration_ms=self._elapsed_ms(),
        )
        status = to_status(failure)
        await self.context.abort(status.code, status.details, status.trailing_metadata)
        raise AssertionError("abort returns only by raising")  # pragma: no cover

    async def crash(self) -> NoReturn:
        self._tell("INTERNAL")
        log.exception("rpc", method=self.method, code="INTERNAL")
        await self.context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")
        raise AssertionError("abort returns only by raising")  # pragma: no cover


async def _prepare(
    request: Any,
    type_name: str,
    call: _Call,
    *,
    streamed: bool,
    ours: bool,
    policy: AccessPolicy | None,
) -> Any:
    """The request the handler gets: a stream checked message by message, or
    a single request checked whole (decoded, then, for our services, against
    the contract). Only our services get a load test's added latency. First
    of all, the caller must be granted the method (`policy`; None: a
    plain-text server, where nobody is authenticated)."""
    if policy is not None:
        caller = caller_of(call.context)
        if not policy.allows(caller, call.method):
            method = call.method.lstrip("/")
            raise PermissionDenied(caller, method, refusal(caller, method))
    if not streamed and request is UNDECODABLE:
        raise NotDecodable(type_name)
    delay = INJECTED_LATENCY.seconds() if ours else 0.0
    if delay:
        await asyncio.sleep(delay)
    if streamed:
        # Streams validate element by element inside the handler, which
        # knows the element's position in the stream.
        return _checked(request, type_name, call.heard)
    call.heard(request)
    if ours:
        validate_message(request)
    return request


def _unary_response(
    method: str,
    type_name: str,
    inner: Handler,
    *,
    streamed: bool,
    ours: bool,
    observers: Sequence[CallObserver],
    policy: AccessPolicy | None,
) -> Handler:
    """unary-unary and stream-unary: a request (or a checked stream) in, one answer out."""

    async def handle(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        call = _Call(method, context, quiet=not ours, observers=observers)
        with structlog.contextvars.bound_contextvars(correlation_id=call.correlation_id):
            try:
                request = await _prepare(
                    request, type_name, call, streamed=streamed, ours=ours, policy=policy
                )
                response = await inner(request, context)
                call.said(response)
            except DomainError as failure:
                await call.refuse(failure)
            except grpc.aio.AbortError:
                raise  # the handler set the status itself
            except Exception:
                await call.crash()
            call.answered()
            return response

    return handle


def _streamed_response(
    method: str,
    type_name: str,
    inner: StreamHandler,
    *,
    streamed: bool,
    ours: bool,
    observers: Sequence[CallObserver],
    policy: AccessPolicy | None,
) -> StreamHandler:
    """unary-stream and stream-stream: answers streamed back. The correlation
    id is bound around each step only, never across a yield."""

    async def handle(
        request: Any, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[Any]:
        call = _Call(method, context, quiet=not ours, observers=observers)
        bound = functools.partial(
            structlog.contextvars.bound_contextvars, correlation_id=call.correlation_id
        )
        try:
            with bound():
                request = await _prepare(
                    request, type_name, call, streamed=streamed, ours=ours, policy=policy
                )
                responses = inner(request, context)
            while True:
                with bound():
                    try:
                        response = await anext(responses)
                    except StopAsyncIteration:
                        break
                call.said(response)
                yield response
        except DomainError as failure:
            with bound():
                await call.refuse(failure)
        except grpc.aio.AbortError:
            raise
        except Exception:
            with bound():
                await call.crash()
        with bound():
            call.answered()

    return handle


if TYPE_CHECKING:
    MethodHandler: TypeAlias = grpc.RpcMethodHandler[Any, Any]


class RegistryInterceptor(grpc.aio.ServerInterceptor):
    """Every server's one place at the wire: the registries' and the gateway's
    (common.server.start_registry). Bytes that do not decode, on any method
    and any kind of RPC, are refused INVALID_ARGUMENT here. Each call of the
    server's own services (not health or reflection) is told to `observers`.
    With a `policy` (common/access.py), every call (health and reflection
    too) is first checked against it: a caller not granted the method is
    refused PERMISSION_DENIED, reason ACCESS_DENIED, before any handler runs."""

    def __init__(
        self, observers: Sequence[CallObserver] = (), *, policy: AccessPolicy | None = None
    ) -> None:
        self.observers = tuple(observers)
        self.policy = policy

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[MethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> MethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method: str = handler_call_details.method
        type_name = request_type_name(method)
        # Health checks and reflection are the library's; they need no
        # validation and a log line per probe would drown the real ones. Only
        # their refusals are logged.
        ours = not method.startswith("/grpc.")
        observers = self.observers if ours else ()
        deserializer = _guard(handler.request_deserializer)
        serializer = handler.response_serializer
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _unary_response(
                    method,
                    type_name,
                    cast(Handler, handler.unary_unary),
                    streamed=False,
                    ours=ours,
                    observers=observers,
                    policy=self.policy,
                ),
                request_deserializer=deserializer,
                response_serializer=serializer,
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                _unary_response(
                    method,
                    type_name,
                    cast(Handler, handler.stream_unary),
                    streamed=True,
                    ours=ours,
                    observers=observers,
                    policy=self.policy,
                ),
                request_deserializer=deserializer,
                response_serializer=serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _streamed_response(
                    method,
                    type_name,
                    cast(StreamHandler, handler.unary_stream),
                    streamed=False,
                    ours=ours,
                    observers=observers,
                    policy=self.policy,
                ),
                request_deserializer=deserializer,
                response_serializer=serializer,
            )
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                _streamed_response(
                    method,
                    type_name,
                    cast(StreamHandler, handler.stream_stream),
                    streamed=True,
                    ours=ours,
                    observers=observers,
                    policy=self.policy,
                ),
                request_deserializer=deserializer,
                response_serializer=serializer,
            )
        return handler
