"""What a replay measured, and the report it leaves behind.

`LatencyRecorder` keeps HDR histograms (end to end, per step, per time window)
and counts per window; `OutcomeCounts` says how the dossiers ended;
`write_report` turns both into report.json, report.md, report.html and PNG plots.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from scenarios.scenario import Scenario

__all__ = [
    "LatencyRecorder",
    "OutcomeCounts",
    "ReportPaths",
    "new_histogram",
    "record_ms",
    "summarize",
    "window_for",
    "write_report",
]

# Recorded in microseconds, 1 µs .. 1 hour: steps against a local registry take
# well under a millisecond, which a histogram in whole milliseconds would floor to 0.
_UNITS_PER_MS = 1_000
_HIGHEST = 3_600 * 1_000_000
_DIGITS = 3
# Windows only feed the plots; 2 digits (1 %) is plenty there and keeps each
# window's histogram ~8x smaller, which matters for runs with hundreds of windows.
_WINDOW_DIGITS = 2
_WINDOW_CHOICES_S = (1, 2, 5, 10, 15, 30, 60, 300, 900)
_MAX_WINDOWS = 300
PERCENTILES = {"p50": 50.0, "p95": 95.0, "p99": 99.0}


def window_for(duration_s: float) -> float:
    """The shortest round window giving at most ~300 points over the run."""
    for window in _WINDOW_CHOICES_S:
        if duration_s / window <= _MAX_WINDOWS:
            return float(window)
    return float(_WINDOW_CHOICES_S[-1])


def nearest_rank(ordered: Sequence[float], fraction: float) -> float:
    """The smallest sample with at least `fraction` of the samples at or
    below it (nearest rank), from samples in ascending order; nan for none.
    For small exact sets (the echo baseline, the console's windows); the
    replay's own latencies go through an HDR histogram."""
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def new_histogram(digits: int = _DIGITS) -> HdrHistogram:
    """A latency histogram in the report's units (µs, up to an hour)."""
    return HdrHistogram(1, _HIGHEST, digits)


_histogram = new_histogram


def record_ms(histogram: HdrHistogram, ms: float) -> None:
    # Clamped, not dropped: a dossier slower than an hour still counts, as an hour.
    units = round(ms * _UNITS_PER_MS)
    histogram.record_value(min(max(units, 0), _HIGHEST))


def summarize(histogram: HdrHistogram) -> dict[str, float | int | None]:
    """count, p50, p95, p99, max in milliseconds (None when nothing was recorded)."""
    count = int(histogram.get_total_count())
    if count == 0:
        return {"count": 0, **dict.fromkeys(PERCENTILES), "max": None}
    values = histogram.get_percentile_to_value_dict(list(PERCENTILES.values()))
    summary: dict[str, float | int | None] = {"count": count}
    for key, percentile in PERCENTILES.items():
        summary[key] = round(values[percentile] / _UNITS_PER_MS, 3)
    summary["max"] = round(histogram.get_max_value() / _UNITS_PER_MS, 3)
    return summary


class LatencyRecorder:
    """Latencies and counts of one run; times are seconds from the replay's start."""

    def __init__(self, window_s: float = 1.0) -> None:
        if not (math.isfinite(window_s) and window_s > 0):
            raise ValueError(f"window_s must be a positive number, got {window_s}")
        self.window_s = window_s
        self.end_to_end = _histogram()
        self.steps: dict[str, HdrHistogram] = {}
        self._windows: dict[int, HdrHistogram] = {}
        self._submitted: dict[int, int] = {}
        self._ended: dict[int, int] = {}

    @classmethod
    def for_duration(cls, duration_s: float) -> LatencyRecorder:
        """A recorder whose window suits a run of about `duration_s` seconds."""
        return cls(window_for(duration_s))

    def _window(self, at_s: float) -> int:
        return max(int(at_s // self.window_s), 0)

    def record_submission(self, at_s: float) -> None:
        """A declaration went out at `at_s`."""
        index = self._window(at_s)
        self._submitted[index] = self._submitted.get(index, 0) + 1

    def record_dossier(self, submitted_at_s: float, finished_at_s: float) -> None:
        """A dossier ended (completed, with or without refusals, rejected or
        needing supplement)."""
        ms = (finished_at_s - submitted_at_s) * 1_000
        record_ms(self.end_to_end, ms)
        # Latency goes to the window it was *sent* in, so a slow spell lines up
        # with the outage that caused it; throughput goes to when it ended.
        sent = self._window(submitted_at_s)
        if sent not in self._windows:
            self._windows[sent] = _histogram(_WINDOW_DIGITS)
        record_ms(self._windows[sent], ms)
        ended = self._window(finished_at_s)
        self._ended[ended] = self._ended.get(ended, 0) + 1

    def record_step(self, name: str, ms: float) -> None:
        """One saga step (a registry call) took `ms` milliseconds."""
        if name not in self.steps:
            self.steps[name] = _histogram()
        record_ms(self.steps[name], ms)

    def latency_ms(self) -> dict[str, Any]:
        return {
            "end_to_end": summarize(self.end_to_end),
            "steps": {name: summarize(h) for name, h in sorted(self.steps.items())},
        }

    def over_time(self) -> dict[str, Any]:
        """Per-window series: start times, rates per second and latency percentiles."""
        indexes = [*self._windows, *self._submitted, *self._ended]
        count = max(indexes) + 1 if indexes else 0
        series: dict[str, Any] = {
            "window_s": self.window_s,
            "t_s": [i * self.window_s for i in range(count)],
            "submitted_per_s": [self._submitted.get(i, 0) / self.window_s for i in range(count)],
            # Ended in any way (completed, rejected, needing supplement).
            "ended_per_s": [self._ended.get(i, 0) / self.window_s for i in range(count)],
        }
        summaries = [
            summarize(self._windows[i]) if i in self._windows else None for i in range(count)
        ]
        for key in PERCENTILES:
            series[f"{key}_ms"] = [s[key] if s else None for s in summaries]
        return series


@dataclass
class OutcomeCounts:
    """How the run's dossiers ended; filled in by the replay as they end."""

    submitted: int = 0
    completed: int = 0
    completed_with_refusals: int = 0  # some procedures done, a later one refused
    rejected: int = 0
    needs_supplement: int = 0
    lost: int = 0  # accepted, then never heard of again
    duplicated_effects: int = 0  # an effect (a registration, a card, a payment) made twice
    unfinished: int = 0  # still running when the drain timeout ran out
    faults_expected: dict[str, int] = field(default_factory=dict)  # fault kind -> planted
    faults_observed: dict[str, int] = field(default_factory=dict)  # fault kind -> caught
    # Each procedure's own result over the ended dossiers:
    # procedure -> result ("done", "refused", "skipped", "not_requested", "pending") -> count.
    procedures: dict[str, dict[str, int]] = field(default_factory=dict)
    # Refused procedures by "procedure by agency: REASON" -> count.
    refusals: dict[str, int] = field(default_factory=dict)

    @property
    def ended(self) -> int:
        return self.completed + self.completed_with_refusals + self.rejected + self.needs_supplement

    def count_procedure(
        self, procedure: str, result: str, agency: str, reason: str, dossiers: int = 1
    ) -> None:
        by_result = self.procedures.setdefault(procedure, {})
        by_result[result] = by_result.get(result, 0) + dossiers
        if result == "refused":
            key = f"{procedure} by {agency}: {reason}"
            self.refusals[key] = self.refusals.get(key, 0) + dossiers

    def faults(self) -> dict[str, dict[str, int]]:
        kinds = sorted({*self.faults_expected, *self.faults_observed})
        return {
            kind: {
                "expected": self.faults_expected.get(kind, 0),
                "observed": self.faults_observed.get(kind, 0),
            }
            for kind in kinds
        }


@dataclass(frozen=True)
class ReportPaths:
    json: Path
    markdown: Path
    html: Path
    plots: tuple[Path, ...]


def _scenario_dict(scenario: Scenario) -> dict[str, Any]:
    # By hand: asdict() would try to deep-copy the read-only faults mapping.
    return {
        "name": scenario.name,
        "description": scenario.description,
        "seed": scenario.seed,
        "population": scenario.population,
        "births_share": scenario.births_share,
        "funeral_claim_share": scenario.funeral_claim_share,
        "faults": dict(scenario.faults),
        "arrival": [asdict(phase) for phase in scenario.arrival],
        "outages": [asdict(outage) for outage in scenario.outages],
        "added_latency": [asdict(latency) for latency in scenario.latencies],
        "drain_timeout_s": scenario.drain_timeout_s,
        "duration_s": scenario.duration_s,
        "expected_declarations": scenario.expected_declarations,
    }


def write_report(
    directory: Path | str,
    *,
    scenario: Scenario,
    counts: OutcomeCounts,
    recorder: LatencyRecorder,
    started_at: datetime,
    wall_seconds: float,
    extra: Mapping[str, Any] | None = None,
) -> ReportPaths:
    """Write report.json, report.md, report.html and the plots into `directory`
    (created if needed).

    `wall_seconds`: from the first submission until the last dossier ended (or the
    drain timeout); throughput_per_s is the dossiers that ended over it. `extra`
    adds top-level keys to report.json (the broker, the command line...).
    """
    # Imported here: matplotlib costs ~0.5 s, and only the report needs it.
    from scenarios.report_html import render_html  # noqa: PLC0415
    from scenarios.report_markdown import render_markdown  # noqa: PLC0415
    from scenarios.report_plots import draw_plots, plot_svgs  # noqa: PLC0415

    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "scenario": scenario.name,
        "started_at": started_at.isoformat(),
        "wall_seconds": wall_seconds,
        "submitted": counts.submitted,
        "completed": counts.completed,
        "completed_with_refusals": counts.completed_with_refusals,
        "rejected": counts.rejected,
        "needs_supplement": counts.needs_supplement,
        "lost": counts.lost,
        "duplicated_effects": counts.duplicated_effects,
        "unfinished": counts.unfinished,
        "throughput_per_s": counts.ended / wall_seconds if wall_seconds > 0 else 0.0,
        "faults": counts.faults(),
        "procedures": {name: dict(sorted(r.items())) for name, r in counts.procedures.items()},
        "refusals": dict(sorted(counts.refusals.items())),
        "latency_ms": recorder.latency_ms(),
        "over_time": recorder.over_time(),
        "scenario_detail": _scenario_dict(scenario),
        "plots": [],  # file names, filled in below
    }
    clashes = sorted(set(report) & set(extra or {}))
    if clashes:
        raise ValueError(f"extra keys would overwrite the report's own: {', '.join(clashes)}")
    report.update(extra or {})
    plots = draw_plots(
        out, scenario=scenario, over_time=report["over_time"], latency_ms=report["latency_ms"]
    )
    report["plots"] = [plot.name for plot in plots]
    json_path = out / "report.json"
    json_path.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n", "utf-8")
    markdown_path = out / "report.md"
    markdown_path.write_text(render_markdown(report), "utf-8")
    # The plots drawn again as SVG, to sit inside the page: crisp at any size.
    svgs = plot_svgs(
        scenario=scenario, over_time=report["over_time"], latency_ms=report["latency_ms"]
    )
    html_path = out / "report.html"
    html_path.write_text(render_html(report, svgs), "utf-8")
    return ReportPaths(json_path, markdown_path, html_path, tuple(plots))
