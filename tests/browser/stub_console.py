"""A stand-in for the console's server, for working on the page alone.

Serves cli/web/static/ and canned answers in the shape of the HTTP contract
(the overview, the streams, people, declarations, switches): a dossier
submitted here walks through three steps in about three seconds. No test
relies on it; the browser tests run against the real stack. Run it with

    .venv/bin/python -m tests.browser.stub_console 8099 [--replay]
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import re
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).resolve().parents[2] / "cli" / "web" / "static"
STEPS = {
    "birth": [
        ("register_birth", "population"),
        ("register_permanent_residence", "population"),
        ("issue_health_insurance_card", "insurance"),
    ],
    "death": [
        ("register_death", "population"),
        ("remove_permanent_residence", "population"),
        ("end_health_insurance_card", "insurance"),
    ],
}
_serial = itertools.count(1)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")


class Stub:
    def __init__(self, *, replay: bool) -> None:
        self.dossiers: dict[str, dict[str, Any]] = {}
        self.queues: list[asyncio.Queue[tuple[str, Any]]] = []
        self.replay = replay
        self.started = dt.datetime.now(dt.UTC)
        self.faults: dict[str, tuple[str, dt.datetime, int]] = {}

    def parties(self) -> list[dict[str, Any]]:
        active = {"health": 0, "population": 0, "insurance": 0}
        for dossier in self.dossiers.values():
            for step in dossier["timeline"]:
                if step["state"] == "RUNNING":
                    active[step["agency"]] += 1
        labels = {
            "health": "Hospital (health)",
            "population": "Population registry (Ministry of Public Security)",
            "insurance": "Social security (VSS)",
        }
        agencies = []
        for port, name in enumerate(labels, start=50051):
            fault = self.faults.get(name)
            if fault and fault[1] < dt.datetime.now(dt.UTC):
                fault = None
                self.faults.pop(name)
            agencies.append(
                {
                    "name": name,
                    "label": labels[name],
                    "kind": "agency",
                    "address": f"127.0.0.1:{port}",
                    "status": fault[0] if fault else "up",
                    "fault_until": fault[1].isoformat().replace("+00:00", "Z") if fault else None,
                    "latency_ms": fault[2] if fault else 0,
                    "active_steps": active[name],
                }
            )
        return [
            {"name": "declarant", "label": "Declarant (citizen)", "kind": "citizen"},
            {
                "name": "gateway",
                "label": "Gateway (one-stop shop)",
                "kind": "gateway",
                "address": "127.0.0.1:50050",
            },
            *agencies,
        ]

    def row(self, dossier: dict[str, Any]) -> dict[str, Any]:
        running = [s["agency"] for s in dossier["timeline"] if s["state"] == "RUNNING"]
        return {
            "dossier_id": dossier["dossier_id"],
            "procedure": dossier["procedure"],
            "state": dossier["state"],
            "submitted_at": dossier["submitted_at"],
            "updated_at": _now(),
            "current_agency": running[0] if running else None,
            "ended": dossier["ended"],
        }

    def replay_stats(self) -> dict[str, Any] | None:
        if not self.replay:
            return None
        elapsed = (dt.datetime.now(dt.UTC) - self.started).total_seconds()
        sent = min(300, int(elapsed * 10))
        done = elapsed > 35
        return {
            "scenario": "smoke",
            "phase": "done" if done else "replaying",
            "planned": 300,
            "sent": sent,
            "accepted": sent,
            "settled": max(0, sent - 8),
            "failed": 0,
            "in_flight": 0 if done else 8,
            "elapsed_s": round(elapsed, 1),
            "duration_s": 30.0,
            "throughput_per_s": 9.8,
            "latency_ms": {"p50": 80 + elapsed % 7, "p95": 110 + elapsed % 13, "p99": 140.0},
            "final": (
                {"lost": 0, "duplicated": 0, "completed": 300, "unexpected": 0, "report_dir": "out"}
                if done
                else None
            ),
        }

    def overview(self, *, recent: bool) -> dict[str, Any]:
        counters: dict[str, int] = {}
        for dossier in self.dossiers.values():
            counters[dossier["state"]] = counters.get(dossier["state"], 0) + 1
        body: dict[str, Any] = {
            "mode": "replay" if self.replay else "up",
            "title": "lienthong — embedded broker, sqlite store (stub)",
            "parties": self.parties(),
            "counters": counters,
            "throughput": {"submitted_per_s": 0.4, "settled_per_s": 0.3, "window_s": 10},
            "agency_latency_ms": {
                "population": {"p50": 12.0, "p95": 30.0, "count": 20, "window_s": 60}
            },
            "switches": not self.replay,
            "replay": self.replay_stats(),
        }
        if recent:
            rows = sorted(self.dossiers.values(), key=lambda d: d["submitted_at"], reverse=True)
            body["recent"] = [self.row(d) for d in rows[:50]]
        return body

    def publish(self, event: str, data: Any) -> None:
        for queue in self.queues:
            queue.put_nowait((event, data))

    async def walk(self, dossier: dict[str, Any]) -> None:
        dossier["state"] = "IN_PROGRESS"
        for name, agency in STEPS[dossier["procedure"]]:
            step = {
                "step": name,
                "agency": agency,
                "state": "RUNNING",
                "elapsed_ms": None,
                "attempts": 1,
                "outcome": "",
            }
            dossier["timeline"].append(step)
            self.publish(
                "step",
                {
                    "dossier_id": dossier["dossier_id"],
                    "step": name,
                    "agency": agency,
                    "phase": "started",
                    "outcome": None,
                    "at": _now(),
                },
            )
            self.publish("dossier", self.row(dossier))
            await asyncio.sleep(1.0)
            step.update(state="SUCCEEDED", elapsed_ms=1000, outcome="done")
            self.publish(
                "step",
                {
                    "dossier_id": dossier["dossier_id"],
                    "step": name,
                    "agency": agency,
                    "phase": "ended",
                    "outcome": "done",
                    "at": _now(),
                },
            )
        dossier.update(state="COMPLETED", ended=True)
        dossier["results"] = [
            f"Birth registered; the child's personal ID number is 0012250{next(_serial):05d}."
        ]
        dossier["procedures"] = ["birth registration (population): done"]
        self.publish("dossier", self.row(dossier))


def build(stub: Stub) -> Starlette:
    async def index(_: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    async def overview(_: Request) -> Response:
        return JSONResponse(stub.overview(recent=True))

    async def stream(_: Request) -> Response:
        queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        stub.queues.append(queue)

        async def events() -> AsyncIterator[str]:
            try:
                while True:
                    try:
                        event, data = await asyncio.wait_for(queue.get(), 1.0)
                    except TimeoutError:
                        event, data = "overview", stub.overview(recent=False)
                    yield f"event: {event}\ndata: {json.dumps(data)}\n\n"
            finally:
                stub.queues.remove(queue)

        return StreamingResponse(events(), media_type="text/event-stream")

    async def people(_: Request) -> Response:
        token = next(_serial)
        return JSONResponse(
            {
                "birth": {
                    "label": f"A new baby girl, family {token}",
                    "declaration": json.loads(
                        (STATIC.parents[2] / "scenarios/examples/birth.json").read_text()
                    ),
                },
                "death": {
                    "label": f"A pensioner's death, family {token}",
                    "declaration": json.loads(
                        (STATIC.parents[2] / "scenarios/examples/death.json").read_text()
                    ),
                },
            }
        )

    async def declare(request: Request) -> Response:
        kind = request.path_params["kind"]
        body = await request.json()
        declaration = body["declaration"]
        violations = []
        day = declaration.get("child_date_of_birth", declaration.get("date_of_death", ""))
        if day and not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])", day):
            field = "child_date_of_birth" if kind == "birth" else "date_of_death"
            violations.append({"field": field, "message": "is not a real calendar day"})
        if not declaration.get("declarant", {}).get("full_name"):
            violations.append({"field": "declarant.full_name", "message": "must not be empty"})
        if violations:
            return JSONResponse(
                {"message": "The declaration has errors.", "violations": violations}, 400
            )
        dossier_id = str(uuid.uuid4())
        dossier = {
            "dossier_id": dossier_id,
            "procedure": kind,
            "state": "RECEIVED",
            "ended": False,
            "submitted_at": _now(),
            "timeline": [],
            "results": [],
            "procedures": [],
        }
        stub.dossiers[dossier_id] = dossier
        stub.publish("dossier", stub.row(dossier))
        asyncio.get_running_loop().create_task(stub.walk(dossier))
        return JSONResponse({"dossier_id": dossier_id, "state": "RECEIVED"})

    async def dossier(request: Request) -> Response:
        found = stub.dossiers.get(request.path_params["dossier_id"])
        if found is None:
            return JSONResponse({"message": "No such dossier."}, 404)
        return JSONResponse(found)

    async def dossier_stream(request: Request) -> Response:
        found = stub.dossiers.get(request.path_params["dossier_id"])
        if found is None:
            return JSONResponse({"message": "No such dossier."}, 404)

        async def events() -> AsyncIterator[str]:
            while True:
                yield f"event: dossier\ndata: {json.dumps(found)}\n\n"
                if found["ended"]:
                    yield "event: end\ndata: {}\n\n"
                    return
                await asyncio.sleep(0.3)

        return StreamingResponse(events(), media_type="text/event-stream")

    async def switch(request: Request) -> Response:
        name = request.path_params["name"]
        action = request.path_params["action"]
        body = await request.json()
        until = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=body.get("seconds", 60))
        if action == "restore":
            stub.faults.pop(name, None)
        else:
            status = "down" if action == "outage" else "slow"
            stub.faults[name] = (status, until, body.get("milliseconds", 0))
        party = next(p for p in stub.parties() if p["name"] == name)
        return JSONResponse(party, 202)

    return Starlette(
        routes=[
            Route("/", index),
            Mount("/static", StaticFiles(directory=STATIC)),
            Route("/api/overview", overview),
            Route("/api/stream", stream),
            Route("/api/people", people),
            Route("/api/declarations/{kind}", declare, methods=["POST"]),
            Route("/api/dossiers/{dossier_id}", dossier),
            Route("/api/dossiers/{dossier_id}/stream", dossier_stream),
            Route("/api/agencies/{name}/{action}", switch, methods=["POST"]),
        ]
    )


if __name__ == "__main__":
    uvicorn.run(
        build(Stub(replay="--replay" in sys.argv)),
        host="127.0.0.1",
        port=int(sys.argv[1]),
        log_level="warning",
    )
