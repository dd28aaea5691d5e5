"""A short chaos replay through the real stack: two gateways sharing one saga
store, one of them SIGKILLed and started again, insurance SIGKILLed for 4 s;
the report says what was done, how fast it recovered, and that no step ran
twice at once. And a broker restart refused where the broker's data would not
survive it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.errors import CliError
from cli.main import main
from cli.replay import broker_note, check_broker, leave_out, load
from scenarios.executions import START_MARKER
from tests.gateway.test_end_to_end import broker_kind

CHAOS = """
name: chaos-short
seed: 13
population: 2000
faults: {}
arrival:
  - {duration_s: 24, rate: 4}
gateway_kill:
  - {every_s: 20, restart_after_s: 1, gateway: round-robin, from_s: 6, until_s: 7}
agency_kill:
  - {agency: insurance, at_s: 12, duration_s: 4}
drain_timeout_s: 90
"""


@pytest.mark.kafka
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_two_gateways_survive_a_gateway_kill_and_an_agency_kill(tmp_path: Path) -> None:
    scenario_file = tmp_path / "chaos-short.yaml"
    scenario_file.write_text(CHAOS)
    report_dir = tmp_path / "report"
    code = main(
        [
            "replay",
            str(scenario_file),
            "--gateways",
            "2",
            "--broker",
            broker_kind(),
            "--report",
            str(report_dir),
        ]
    )
    report = json.loads((report_dir / "report.json").read_text())
    chaos = report["chaos"]
    assert code == 0, chaos
    assert report["lost"] == 0 and report["duplicated_effects"] == 0
    assert report["unfinished"] == 0 and report["completed"] == report["submitted"] > 50
    assert chaos["gateways"] == 2
    assert (chaos["left_received"], chaos["left_in_progress"]) == (0, 0)

    kill, agency = chaos["faults"]
    assert (kill["kind"], kill["target"], agency["kind"], agency["target"]) == (
        "gateway_kill",
        "gateway",
        "agency_kill",
        "insurance",
    )
    for fault in (kill, agency):
        assert fault["error"] is None
        assert fault["planned_at_s"] <= fault["at_s"] < fault["restarted_s"] <= fault["up_s"]
        # Both recovered before the run ended (how fast is the gateway's business).
        assert fault["recovery_s"] is not None and fault["recovery_s"] >= 0

    executions = chaos["executions"]
    # Both gateways ran steps, and the killed one ran some after its restart:
    # gateway#1, gateway#2 and gateway-2#1.
    assert executions["processes"] == 3
    assert executions["steps"] >= 4 * report["submitted"]
    assert executions["concurrent_step_executions"] == 0

    # Dossiers sent while insurance was down waited for it; the others did not.
    inside = chaos["latency_ms_by_window"]["inside_outages"]
    outside = chaos["latency_ms_by_window"]["outside_outages"]
    assert inside["count"] > 0 and outside["count"] > 0
    assert inside["count"] + outside["count"] == report["submitted"]
    assert inside["p50"] > outside["p50"]
    markdown = (report_dir / "report.md").read_text()
    assert "## Chaos" in markdown and "Time to recover" in markdown
    assert "agency_kill insurance" in markdown


def test_a_broker_restart_is_refused_for_the_embedded_broker(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario_file = tmp_path / "restart.yaml"
    scenario_file.write_text(CHAOS + "broker_restart: [{at_s: 10, duration_s: 2}]\n")
    code = main(["replay", str(scenario_file), "--broker", "embedded"])
    assert code == 2
    assert (
        f"{scenario_file}: broker_restart: needs --broker apache, whose data survives a restart "
        "(got --broker embedded: the embedded broker keeps its topics in memory, a restart "
        "would lose every event in flight)"
    ) in " ".join(capsys.readouterr().err.split())


def test_the_start_marker_is_what_the_stack_writes() -> None:
    # The executions are told apart by process from this line (cli/stack.py).
    source = (Path(__file__).parents[2] / "cli" / "stack.py").read_text()
    assert 'f"' + START_MARKER + "{component.name}" in source


def test_replay_can_leave_out_a_kind_of_fault() -> None:
    # The embedded broker cannot survive a restart: the chaos preset runs
    # there without its broker restart, and only that is left out.
    path = Path(__file__).resolve().parents[2] / "scenarios" / "chaos.yaml"
    chaos = load(path, rate=None, duration=None)
    with pytest.raises(CliError, match="broker_restart: needs --broker apache"):
        check_broker(chaos, "embedded", path)
    without = leave_out(chaos, ("broker_restart",))
    check_broker(without, "embedded", path)
    assert not without.broker_restarts and chaos.broker_restarts
    assert (without.gateway_kills, without.agency_kills) == (
        chaos.gateway_kills,
        chaos.agency_kills,
    )


DATABASE_RESTART = """
name: database-restart
seed: 17
population: 2000
faults: {}
arrival:
  - {duration_s: 24, rate: 4}
database_restart:
  - {at_s: 8, duration_s: 4}
drain_timeout_s: 120
"""


@pytest.mark.kafka
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_stack_rides_out_its_postgresql_killed_mid_run(
    tmp_path: Path, postgres_binaries: object
) -> None:
    """Every process keeps its records in the stack's PostgreSQL; it is
    SIGKILLed with dossiers in flight and started again 4 s later. Nothing
    acknowledged is lost or done twice, and every dossier ends."""
    scenario_file = tmp_path / "database-restart.yaml"
    scenario_file.write_text(DATABASE_RESTART)
    report_dir = tmp_path / "report"
    code = main(
        [
            "replay",
            str(scenario_file),
            "--store",
            "postgres",
            "--broker",
            broker_kind(),
            "--report",
            str(report_dir),
        ]
    )
    report = json.loads((report_dir / "report.json").read_text())
    chaos = report["chaos"]
    assert code == 0, chaos
    assert report["lost"] == 0 and report["duplicated_effects"] == 0
    assert report["unfinished"] == 0 and report["completed"] == report["submitted"] > 50
    assert (chaos["left_received"], chaos["left_in_progress"]) == (0, 0)
    (restart,) = chaos["faults"]
    assert (restart["kind"], restart["target"], restart["error"]) == (
        "database_restart",
        "postgres",
        None,
    )
    assert restart["planned_at_s"] <= restart["at_s"] < restart["restarted_s"] <= restart["up_s"]
    assert restart["recovery_s"] is not None
    assert chaos["executions"]["concurrent_step_executions"] == 0


def test_a_database_restart_is_refused_without_a_postgresql_of_the_stacks_own(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario_file = tmp_path / "restart.yaml"
    scenario_file.write_text(DATABASE_RESTART)
    code = main(["replay", str(scenario_file), "--broker", "embedded"])
    assert code == 2
    assert (
        f"{scenario_file}: database_restart: needs --store postgres, a PostgreSQL server this "
        "command runs (got --store sqlite: SQLite files have no server to kill)"
    ) in " ".join(capsys.readouterr().err.split())


def test_a_long_replay_on_the_embedded_broker_is_told_its_latency_will_drift() -> None:
    presets = Path(__file__).resolve().parents[2] / "scenarios"
    chaos = load(presets / "chaos.yaml", rate=None, duration=None)  # 18,000 declarations
    smoke = load(presets / "smoke.yaml", rate=None, duration=None)  # under a hundred
    note = broker_note(chaos, "embedded")
    assert note is not None
    assert "18,000 declarations" in note and "--broker apache" in note
    assert "brokers.fetch_cost" in note  # where to see why
    assert broker_note(chaos, "apache") is None
    assert broker_note(smoke, "embedded") is None
