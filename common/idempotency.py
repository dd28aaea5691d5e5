"""Idempotent mutations: a request id answered once is answered the same way.

Every mutating RPC carries a request_id. The first successful answer is stored
in the same transaction as the change it describes, so either both are written
or neither. A repeat returns the stored answer and changes nothing; a request
id reused for a different request is refused rather than guessed at. Refusals
are not stored: nothing changed, so a repeat is judged afresh.

Replicas over one PostgreSQL database: a repeat that reaches another replica
while the first is still running finds no answer yet, and both run. The
second's ledger insert then fails on the ledger's primary key once the first
commits (or earlier, on a row the first wrote), and common.database runs the
whole unit of work again: this time it finds the first answer. Under READ
COMMITTED each statement sees what committed before it, so the first may also
commit between our ledger read and the rules' reads: the rules then refuse
the repeat because of its own original (the birth certificate "already
registered"). A refusal is therefore checked against the ledger once more,
and if the request id has been answered meanwhile the unit of work is run
again (LostRace) to return that answer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TypeVar

from google.protobuf.message import Message

from common.database import Connection, LostRace, Row
from common.errors import DomainError, InvalidArgument

SCHEMA = """
CREATE TABLE IF NOT EXISTS idempotent_requests (
    request_id  TEXT PRIMARY KEY,
    method      TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    response    BLOB NOT NULL
);
"""

ResponseT = TypeVar("ResponseT", bound=Message)


def _fingerprint(method: str, request: Message) -> bytes:
    copy = request.__class__()
    copy.CopyFrom(request)
    copy.ClearField("request_id")
    return hashlib.sha256(method.encode() + copy.SerializeToString(deterministic=True)).digest()


def run_once(
    conn: Connection,
    method: str,
    request: Message,
    response_type: type[ResponseT],
    mutate: Callable[[], ResponseT],
) -> ResponseT:
    """Run `mutate` unless this request id was answered before; call inside
    the unit of work (common.database), whose transaction the answer joins."""
    request_id: str = getattr(request, "request_id")  # noqa: B009 - every mutating request has it
    fingerprint = _fingerprint(method, request)
    row = _answered(conn, request_id)
    if row is not None:
        if row["method"] != method or bytes(row["fingerprint"]) != fingerprint:
            raise InvalidArgument.field(
                "request_id",
                "this request id was already used for a different request; "
                "use a new request id for a new request",
            )
        return response_type.FromString(bytes(row["response"]))
    try:
        response = mutate()
    except DomainError:
        # A rule's refusal, not a database error: the transaction is usable.
        if _answered(conn, request_id) is not None:
            raise LostRace(f"request id answered by a concurrent transaction: {method}") from None
        raise
    conn.execute(
        "INSERT INTO idempotent_requests (request_id, method, fingerprint, response) "
        "VALUES (?, ?, ?, ?)",
        (request_id, method, fingerprint, response.SerializeToString(deterministic=True)),
    )
    return response


def _answered(conn: Connection, request_id: str) -> Row | None:
    return conn.execute(
        "SELECT method, fingerprint, response FROM idempotent_requests WHERE request_id = ?",
        (request_id,),
    ).fetchone()
