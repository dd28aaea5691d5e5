"""A small synchronous client of the gateway's GatewayService."""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Any

from google.protobuf.message import Message

from common import channels
from lienthong.gateway.v1 import gateway_pb2 as gw
from lienthong.gateway.v1 import gateway_pb2_grpc as gw_grpc

CALL_TIMEOUT_SECONDS = 10.0


class GatewayClient:
    def __init__(self, address: str) -> None:
        self.address = address
        self._channel = channels.sync_channel(address)
        self._stub = gw_grpc.GatewayServiceStub(self._channel)

    def submit(self, kind: str, declaration: Message, idempotency_key: str) -> str:
        """Submit a birth or death declaration; the dossier id."""
        if isinstance(declaration, gw.BirthDeclaration) and kind == "birth":
            birth = self._stub.SubmitBirthDeclaration(
                gw.SubmitBirthDeclarationRequest(
                    idempotency_key=idempotency_key, declaration=declaration
                ),
                timeout=CALL_TIMEOUT_SECONDS,
            )
            return str(birth.dossier_id)
        if isinstance(declaration, gw.DeathDeclaration) and kind == "death":
            death = self._stub.SubmitDeathDeclaration(
                gw.SubmitDeathDeclarationRequest(
                    idempotency_key=idempotency_key, declaration=declaration
                ),
                timeout=CALL_TIMEOUT_SECONDS,
            )
            return str(death.dossier_id)
        raise ValueError(f"a {kind} submission needs a {kind} declaration")

    def get(self, dossier_id: str) -> gw.Dossier:
        response = self._stub.GetDossier(
            gw.GetDossierRequest(dossier_id=dossier_id), timeout=CALL_TIMEOUT_SECONDS
        )
        return response.dossier

    def watch(self, dossier_id: str, *, timeout: float | None = None) -> WatchStream:
        """The dossier each time it changes, until it ends; cancellable."""
        call = self._stub.WatchDossier(
            gw.WatchDossierRequest(dossier_id=dossier_id), timeout=timeout
        )
        return WatchStream(call)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class WatchStream:
    """A WatchDossier call: iterate for dossiers, `cancel()` from any thread to end it."""

    def __init__(self, call: Any) -> None:
        self._call = call

    def __iter__(self) -> Iterator[gw.Dossier]:
        for response in self._call:
            yield response.dossier

    def cancel(self) -> None:
        self._call.cancel()
