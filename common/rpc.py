"""The server interceptor every registry uses.

For each call it binds a correlation id (metadata `x-correlation-id`, or a new
one) into structlog's context, validates the request against the contract's
protovalidate rules, turns DomainError into a gRPC status with google.rpc
details, and writes one log line with the method, the code and the duration.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import grpc
import protovalidate
import structlog
from google.protobuf import any_pb2, duration_pb2
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from common.errors import DomainError, FieldViolation, InvalidArgument, Unavailable
from common.injected_latency import InjectedLatency

log = structlog.get_logger("rpc")

CORRELATION_HEADER = "x-correlation-id"
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
                        field=v.field, description=v.description
                    )
                    for v in error.violations
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
                        type=error.reason, description=error.message
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
        status_pb2.Status(code=code, message=error.message, details=packed)
    )
    return status


def _correlation_id(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == CORRELATION_HEADER and isinstance(value, str):
            return value
    return uuid.uuid4().hex


Handler = Callable[[Any, grpc.aio.ServicerContext[Any, Any]], Awaitable[Any]]
# A load test's added latency (see common/injected_latency.py); none unless set.
INJECTED_LATENCY = InjectedLatency.from_env()


def _wrap(method: str, inner: Handler, *, validate: bool) -> Handler:
    async def handle(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        started = time.perf_counter()
        correlation_id = _correlation_id(context)
        failure: DomainError | None = None
        with structlog.contextvars.bound_contextvars(correlation_id=correlation_id):
            try:
                delay = INJECTED_LATENCY.seconds()
                if delay:
                    await asyncio.sleep(delay)
                if validate:
                    validate_message(request)
                response = await inner(request, context)
            except DomainError as error:
                failure = error
            except Exception:
                log.exception("rpc", method=method, code="INTERNAL")
                await context.abort(grpc.StatusCode.INTERNAL, "internal error; see the server log")
            elapsed_ms = round((time.perf_counter() - started) * 1000, 2)
            if failure is None:
                log.info("rpc", method=method, code="OK", duration_ms=elapsed_ms)
                return response
            log.info(
                "rpc",
                method=method,
                code=failure.code.name,
                reason=failure.reason,
                detail=failure.message,
                duration_ms=elapsed_ms,
            )
        status = to_status(failure)
        await context.abort(status.code, status.details, status.trailing_metadata)

    return handle


if TYPE_CHECKING:
    MethodHandler: TypeAlias = grpc.RpcMethodHandler[Any, Any]


class RegistryInterceptor(grpc.aio.ServerInterceptor):
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[MethodHandler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> MethodHandler | None:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        # Health checks and reflection are the library's; they need no
        # validation and a log line per probe would drown the real ones.
        if handler is None or method.startswith("/grpc."):
            return handler
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _wrap(method, cast(Handler, handler.unary_unary), validate=True),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary is not None:
            # Streams validate element by element inside the handler, which
            # knows the element's position in the stream.
            return grpc.stream_unary_rpc_method_handler(
                _wrap(method, cast(Handler, handler.stream_unary), validate=False),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler
