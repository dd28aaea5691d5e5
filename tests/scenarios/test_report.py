"""The measurements and the report: HDR percentiles, per-window series, the files written."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from scenarios.faults import MISSING_FIELDS, MOTHER_ID_MISMATCH
from scenarios.report import LatencyRecorder, OutcomeCounts, window_for, write_report
from scenarios.report_markdown import render_markdown
from scenarios.scenario import AgencyOutage, Phase, Scenario
from tests.scenarios.report_samples import hand_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
REQUIRED = (
    "scenario",
    "submitted",
    "completed",
    "rejected",
    "needs_supplement",
    "lost",
    "duplicated_effects",
    "throughput_per_s",
    "latency_ms",
    "over_time",
)


def test_percentiles_match_known_inputs_within_hdr_precision() -> None:
    recorder = LatencyRecorder()
    for ms in range(1, 1001):
        recorder.record_dossier(0.0, ms / 1000)
    summary = recorder.latency_ms()["end_to_end"]
    assert summary["count"] == 1000
    assert summary["p50"] == pytest.approx(500, rel=1e-3)
    assert summary["p95"] == pytest.approx(950, rel=1e-3)
    assert summary["p99"] == pytest.approx(990, rel=1e-3)
    assert summary["max"] == pytest.approx(1000, rel=1e-3)


def test_sub_millisecond_steps_are_not_floored_to_zero() -> None:
    recorder = LatencyRecorder()
    for _ in range(10):
        recorder.record_step("verify_birth_certificate", 0.25)
    recorder.record_step("issue_card", 3_600_000 * 5)  # beyond an hour: clamped, counted
    steps = recorder.latency_ms()["steps"]
    assert steps["verify_birth_certificate"]["p50"] == pytest.approx(0.25, rel=1e-2)
    assert steps["issue_card"]["count"] == 1
    assert steps["issue_card"]["max"] == pytest.approx(3_600_000, rel=1e-2)


def test_an_empty_recorder_reports_no_numbers() -> None:
    latency = LatencyRecorder().latency_ms()
    assert latency == {
        "end_to_end": {"count": 0, "p50": None, "p95": None, "p99": None, "max": None},
        "steps": {},
    }


def test_over_time_counts_submissions_and_ends_per_window() -> None:
    recorder = LatencyRecorder(window_s=2.0)
    for at in (0.1, 0.5, 1.9, 2.5):
        recorder.record_submission(at)
    recorder.record_dossier(0.1, 0.3)  # 200 ms, sent in window 0
    recorder.record_dossier(0.5, 4.5)  # 4 s, sent in window 0, ended in window 2
    recorder.record_dossier(2.5, 2.6)  # 100 ms, sent in window 1
    series = recorder.over_time()
    assert series["t_s"] == [0.0, 2.0, 4.0]
    assert series["submitted_per_s"] == [1.5, 0.5, 0.0]
    assert series["ended_per_s"] == [0.5, 0.5, 0.5]
    assert series["p99_ms"][0] == pytest.approx(4000, rel=1e-2)
    assert series["p50_ms"][1] == pytest.approx(100, rel=1e-2)
    assert series["p50_ms"][2] is None


def test_the_window_grows_with_the_run() -> None:
    assert window_for(20) == 1
    assert window_for(600) == 2
    assert window_for(3600) == 15
    assert window_for(10**9) >= 300


def sample_run() -> tuple[Scenario, OutcomeCounts, LatencyRecorder]:
    scenario = dataclasses.replace(
        Scenario.constant(5, 20, name="sample"),
        arrival=(Phase(10, 1, 9), Phase(10, 5)),
        outages=(AgencyOutage("insurance", 5, 3),),
    )
    counts = OutcomeCounts(
        submitted=90,
        completed=78,
        completed_with_refusals=2,
        rejected=6,
        needs_supplement=3,
        unfinished=1,
        faults_expected={MOTHER_ID_MISMATCH: 4, MISSING_FIELDS: 5},
        faults_observed={MOTHER_ID_MISMATCH: 4, MISSING_FIELDS: 5},
    )
    counts.count_procedure("birth_registration", "done", "population", "", 80)
    counts.count_procedure("health_insurance_card", "done", "insurance", "", 78)
    counts.count_procedure("health_insurance_card", "refused", "insurance", "CHILD_TOO_OLD", 2)
    recorder = LatencyRecorder.for_duration(scenario.duration_s)
    for i in range(90):
        sent = i * 20 / 90
        recorder.record_submission(sent)
        recorder.record_dossier(sent, sent + 0.05 + (i % 10) * 0.02)
        recorder.record_step("register_birth", 2.0 + i % 7)
        recorder.record_step("issue_card", 0.4 + (i % 3) * 0.1)
    return scenario, counts, recorder


def test_write_report_writes_json_markdown_and_plots(tmp_path: Path) -> None:
    scenario, counts, recorder = sample_run()
    paths = write_report(
        tmp_path / "out",
        scenario=scenario,
        counts=counts,
        recorder=recorder,
        started_at=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
        wall_seconds=22.5,
        extra={"broker": "embedded"},
    )
    report = json.loads(paths.json.read_text(encoding="utf-8"))
    for key in REQUIRED:
        assert key in report, key
    assert report["scenario"] == "sample"
    assert report["broker"] == "embedded"
    assert report["throughput_per_s"] == pytest.approx(89 / 22.5)
    assert report["faults"][MISSING_FIELDS] == {"expected": 5, "observed": 5}
    assert report["completed_with_refusals"] == 2
    assert report["procedures"]["health_insurance_card"] == {"done": 78, "refused": 2}
    assert report["refusals"] == {"health_insurance_card by insurance: CHILD_TOO_OLD": 2}
    markdown = paths.markdown.read_text(encoding="utf-8")
    assert "| health_insurance_card | 78 | 2 | 0 | 0 | 0 |" in markdown
    assert "| health_insurance_card by insurance: CHILD_TOO_OLD | 2 |" in markdown
    for summary in (report["latency_ms"]["end_to_end"], *report["latency_ms"]["steps"].values()):
        assert set(summary) >= {"p50", "p95", "p99", "max", "count"}
    assert set(report["latency_ms"]["steps"]) == {"register_birth", "issue_card"}
    assert len(report["over_time"]["t_s"]) == len(report["over_time"]["p95_ms"]) > 0

    assert len(paths.plots) == 3
    for plot in paths.plots:
        data = plot.read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 1_000, plot
    assert sorted(report["plots"]) == sorted(plot.name for plot in paths.plots)

    markdown = paths.markdown.read_text(encoding="utf-8")
    assert "lost" in markdown and "duplicated" in markdown
    assert "No dossier lost, no effect duplicated" in markdown
    assert "register_birth" in markdown and "insurance down" in markdown


def test_an_empty_run_still_writes_a_report(tmp_path: Path) -> None:
    paths = write_report(
        tmp_path,
        scenario=Scenario.constant(1, 5),
        counts=OutcomeCounts(),
        recorder=LatencyRecorder(),
        started_at=datetime.now(UTC),
        wall_seconds=0.0,
    )
    report = json.loads(paths.json.read_text(encoding="utf-8"))
    assert report["throughput_per_s"] == 0
    assert all(plot.read_bytes().startswith(PNG_SIGNATURE) for plot in paths.plots)


def test_losses_are_called_out_in_the_markdown(tmp_path: Path) -> None:
    scenario, counts, recorder = sample_run()
    counts.lost, counts.duplicated_effects = 2, 1
    paths = write_report(
        tmp_path,
        scenario=scenario,
        counts=counts,
        recorder=recorder,
        started_at=datetime.now(UTC),
        wall_seconds=20.0,
    )
    report = json.loads(paths.json.read_text(encoding="utf-8"))
    assert "2 dossier(s) lost, 1 duplicated effect(s)" in render_markdown(report)
    assert paths.markdown.read_text(encoding="utf-8") == render_markdown(report)


def test_extra_cannot_overwrite_the_measurements(tmp_path: Path) -> None:
    scenario, counts, recorder = sample_run()
    with pytest.raises(ValueError, match="lost"):
        write_report(
            tmp_path,
            scenario=scenario,
            counts=counts,
            recorder=recorder,
            started_at=datetime.now(UTC),
            wall_seconds=1.0,
            extra={"lost": 0},
        )


def test_the_markdown_names_the_commit_the_memory_and_what_ended_unplanned() -> None:
    report = hand_report(unexpected_outcomes={"COMPLETED -> REJECTED (population)": 3})
    markdown = render_markdown(report)
    assert "dossiers ended per second. Commit 985062f." in markdown
    assert "**3 dossier(s) ended otherwise than planned** (listed below)." in markdown
    assert "| COMPLETED -> REJECTED (population) | 3 |" in markdown
    assert "| gateway | 81.5 | 84.0 | 86.2 | 2.50 |" in markdown
