"""The gateway's public gRPC API: submissions answer at once with a dossier
id; the saga does the rest over Kafka.

A submission (or supplement) is stored with the event announcing it in one
transaction (the outbox), then published at once; the answer is OK once the
broker acknowledged it. If the broker does not acknowledge in time, the
answer is UNAVAILABLE, saying the dossier is stored (its id in the message and
in ErrorInfo.metadata) and that the same request may be sent again; the
outbox relay publishes it when the broker is back, whether or not the client
retries. UNAVAILABLE and not OK: OK has always meant "the saga has it"
(acknowledged by the broker), and a client told OK would not know that its
dossier waits on an outage; UNAVAILABLE is the code every gRPC client treats
as safe to retry, and the retry (same idempotency key) returns the same
dossier, with OK once the event is published.

Each submission RPC names its kind (the contract has one per kind); the rest
(the form's rules, where the form goes on the dossier, a supplement's form)
comes from the kind's procedure group (gateway/procedures.py)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf.message import Message

from common.clock import Clock, latest_past_day
from common.config import DEFAULT_CLOCK_TOLERANCE_SECONDS
from common.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable
from common.logging import loggable_token
from common.quoting import quote
from gateway import saga
from gateway.events import Event, Topics
from gateway.outbox import Outbox
from gateway.procedures import PROCEDURES, ProcedureGroup, UnknownProcedureError
from gateway.store import Announcement, SagaStore, fingerprint
from lienthong.events.v1 import events_pb2 as ev
from lienthong.gateway.v1 import gateway_pb2 as pb
from lienthong.gateway.v1 import gateway_pb2_grpc as pb_grpc

Context = grpc.aio.ServicerContext[Any, Any]
# A declaration is stored and published as it is: fields a client added that
# the contract does not know (of any size: a megabyte is past what Kafka takes
# in one record) are dropped first (request.DiscardUnknownFields()).
WATCH_POLL_SECONDS = 0.05


def _group(kind: pb.DossierKind.ValueType) -> ProcedureGroup[Any]:
    """The kind's procedure group; FAILED_PRECONDITION when this gateway runs
    no such procedure (a dossier stored by a newer gateway sharing the store),
    never another kind's."""
    try:
        return PROCEDURES.of_kind(kind)
    except UnknownProcedureError as unknown:
        raise FailedPrecondition(str(unknown), reason="UNKNOWN_PROCEDURE") from None


class GatewayServicer(pb_grpc.GatewayServiceServicer):
    def __init__(
        self,
        store: SagaStore,
        outbox: Outbox,
        topics: Topics,
        clock: Clock,
        changed: asyncio.Condition,
        *,
        clock_tolerance: dt.timedelta = dt.timedelta(seconds=DEFAULT_CLOCK_TOLERANCE_SECONDS),
    ) -> None:
        self.store = store
        self.outbox = outbox
        self.topics = topics
        self.clock = clock
        self.changed = changed
        self.clock_tolerance = clock_tolerance

    def _latest_day(self) -> dt.date:
        """The latest day a declared birth or death may be on."""
        return latest_past_day(self.clock.now(), self.clock_tolerance)

    def _submitted(self, dossier: pb.Dossier) -> Announcement:
        event = Event(
            f"{dossier.dossier_id}/submitted",
            dossier.dossier_id,
            ev.DossierSubmitted(dossier=dossier),
            self.clock.now(),
        )
        return self.topics.dossiers, event

    async def _submit(self, key: str, dossier: pb.Dossier, declaration: bytes) -> str:
        kind = pb.DossierKind.Name(dossier.kind)
        stored = await self.store.submit(
            key, fingerprint(kind, declaration), dossier, self._submitted
        )
        # Also on a repeat: the first attempt may have been answered
        # UNAVAILABLE, or died before the broker acknowledged.
        await self._deliver(
            f"{stored.dossier_id}/submitted",
            stored.dossier_id,
            f"the declaration is stored as dossier {stored.dossier_id}",
        )
        return stored.dossier_id

    async def _deliver(self, event_id: str, dossier_id: str, stored: str) -> None:
        if not await self.outbox.deliver([event_id]):
            raise Unavailable(
                f"{stored} and will be worked once the "
                "message broker is back; it is safe to send it again with the same "
                "idempotency key",
                reason="BROKER_UNAVAILABLE",
                metadata={"dossier_id": dossier_id},
                retry_after_seconds=self.outbox.timeout,
            )

    def _new_dossier(self, group: ProcedureGroup[Any]) -> pb.Dossier:
        now = saga.timestamp(self.clock.now())
        return pb.Dossier(
            dossier_id=f"{group.name}-{loggable_token(16)}",
            kind=group.kind,
            state=pb.DOSSIER_STATE_RECEIVED,
            submitted_at=now,
            updated_at=now,
            version=1,
        )

    async def _declare(self, kind: pb.DossierKind.ValueType, key: str, form: Message) -> str:
        """Check the form by its group's rules, store it as a new dossier of
        the group, announce it: the dossier's id."""
        group = _group(kind)
        group.check_form(form, field="declaration", latest=self._latest_day())
        dossier = self._new_dossier(group)
        group.form(dossier).CopyFrom(form)
        return await self._submit(key, dossier, form.SerializeToString(deterministic=True))

    async def SubmitBirthDeclaration(
        self, request: pb.SubmitBirthDeclarationRequest, context: Context
    ) -> pb.SubmitBirthDeclarationResponse:
        request.DiscardUnknownFields()
        dossier_id = await self._declare(
            pb.DOSSIER_KIND_BIRTH, request.idempotency_key, request.declaration
        )
        return pb.SubmitBirthDeclarationResponse(dossier_id=dossier_id)

    async def SubmitDeathDeclaration(
        self, request: pb.SubmitDeathDeclarationRequest, context: Context
    ) -> pb.SubmitDeathDeclarationResponse:
        request.DiscardUnknownFields()
        dossier_id = await self._declare(
            pb.DOSSIER_KIND_DEATH, request.idempotency_key, request.declaration
        )
        return pb.SubmitDeathDeclarationResponse(dossier_id=dossier_id)

    async def _load(self, dossier_id: str) -> pb.Dossier:
        dossier = await self.store.load(dossier_id)
        if dossier is None:
            raise NotFound(f"no dossier has id {quote(dossier_id)}", reason="DOSSIER_NOT_FOUND")
        dossier.deadline_breached = saga.breached(dossier, self.clock.now())
        return dossier

    async def GetDossier(
        self, request: pb.GetDossierRequest, context: Context
    ) -> pb.GetDossierResponse:
        return pb.GetDossierResponse(dossier=await self._load(request.dossier_id))

    async def WatchDossier(
        self, request: pb.WatchDossierRequest, context: Context
    ) -> AsyncIterator[pb.WatchDossierResponse]:
        if await self.store.version(request.dossier_id) is None:
            raise NotFound(
                f"no dossier has id {quote(request.dossier_id)}", reason="DOSSIER_NOT_FOUND"
            )
        seen = -1
        while True:
            version = await self.store.version(request.dossier_id)
            if version is not None and version != seen:
                seen = version
                dossier = await self._load(request.dossier_id)
                yield pb.WatchDossierResponse(dossier=dossier)
                if dossier.state in saga.TERMINAL:
                    return
            # Woken at once when this process changed a dossier; the timeout
            # catches changes made by another gateway process sharing the store.
            async with self.changed:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed.wait(), WATCH_POLL_SECONDS)

    async def SupplementDossier(
        self, request: pb.SupplementDossierRequest, context: Context
    ) -> pb.SupplementDossierResponse:
        request.DiscardUnknownFields()
        dossier = await self._load(request.dossier_id)
        key = request.idempotency_key
        field = request.WhichOneof("declaration") or "declaration"
        supplement = getattr(request, field)
        print_ = fingerprint(
            f"supplement:{field}", supplement.SerializeToString(deterministic=True)
        )
        # A repeat of an accepted supplement is answered again, whatever the
        # dossier's state is now (and published if it is not yet: the first
        # attempt may have been answered UNAVAILABLE; the event id makes the
        # saga apply it once). A key reused for a different supplement is refused.
        if not await self.store.supplement_accepted(dossier.dossier_id, key, print_):
            self._check_supplement(dossier, request)
        event = ev.DossierSupplemented(dossier_id=dossier.dossier_id, supplement_id=key)
        # The same field name in the request's oneof and the event's.
        getattr(event, field).CopyFrom(supplement)
        supplemented = Event(
            f"{dossier.dossier_id}/supplement/{key}",
            dossier.dossier_id,
            event,
            self.clock.now(),
        )
        await self.store.accept_supplement(
            dossier.dossier_id, key, print_, (self.topics.dossiers, supplemented)
        )
        await self._deliver(
            supplemented.event_id,
            dossier.dossier_id,
            f"the supplement is stored with dossier {dossier.dossier_id}",
        )
        return pb.SupplementDossierResponse(dossier_id=dossier.dossier_id)

    def _check_supplement(self, dossier: pb.Dossier, request: pb.SupplementDossierRequest) -> None:
        if dossier.state != pb.DOSSIER_STATE_NEEDS_SUPPLEMENT:
            raise FailedPrecondition(
                "the dossier is not waiting for a supplement "
                f"(it is {pb.DossierState.Name(dossier.state)})",
                reason="NOT_AWAITING_SUPPLEMENT",
            )
        if self.clock.now() > dossier.supplement.due_at.ToDatetime(dt.UTC):
            raise FailedPrecondition(
                "the 7-working-day window for the supplement has closed",
                reason="SUPPLEMENT_WINDOW_CLOSED",
            )
        group = _group(dossier.kind)
        field = request.WhichOneof("declaration") or "declaration"
        if field != group.form_field:
            raise InvalidArgument.field(
                field, f"does not match the dossier's kind (a {group.title})"
            )
        # The same rules as a submission, on the form as the saga will have it
        # once the supplement is merged in (saga.on_supplemented), so a field
        # the supplement got wrong is named by its place in this request.
        merged = type(group.form(dossier))()
        merged.CopyFrom(group.form(dossier))
        merged.MergeFrom(getattr(request, field))
        group.check_form(merged, field=field, latest=self._latest_day())
