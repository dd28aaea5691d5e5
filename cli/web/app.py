"""The console's Starlette application: the page's files and its JSON API.

Built by `build_app` from its dependencies (the live state, the gateway, the
example people, the agency switchboard, the mode), so every route is tested
with stand-ins (tests/cli/web/test_app.py). The routes, described in
cli/README.md ("The web console"):

    GET  /                                  the page (static/index.html)
    GET  /static/{path}                     its files
    GET  /api/overview                      parties, counters, throughput, latency, recent
    GET  /api/stream                        server-sent events: overview, dossier, step, replay
    GET  /api/dossiers/{id}                 a dossier's timeline and results in words
    GET  /api/dossiers/{id}/stream          ... at each change, then `end`
    GET  /api/people                        a fresh family seeded, two declarations
    POST /api/declarations/{birth|death}    submit one (field violations → 400)
    POST /api/agencies/{name}/outage|latency|restore

Every error is a status and `{"message": a sentence}` quoting at most about
100 characters of what the client sent; never a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import structlog
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    Response,
)
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cli.declarations import KINDS, InvalidDeclaration, check_declaration, idempotency_key
from cli.render import dossier_state
from cli.web.dossiers import Gateway, dossier_detail
from cli.web.hub import Hub
from cli.web.live import LiveState, iso
from cli.web.people import People
from cli.web.problems import Problem, json_body, json_kind, number, rpc_problem
from cli.web.streams import dossier_events, event_stream, live_events
from cli.web.switchboard import (
    MAX_MILLISECONDS,
    MAX_SECONDS,
    MIN_SECONDS,
    SWITCHES_OFF,
    Switchboard,
    SwitchRefused,
    UnknownAgency,
)
from common.agencies import agency as agency_of
from common.quoting import quote
from lienthong.gateway.v1.gateway_pb2 import Dossier

log = structlog.get_logger("cli.web")

STATIC_DIR = Path(__file__).parent / "static"
PLACEHOLDER = (
    "<!doctype html><html lang=en><meta charset=utf-8><title>lienthong console</title>"
    "<p>The console page is not built yet; its API is at <a href=/api/overview>/api/overview</a>."
)
MAX_ID_LENGTH = 64  # the contract's GetDossierRequest.dossier_id
MAX_KEY_LENGTH = 128  # ... and idempotency_key


def _party_of(name: str, address: str, switch: Any, active: int) -> dict[str, Any]:
    table = agency_of(name)
    return {
        "name": name,
        "label": table.label or table.title,
        "kind": "agency",
        "address": address,
        "status": switch.status,
        "fault_until": iso(switch.fault_until),
        "latency_ms": switch.latency_ms,
        "active_steps": active,
    }


class _RequestLog:
    """One debug line per API request (status and time); the page's files unlogged."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/api/"):
            await self.app(scope, receive, send)
            return
        status = [0]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                log.debug(
                    "console request",
                    method=scope["method"],
                    path=scope["path"][:100],
                    status=status[0],
                )
            await send(message)

        await self.app(scope, receive, sending)


def build_app(
    *,
    live: LiveState,
    gateway: Gateway,
    people: People,
    switchboard: Switchboard,
    mode: str,
    title: str = "lienthong",
    gateway_address: str = "",
    agency_addresses: Mapping[str, str] | None = None,
    hub: Hub | None = None,
    background: Sequence[Callable[[], Coroutine[Any, Any, None]]] = (),
    static_dir: Path = STATIC_DIR,
) -> Starlette:
    """`background`: coroutines run while the app serves (the Kafka feed),
    cancelled at its end. `app.state.stopping` (a threading.Event) ends the
    event streams promptly when the server stops."""
    hub = hub or Hub()
    addresses = dict(agency_addresses or {})
    stopping = threading.Event()

    def overview(*, recent: bool = True) -> dict[str, Any]:
        data = live.snapshot(recent=recent)
        active = data.pop("active_steps")
        parties: list[dict[str, Any]] = [
            {"name": "declarant", "label": "Declarant (citizen)", "kind": "citizen"},
            {
                "name": "gateway",
                "label": "Gateway (one-stop shop)",
                "kind": "gateway",
                "address": gateway_address,
            },
        ]
        for name in live.agencies:
            parties.append(
                _party_of(
                    name, addresses.get(name, ""), switchboard.state(name), active.get(name, 0)
                )
            )
        head = {"mode": mode, "title": title, "parties": parties}
        tail = {"switches": switchboard.switches}
        return head | data | tail

    async def get_overview(request: Request) -> Response:
        return JSONResponse(overview())

    async def index(request: Request) -> Response:
        page = static_dir / "index.html"
        if page.is_file():
            return FileResponse(page)
        return HTMLResponse(PLACEHOLDER)

    async def stream(request: Request) -> Response:
        # Subscribed before the response starts: no change falls in between.
        queue = hub.subscribe()
        return event_stream(live_events(hub, queue, lambda: overview(recent=False), stopping))

    def dossier_id_of(request: Request) -> str:
        dossier_id = str(request.path_params["dossier_id"])
        if not 1 <= len(dossier_id) <= MAX_ID_LENGTH or not dossier_id.isprintable():
            raise Problem(
                400,
                f"{quote(dossier_id)} is not a dossier id (at most {MAX_ID_LENGTH} "
                "printable characters)",
            )
        return dossier_id

    async def read_dossier(dossier_id: str) -> Dossier:
        try:
            return await gateway.get(dossier_id)
        except grpc.RpcError as error:
            raise rpc_problem(error, f"read dossier {quote(dossier_id)}") from None

    async def get_dossier(request: Request) -> Response:
        return JSONResponse(dossier_detail(await read_dossier(dossier_id_of(request))))

    async def dossier_stream(request: Request) -> Response:
        dossier_id = dossier_id_of(request)
        first = await read_dossier(dossier_id)
        return event_stream(dossier_events(gateway, dossier_id, first, stopping))

    async def get_people(request: Request) -> Response:
        try:
            return JSONResponse(await run_in_threadpool(people.fresh))
        except grpc.RpcError as error:
            raise rpc_problem(error, "seed a fresh family into the registries") from None

    async def submit(request: Request) -> Response:
        kind = str(request.path_params["kind"])
        if kind not in KINDS:
            raise Problem(404, f"no declaration of kind {quote(kind)} (birth or death)")
        body = await json_body(request)
        if not isinstance(body, dict):
            raise Problem(
                400,
                'the body must be a JSON object {"declaration": {...}, "idempotency_key": ...}, '
                f"not {json_kind(body)}",
            )
        unknown = sorted(set(body) - {"declaration", "idempotency_key"})
        if unknown:
            raise Problem(
                400,
                f"unknown field {quote(unknown[0])} in the body: it takes declaration and "
                "idempotency_key",
            )
        if "declaration" not in body:
            raise Problem(400, f"the body has no declaration (a {kind} declaration object)")
        key = body.get("idempotency_key")
        if key is not None and not (isinstance(key, str) and 1 <= len(key) <= MAX_KEY_LENGTH):
            raise Problem(
                400,
                f"idempotency_key must be a string of 1 to {MAX_KEY_LENGTH} characters",
                [("idempotency_key", f"must be a string of 1 to {MAX_KEY_LENGTH} characters")],
            )
        try:
            declaration = check_declaration(body["declaration"], kind)
        except InvalidDeclaration as exc:
            fields = [(p.where, p.what) for p in exc.problems if p.where != "(document)"]
            whole = [p.what for p in exc.problems if p.where == "(document)"]
            raise Problem(
                400,
                f"the {kind} declaration {exc.what}" + (f": {whole[0]}" if whole else ""),
                fields,
            ) from None
        chosen = key or idempotency_key(kind, declaration)
        try:
            dossier_id = await gateway.submit(kind, declaration, chosen)
        except grpc.RpcError as error:
            raise rpc_problem(
                error, f"submit the {kind} declaration", strip="declaration."
            ) from None
        state = "RECEIVED"
        with contextlib.suppress(grpc.RpcError):
            # The same key again answers with its dossier, which may have moved on.
            state = dossier_state((await gateway.get(dossier_id)).state)
        return JSONResponse({"dossier_id": dossier_id, "state": state})

    async def switch(request: Request) -> Response:
        name = str(request.path_params["name"])
        action = str(request.path_params["action"])
        if action not in ("outage", "latency", "restore"):
            raise Problem(404, f"no switch {quote(action)} (outage, latency or restore)")
        try:
            switchboard.state(name)
            if not switchboard.switches:
                # Before the body is read: a replay refuses any switch, well formed or not.
                raise SwitchRefused(SWITCHES_OFF)
            if action == "restore":
                await run_in_threadpool(switchboard.restore, name)
            else:
                body = await json_body(request, empty_ok=True)
                if not isinstance(body, dict):
                    raise Problem(400, f"the body must be a JSON object, not {json_kind(body)}")
                seconds = number(body, "seconds", MIN_SECONDS, MAX_SECONDS, default=60)
                if action == "outage":
                    await run_in_threadpool(switchboard.take_down, name, seconds)
                else:
                    milliseconds = number(body, "milliseconds", 0, MAX_MILLISECONDS, default=None)
                    await run_in_threadpool(switchboard.slow_down, name, int(milliseconds), seconds)
        except UnknownAgency as exc:
            raise Problem(404, str(exc)) from None
        except SwitchRefused as exc:
            raise Problem(409, str(exc)) from None
        snapshot = live.snapshot(recent=False)["active_steps"]
        party = _party_of(
            name, addresses.get(name, ""), switchboard.state(name), snapshot.get(name, 0)
        )
        return JSONResponse(party, status_code=202)

    async def problem(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Problem)
        return exc.response()

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        words = {404: "nothing here", 405: "this method is not allowed here"}
        where = quote(request.url.path)
        return JSONResponse(
            {"message": f"{words.get(exc.status_code, exc.detail)}: {where}"},
            status_code=exc.status_code,
        )

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error("console: unexpected error", path=request.url.path[:100], exc_info=exc)
        return JSONResponse(
            {"message": f"the console failed unexpectedly ({type(exc).__name__}); see its log"},
            status_code=500,
        )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        hub.bind(asyncio.get_running_loop())
        tasks = [asyncio.create_task(run()) for run in background]
        try:
            yield
        finally:
            stopping.set()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await gateway.close()

    app = Starlette(
        routes=[
            Route("/", index),
            Mount("/static", StaticFiles(directory=static_dir, check_dir=False), name="static"),
            Route("/api/overview", get_overview),
            Route("/api/stream", stream),
            Route("/api/dossiers/{dossier_id:path}/stream", dossier_stream),
            Route("/api/dossiers/{dossier_id:path}", get_dossier),
            Route("/api/people", get_people),
            Route("/api/declarations/{kind}", submit, methods=["POST"]),
            Route(
                "/api/agencies/{name}/{action:str}",
                switch,
                methods=["POST"],
            ),
        ],
        exception_handlers={
            Problem: problem,
            HTTPException: http_error,
            Exception: unexpected,
        },
        lifespan=lifespan,
    )
    app.state.stopping = stopping
    app.state.hub = hub
    app.state.live = live
    return _with_request_log(app)


def _with_request_log(app: Starlette) -> Starlette:
    app.add_middleware(_RequestLog)
    return app
