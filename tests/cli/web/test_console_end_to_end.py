"""The console over a real stack: the embedded broker, the three registries
and the gateway as processes, the console started in-process as `lienthong
up` starts it (cli/web/launch.py), and its HTTP API driven with a real
HTTP client: people seeded, a birth submitted and followed to COMPLETED,
the overview and the event stream fed from Kafka, a contract violation
named by field, and an agency taken down and started again."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from rich.console import Console

from cli.stack import Stack
from cli.supervisor import Holds, Supervisor
from cli.web.launch import WebConsole, start_console

DEADLINE_SECONDS = 60.0


def wait_for(what: str, condition: Callable[[], Any], timeout: float = DEADLINE_SECONDS) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        # Polling an HTTP API: a short pause between looks.
        threading.Event().wait(0.1)


class Clock:
    """The supervisor's: moved by hand past its restart pauses."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def running() -> Iterator[tuple[Stack, WebConsole, Supervisor]]:
    holds = Holds()
    with Stack(broker="embedded") as stack:
        web = start_console(Console(quiet=True), stack, mode="up", port=0, holds=holds)
        supervisor = Supervisor(stack, say=lambda line: None, clock=Clock(), holds=holds)
        try:
            yield stack, web, supervisor
        finally:
            web.stop()


class StepEvents:
    """Reads /api/stream in a thread; keeps the `step` events."""

    def __init__(self, base: str) -> None:
        self.steps: list[dict[str, Any]] = []
        self.names: set[str] = set()
        self._client = httpx.Client(base_url=base, timeout=None)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            with self._client.stream("GET", "/api/stream") as response:
                event = ""
                for line in response.iter_lines():
                    if line.startswith("event: "):
                        event = line.removeprefix("event: ")
                        self.names.add(event)
                    elif line.startswith("data: ") and event == "step":
                        self.steps.append(json.loads(line.removeprefix("data: ")))
        except httpx.HTTPError:
            return

    def close(self) -> None:
        self._client.close()


@pytest.mark.kafka
@pytest.mark.slow
@pytest.mark.timeout(180)
def test_the_console_submits_follows_counts_and_switches_over_a_real_stack(
    running: tuple[Stack, WebConsole, Supervisor],
) -> None:
    stack, web, supervisor = running
    client = httpx.Client(base_url=web.address, timeout=30)
    events = StepEvents(web.address)
    try:
        assert client.get("/").status_code == 200

        people = client.get("/api/people")
        assert people.status_code == 200, people.text
        birth = people.json()["birth"]["declaration"]

        submitted = client.post("/api/declarations/birth", json={"declaration": birth})
        assert submitted.status_code == 200, submitted.text
        dossier_id = submitted.json()["dossier_id"]
        # The same content again is the same dossier (key derived from it).
        again = client.post("/api/declarations/birth", json={"declaration": birth})
        assert again.json()["dossier_id"] == dossier_id

        detail = wait_for(
            "the birth to complete",
            lambda: (
                (d := client.get(f"/api/dossiers/{dossier_id}").json())["state"] == "COMPLETED"
                and d
            ),
        )
        assert detail["ended"] is True and detail["procedure"] == "birth"
        assert {s["agency"] for s in detail["timeline"]} >= {"health", "population", "insurance"}
        assert any("personal ID number is" in line for line in detail["results"])

        overview = wait_for(
            "the overview to count it",
            lambda: (
                (o := client.get("/api/overview").json())["counters"].get("COMPLETED", 0) >= 1 and o
            ),
        )
        assert dossier_id in [row["dossier_id"] for row in overview["recent"]]
        assert overview["switches"] is True
        assert [p["name"] for p in overview["parties"]][:2] == ["declarant", "gateway"]
        wait_for(
            "population's steps on the event stream",
            lambda: (
                {(s["phase"], s["dossier_id"]) for s in events.steps if s["agency"] == "population"}
                >= {("started", dossier_id), ("ended", dossier_id)}
            ),
        )

        # A rule of the contract, named by its field inside the declaration.
        bad = dict(birth, mother_id_number="12AB")
        refused = client.post("/api/declarations/birth", json={"declaration": bad})
        assert refused.status_code == 400
        assert "mother_id_number" in [v["field"] for v in refused.json()["violations"]]
        # A rule only the gateway knows (a real calendar day), named the same way.
        bad = dict(birth, child_date_of_birth="2025-02-30")
        refused = client.post("/api/declarations/birth", json={"declaration": bad})
        assert refused.status_code == 400, refused.text
        assert [v["field"] for v in refused.json()["violations"]] == ["child_date_of_birth"]
        assert "AioRpcError" not in refused.json()["message"]
        assert client.get("/api/dossiers/birth-0000000000000000").status_code == 404

        # Insurance down for 2 s: the supervisor leaves it down, then it is back.
        down = client.post("/api/agencies/insurance/outage", json={"seconds": 2})
        assert down.status_code == 202, down.text
        assert down.json()["status"] == "down" and down.json()["fault_until"]
        assert not stack.is_running("insurance")
        # Held: the supervisor does not start it again, even past its pauses.
        assert isinstance(supervisor.clock, Clock)
        for _ in range(3):
            supervisor.clock.now += 100
            assert supervisor.check() == []
        assert not stack.is_running("insurance")

        def insurance_status() -> str:
            parties = client.get("/api/overview").json()["parties"]
            return str(next(p for p in parties if p["name"] == "insurance")["status"])

        wait_for("insurance to be up again", lambda: insurance_status() == "up", timeout=30)
        assert stack.is_running("insurance")
    finally:
        events.close()
        client.close()
