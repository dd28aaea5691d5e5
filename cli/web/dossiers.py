"""The gateway as the console sees it: a dossier in the page's terms, and the
calls it makes (GetDossier, WatchDossier, the two submissions).

A dossier's timeline, results and procedures are in the same words as
`lienthong status` (cli/render.py). `Gateway` is a Protocol so that the
application is tested with a stand-in; `GrpcGateway` is the real one, an
asyncio channel made on first use on the console's own event loop.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any, Protocol

import grpc
from google.protobuf.message import Message

from cli.render import (
    TERMINAL_STATES,
    dossier_state,
    elapsed_ms,
    kind_name,
    procedure_line,
    result_lines,
    step_outcome,
    step_state,
)
from cli.web.live import iso
from common import channels
from common.channels import TlsSettings
from lienthong.gateway.v1 import gateway_pb2 as gw
from lienthong.gateway.v1 import gateway_pb2_grpc as gw_grpc

CALL_TIMEOUT_SECONDS = 10.0


def _when(stamp: Any) -> str | None:
    if not (stamp.seconds or stamp.nanos):
        return None
    return iso(stamp.ToDatetime(tzinfo=dt.UTC))


def dossier_detail(dossier: gw.Dossier, now_ms: int | None = None) -> dict[str, Any]:
    """DossierDetail: the state, the timeline, the results and each procedure's result."""
    return {
        "dossier_id": dossier.dossier_id,
        "procedure": kind_name(dossier.kind),
        "state": dossier_state(dossier.state),
        "ended": dossier.state in TERMINAL_STATES,
        "submitted_at": _when(dossier.submitted_at),
        "timeline": [
            {
                "step": step.name,
                "agency": step.agency,
                "state": step_state(step.state),
                "elapsed_ms": elapsed_ms(step, now_ms),
                "attempts": step.attempts,
                "outcome": step_outcome(step),
            }
            for step in dossier.timeline
        ],
        "results": result_lines(dossier),
        "procedures": [procedure_line(p) for p in dossier.procedures],
    }


class Gateway(Protocol):
    """What the console asks of the gateway; errors are grpc.RpcError."""

    async def get(self, dossier_id: str) -> gw.Dossier: ...

    def watch(self, dossier_id: str) -> AsyncIterator[gw.Dossier]: ...

    async def submit(self, kind: str, declaration: Message, idempotency_key: str) -> str:
        """The dossier's id (the same one again for the same key)."""

    async def close(self) -> None: ...


class GrpcGateway:
    def __init__(self, address: str, tls: TlsSettings | None) -> None:
        self.address = address
        self.tls = tls
        self._channel: grpc.aio.Channel | None = None
        self._stub: Any = None

    def _service(self) -> Any:
        # Made on the loop that serves the console: an aio channel belongs to one loop.
        if self._stub is None:
            self._channel = channels.channel(self.address, tls=self.tls)
            self._stub = gw_grpc.GatewayServiceStub(self._channel)
        return self._stub

    async def get(self, dossier_id: str) -> gw.Dossier:
        answer = await self._service().GetDossier(
            gw.GetDossierRequest(dossier_id=dossier_id), timeout=CALL_TIMEOUT_SECONDS
        )
        return answer.dossier  # type: ignore[no-any-return]

    async def watch(self, dossier_id: str) -> AsyncIterator[gw.Dossier]:
        call = self._service().WatchDossier(gw.WatchDossierRequest(dossier_id=dossier_id))
        try:
            async for answer in call:
                yield answer.dossier
        finally:
            call.cancel()

    async def submit(self, kind: str, declaration: Message, idempotency_key: str) -> str:
        service = self._service()
        if isinstance(declaration, gw.BirthDeclaration) and kind == "birth":
            answer = await service.SubmitBirthDeclaration(
                gw.SubmitBirthDeclarationRequest(
                    idempotency_key=idempotency_key, declaration=declaration
                ),
                timeout=CALL_TIMEOUT_SECONDS,
            )
        elif isinstance(declaration, gw.DeathDeclaration) and kind == "death":
            answer = await service.SubmitDeathDeclaration(
                gw.SubmitDeathDeclarationRequest(
                    idempotency_key=idempotency_key, declaration=declaration
                ),
                timeout=CALL_TIMEOUT_SECONDS,
            )
        else:
            raise ValueError(f"a {kind} submission needs a {kind} declaration")
        return str(answer.dossier_id)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
            self._stub = None
