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
whole unit of work again: this time it finds the first answer.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TypeVar

from google.protobuf.message import Message

from common.database import Connection
from common.errors import InvalidArgument

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


def _lock_key(request_id: str) -> int:
    """The request id as a signed 64-bit advisory lock key."""
    digest = hashlib.sha256(b"idempotent_requests:" + request_id.encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


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
    if conn.dialect == "postgres":
        # A repeat on another replica waits here until its original's
        # transaction ends, then finds the answer. Without it, under READ
        # COMMITTED the repeat could read the ledger before the original
        # commits and the rules' rows after, and be refused for its own
        # effect (an allowance "already settled"): no key catches that.
        # SQLite's single writer already runs them one after the other.
        conn.execute("SELECT pg_advisory_xact_lock(?)", (_lock_key(request_id),))
    row = conn.execute(
        "SELECT method, fingerprint, response FROM idempotent_requests WHERE request_id = ?",
        (request_id,),
    ).fetchone()
    if row is not None:
        if row["method"] != method or bytes(row["fingerprint"]) != fingerprint:
            raise InvalidArgument.field(
                "request_id",
                "this request id was already used for a different request; "
                "use a new request id for a new request",
            )
        return response_type.FromString(bytes(row["response"]))
    response = mutate()
    conn.execute(
        "INSERT INTO idempotent_requests (request_id, method, fingerprint, response) "
        "VALUES (?, ?, ?, ?)",
        (request_id, method, fingerprint, response.SerializeToString(deterministic=True)),
    )
    return response
