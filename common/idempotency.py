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
from typing import Generic, TypeVar

from google.protobuf.message import Message

from common.database import DEFAULT_ATTEMPTS, Connection, Database, LostRace, Row
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


RegistryT = TypeVar("RegistryT")
T = TypeVar("T")


class RegistryCalls(Generic[RegistryT]):
    """A registry's RPCs as units of work (common.database): each call gets
    the rules over that transaction's store (`registry_for`), on a worker
    thread, never on the event loop. One piece for every registry's servicer."""

    def __init__(self, database: Database, registry_for: Callable[[Connection], RegistryT]) -> None:
        self.database = database
        self.registry_for = registry_for

    async def once(
        self,
        method: str,
        request: Message,
        response_type: type[ResponseT],
        decide: Callable[[RegistryT], ResponseT],
    ) -> ResponseT:
        """A mutation, answered once per request id (`run_once`)."""

        def work(conn: Connection) -> ResponseT:
            registry = self.registry_for(conn)
            return run_once(conn, method, request, response_type, lambda: decide(registry))

        return await self.database.run(work)

    async def run(self, decide: Callable[[RegistryT], T], *, attempts: int = DEFAULT_ATTEMPTS) -> T:
        """A read (no request id, nothing to run once), or with attempts=1 a
        seed stream, which cannot be read a second time."""
        return await self.database.run(
            lambda conn: decide(self.registry_for(conn)), attempts=attempts
        )
