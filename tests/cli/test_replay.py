"""A short replay through the real stack (three registries, the gateway, a
real Kafka broker), then the audit shown to catch what it is there to catch."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.console import Console

from cli.main import main
from cli.replay import load, run_scenario, write
from cli.stack import Stack
from common import channels
from common.clock import SystemClock, vietnam_today
from lienthong.gateway.v1 import gateway_pb2 as gw
from scenarios import replay as engine
from scenarios.audit import AuditResult, audit
from scenarios.declarations import PlannedDeclaration
from tests.gateway.test_end_to_end import broker_kind

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(300)]

SMOKE = Path(__file__).parents[2] / "scenarios" / "smoke.yaml"
PNG = b"\x89PNG\r\n\x1a\n"


@dataclass
class Replayed:
    data_dir: Path
    report_dir: Path
    result: engine.ReplayResult
    declarations: list[PlannedDeclaration]


@pytest.fixture(scope="module")
def replayed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replayed]:
    base = tmp_path_factory.mktemp("replay")
    scenario = load(SMOKE, rate=None, duration=10)
    console = Console(file=io.StringIO())
    # A data directory of the test's own: the files stay after the stack stops.
    with Stack(broker=broker_kind(), data_dir=base / "stack", verbose_children=False) as stack:
        result = run_scenario(console, scenario, stack, show_progress=False)
    write(base / "report", scenario, result)
    # The same seed and day plan the same declarations again.
    plan = engine.prepare(scenario, vietnam_today(SystemClock())).plan
    yield Replayed(base / "stack", base / "report", result, plan.declarations)


def test_the_smoke_replay_loses_nothing_and_catches_every_planted_fault(
    replayed: Replayed,
) -> None:
    report = json.loads((replayed.report_dir / "report.json").read_text())
    assert report["lost"] == 0
    assert report["duplicated_effects"] == 0
    assert report["unfinished"] == 0
    assert report["submitted"] >= 20
    ended = ("completed", "completed_with_refusals", "rejected", "needs_supplement")
    assert sum(report[key] for key in ended) == report["submitted"]
    assert all(report[key] > 0 for key in ended), {key: report[key] for key in ended}
    # Late birth declarations: registered and resident, the card refused by VSS.
    cards = report["procedures"]["health_insurance_card"]
    assert cards["refused"] == report["completed_with_refusals"]
    refused = report["refusals"]
    assert refused["health_insurance_card by insurance: CHILD_TOO_OLD"] == cards["refused"]
    assert refused["death_registration by population: ALREADY_DEAD"] > 0
    assert report["procedures"]["birth_registration"]["done"] >= report["completed_with_refusals"]
    assert "## Procedures" in (replayed.report_dir / "report.md").read_text()
    assert report["faults"], "the smoke scenario plants faults"
    for kind, seen in report["faults"].items():
        assert seen["observed"] == seen["expected"] > 0, kind
    assert report["unexpected_outcomes"] == {}
    end_to_end = report["latency_ms"]["end_to_end"]
    assert {"p50", "p95", "p99", "max"} <= set(end_to_end)
    assert 0 < end_to_end["p50"] <= end_to_end["p99"] <= end_to_end["max"]
    assert {"register_birth", "issue_health_insurance_card", "settle_insurance"} <= set(
        report["latency_ms"]["steps"]
    )
    assert report["throughput_per_s"] > 0
    # Every process's memory was sampled (a long replay shows it flat or not).
    assert {"gateway", "population", "insurance", "health"} <= set(report["memory_mb"])
    assert all(m["samples"] >= 2 and m["max_mb"] > 0 for m in report["memory_mb"].values())
    plots = sorted(replayed.report_dir.glob("*.png"))
    assert len(plots) == 3
    assert all(p.read_bytes().startswith(PNG) for p in plots)
    assert "lost" in (replayed.report_dir / "report.md").read_text()


def _audit_result(replayed: Replayed) -> AuditResult:
    return audit(
        replayed.declarations,
        {d.key for d in replayed.declarations},
        population_db=replayed.data_dir / "population.sqlite3",
        insurance_db=replayed.data_dir / "insurance.sqlite3",
    )


def _audit(replayed: Replayed) -> tuple[int, int]:
    found = audit(
        replayed.declarations,
        {d.key for d in replayed.declarations},
        population_db=replayed.data_dir / "population.sqlite3",
        insurance_db=replayed.data_dir / "insurance.sqlite3",
    )
    return found.lost, found.duplicated_effects


def _a_completed_child(replayed: Replayed) -> str:
    birth = next(
        d for d in replayed.declarations if d.kind == "birth" and d.expected_state == "COMPLETED"
    )
    with closing(sqlite3.connect(replayed.data_dir / "population.sqlite3")) as conn:
        row = conn.execute(
            "SELECT personal_id_number FROM citizens WHERE birth_certificate_number = ?",
            (birth.birth_certificate_number,),
        ).fetchone()
    return str(row[0])


def test_the_audit_counts_a_missing_card_as_lost_and_a_second_residence_as_duplicated(
    replayed: Replayed,
) -> None:
    assert _audit(replayed) == (0, 0)
    child = _a_completed_child(replayed)
    with closing(sqlite3.connect(replayed.data_dir / "insurance.sqlite3")) as conn, conn:
        conn.execute(
            "DELETE FROM cards WHERE social_insurance_number IN "
            "(SELECT social_insurance_number FROM participants WHERE personal_id_number = ?)",
            (child,),
        )
    assert _audit(replayed) == (1, 0)
    with closing(sqlite3.connect(replayed.data_dir / "population.sqlite3")) as conn, conn:
        household = conn.execute(
            "SELECT household_id FROM residences WHERE personal_id_number = ?", (child,)
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO residences (personal_id_number, household_id, registered_on, "
            "removed_on) VALUES (?, ?, '2026-01-01', '2026-01-02')",
            (child, household),
        )
    assert _audit(replayed) == (1, 1)


def test_the_audit_judges_the_allowance_by_its_own_rule(replayed: Replayed) -> None:
    paid = next(
        d
        for d in replayed.declarations
        if d.kind == "death" and d.expected_state == "COMPLETED" and d.funeral_allowance_eligible
    )
    assert _audit_result(replayed).wrong_amounts == 0
    person = paid.deceased_id_number
    with closing(sqlite3.connect(replayed.data_dir / "insurance.sqlite3")) as conn, conn:
        # One base salary off: 10 × 2,340,000 is due for a death since July 2024.
        conn.execute(
            "UPDATE funeral_allowances SET amount_vnd = amount_vnd - 2340000 "
            "WHERE personal_id_number = ?",
            (person,),
        )
    found = _audit_result(replayed)
    assert (found.wrong_amounts, found.examples["wrong_amounts"]) == (1, [paid.key])
    with closing(sqlite3.connect(replayed.data_dir / "insurance.sqlite3")) as conn, conn:
        conn.execute(
            "UPDATE funeral_allowances SET amount_vnd = amount_vnd + 2340000 "
            "WHERE personal_id_number = ?",
            (person,),
        )
    # A payment to a death the rule owes nothing (no claim, or a history that
    # earns none): an effect the audit did not expect.
    not_due = next(
        d
        for d in replayed.declarations
        if d.kind == "death"
        and d.expected_state == "COMPLETED"
        and not d.funeral_allowance_eligible
    )
    before = _audit_result(replayed).unexpected_effects
    with closing(sqlite3.connect(replayed.data_dir / "insurance.sqlite3")) as conn, conn:
        row = conn.execute(
            "SELECT * FROM funeral_allowances WHERE personal_id_number = ?", (person,)
        ).fetchone()
        conn.execute(
            "INSERT INTO funeral_allowances VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (not_due.deceased_id_number, *row[1:5], f"MT-TEST-{not_due.key}", *row[6:]),
        )
    assert _audit_result(replayed).unexpected_effects == before + 1


def test_a_death_declared_twice_expects_one_allowance(replayed: Replayed) -> None:
    paid = next(
        d
        for d in replayed.declarations
        if d.kind == "death" and d.expected_state == "COMPLETED" and d.funeral_allowance_eligible
    )
    # A relative declares the same death again, without claiming: the one
    # allowance already paid is the death's, not an unexpected effect.
    assert isinstance(paid.request, gw.SubmitDeathDeclarationRequest)
    request = gw.SubmitDeathDeclarationRequest()
    request.CopyFrom(paid.request)
    request.declaration.claim_funeral_allowance = False
    again = dataclasses.replace(
        paid, key=f"{paid.key}-again", request=request, funeral_allowance_eligible=None
    )

    def findings(declarations: list[PlannedDeclaration]) -> tuple[int, int, int, int]:
        found = audit(
            declarations,
            {d.key for d in declarations},
            population_db=replayed.data_dir / "population.sqlite3",
            insurance_db=replayed.data_dir / "insurance.sqlite3",
        )
        return found.lost, found.duplicated_effects, found.unexpected_effects, found.wrong_amounts

    # Other tests tamper with the same files: compare with and without the repeat.
    assert findings([*replayed.declarations, again]) == findings(replayed.declarations)


def test_a_bad_scenario_file_is_named_with_its_field(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text(SMOKE.read_text().replace("population: 2000", "population: lots"))
    assert main(["replay", str(broken), "--report", str(tmp_path / "out")]) == 2


OUTAGE = """
name: outage
seed: 11
population: 2000
faults: {}
arrival:
  - {duration_s: 12, rate: 3}
outages:
  - {agency: insurance, at_s: 2, duration_s: 4}
added_latency:
  - {agency: health, at_s: 6, duration_s: 4, latency_ms: 300}
drain_timeout_s: 90
"""


def test_an_outage_and_added_latency_delay_dossiers_but_lose_none(tmp_path: Path) -> None:
    scenario_file = tmp_path / "outage.yaml"
    scenario_file.write_text(OUTAGE)
    report_dir = tmp_path / "report"
    code = main(
        ["replay", str(scenario_file), "--broker", broker_kind(), "--report", str(report_dir)]
    )
    report = json.loads((report_dir / "report.json").read_text())
    assert code == 0
    assert report["lost"] == 0 and report["duplicated_effects"] == 0
    assert report["completed"] == report["submitted"] > 0
    steps = report["latency_ms"]["steps"]
    # Insurance was down for 4 s: some card or settlement step waited it out.
    slowest_insurance = max(
        steps[name]["max"]
        for name in ("issue_health_insurance_card", "settle_insurance")
        if name in steps
    )
    assert slowest_insurance >= 1000
    # Health answered 300 ms late for 4 s.
    slowest_health = max(
        steps[name]["max"]
        for name in ("verify_birth_certificate", "verify_death_notice")
        if name in steps
    )
    assert slowest_health >= 300


def test_a_replay_on_a_plugged_in_population_says_what_its_audit_could_not_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One CA for both stacks: the replay's gateway must trust their registry.
    shared = tmp_path / "pki"
    monkeypatch.setenv("LIENTHONG_PKI_DIR", str(shared))
    with Stack(broker=None, registries=("population",), data_dir=tmp_path / "theirs") as theirs:
        address = theirs.address("population")
        code = main(
            [
                "replay",
                str(SMOKE),
                "--duration",
                "3",
                "--broker",
                broker_kind(),
                "--agency",
                f"population={address}",
                "--report",
                str(tmp_path / "out"),
            ]
        )
    assert code == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text(encoding="utf-8"))
    assert report["completed"] > 0
    # Checked through population's read RPCs: every child and every death found.
    assert report["audited_dossiers"] > 0
    assert (report["lost"], report["duplicated_effects"]) == (0, 0)
    assert [line.split(" ")[0] for line in report["audit_not_checked"]] == ["population"]
    markdown = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "**Not checked:** population (through its contract)" in markdown


def test_a_fault_on_a_plugged_in_agency_is_refused_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    chaos = Path(__file__).parents[2] / "scenarios" / "chaos.yaml"
    code = main(
        [
            "replay",
            str(chaos),
            "--broker",
            "apache",
            "--agency",
            "population=127.0.0.1:1",
            "--report",
            str(tmp_path / "out"),
        ]
    )
    assert code == 2
    assert "agency_kill: population is plugged in with --agency" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_the_audit_through_the_contracts_finds_what_the_files_show(
    replayed: Replayed, tmp_path: Path
) -> None:
    # The replay's registries on a copy of their files (earlier tests alter
    # the originals), asked through their contracts as an external agency is.
    copy = tmp_path / "stack"
    copy.mkdir()
    for path in replayed.data_dir.glob("*.sqlite3*"):
        shutil.copy(path, copy / path.name)
    population_db, insurance_db = copy / "population.sqlite3", copy / "insurance.sqlite3"
    with closing(sqlite3.connect(population_db)) as conn:
        children = dict(
            conn.execute(
                "SELECT birth_certificate_number, personal_id_number FROM citizens "
                "WHERE birth_certificate_number <> ''"
            ).fetchall()
        )
    accepted = {d.key for d in replayed.declarations}
    with Stack(broker=None, data_dir=copy, verbose_children=False) as registries:
        target = engine.ReplayTarget(
            gateway="",
            agencies=registries.agency_addresses,
            bootstrap_servers="",
            settled_topic="",
            databases={},
        )

        def through_contracts() -> AuditResult:
            # The audit reads as the CLI does: under its identity.
            with channels.identity(registries.tls()):
                return asyncio.run(
                    engine.audit_of(target, replayed.declarations, accepted, children)
                )

        by_files = audit(
            replayed.declarations, accepted, population_db=population_db, insurance_db=insurance_db
        )
        before = through_contracts()
        assert before.checked == by_files.checked > 0
        assert before.lost == by_files.lost
        assert [line.split(" ")[0] for line in before.not_checked] == ["population", "insurance"]
        # A child no earlier test took anything from.
        child = next(
            children[d.birth_certificate_number]
            for d in replayed.declarations
            if d.kind == "birth"
            and d.expected_state == "COMPLETED"
            and d.birth_certificate_number in children
            and d.key not in before.examples.get("lost", [])
        )
        # The child's residence gone from what the population registry answers.
        with closing(sqlite3.connect(population_db)) as conn, conn:
            conn.execute(
                "UPDATE citizens SET household_id = NULL WHERE personal_id_number = ?", (child,)
            )
        assert through_contracts().lost == before.lost + 1
