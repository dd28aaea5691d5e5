"""The console's answers other than 2xx, and what it reads from a request
body: a status and a sentence (with field violations), quoting at most about
100 characters of what the client sent, never a traceback."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import grpc
from starlette.requests import Request
from starlette.responses import JSONResponse

from cli.rpc_errors import describe
from common.quoting import cap, quote

# A declaration is a few hundred bytes; a body beyond this is not one.
MAX_BODY_BYTES = 1_000_000

# A gateway's gRPC status → the console's HTTP status (anything else: 502).
HTTP_OF = {
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 503,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 403,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
}


class Problem(Exception):
    """An answer other than 2xx: a status, a sentence, and field violations."""

    def __init__(
        self, status: int, message: str, violations: Sequence[tuple[str, str]] = ()
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.violations = list(violations)

    def response(self) -> JSONResponse:
        body: dict[str, Any] = {"message": cap(self.message)}
        if self.violations:
            body["violations"] = [
                {"field": quote(field), "message": cap(text)} for field, text in self.violations
            ]
        return JSONResponse(body, status_code=self.status)


def rpc_problem(error: grpc.RpcError, what: str, *, strip: str = "") -> Problem:
    """A gateway's gRPC error as the page's: the status mapped, the sentence
    `cli/rpc_errors.py: describe` reads, field violations with `strip` (the
    request's own prefix, "declaration.") taken off."""
    failure = describe(error)
    status = HTTP_OF.get(failure.code, 502)
    if status == 503:
        message = f"could not {what}: the gateway is not answering ({failure.message}); try again"
    else:
        message = f"could not {what}: {failure.message}"
    violations = [(field.removeprefix(strip), text) for field, text in failure.field_violations]
    return Problem(status, message, violations)


async def json_body(request: Request, *, empty_ok: bool = False) -> Any:
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise Problem(400, f"the body is {len(raw):,} bytes: more than a declaration can be")
    if not raw.strip() and empty_ok:
        return {}
    try:
        return json.loads(raw)
    except UnicodeDecodeError:
        raise Problem(400, "the body is not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise Problem(
            400,
            f"the body is not JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}): "
            f"{quote(raw.decode('utf-8', 'replace'))}",
        ) from None


def json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    return "a number"


def number(
    body: dict[str, Any], name: str, low: float, high: float, *, default: float | None
) -> float:
    value = body.get(name, default)
    if value is None:
        raise Problem(400, f"{name} is required", [(name, "is required")])
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        said = f"must be a number from {low:g} to {high:g}"
        raise Problem(400, f"{name} {said}, not {quote(json.dumps(value))}", [(name, said)])
    return float(value)
