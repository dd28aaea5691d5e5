"""What a replay report says, as plain data: the verdict, the rows of each
table and the plots' captions, read from report.json's dict.

report.md (`report_markdown.py`) and report.html (`report_html.py`) render
the same facts, each in its own markup; what a figure means and how it is
written lives here once, so the two cannot drift apart.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CHAOS_FAULT_HEADER",
    "LATENCY_KEYS",
    "MEMORY_HEADER",
    "OUTCOME_KEYS",
    "PROCEDURE_RESULTS",
    "Check",
    "Row",
    "Verdict",
    "cell",
    "chaos_count_rows",
    "chaos_fault_rows",
    "fault_rows",
    "latency_rows",
    "memory_rows",
    "outcome_rows",
    "plot_alt",
    "plot_caption",
    "plot_name",
    "procedure_rows",
    "refusal_rows",
    "scenario_lines",
    "seconds",
    "shows_chaos",
    "unexpected_rows",
    "verdict",
    "waiting_latency_rows",
]

Row = tuple[object, ...]

LATENCY_KEYS = ("count", "p50", "p95", "p99", "max")
OUTCOME_KEYS = (
    "submitted",
    "completed",
    "completed_with_refusals",
    "rejected",
    "needs_supplement",
    "unfinished",
    "lost",
    "duplicated_effects",
)
# Decree 63/2024/ND-CP: each procedure of a group has its own result.
PROCEDURE_RESULTS = ("done", "refused", "skipped", "not_requested", "pending")
CHAOS_FAULT_HEADER = (
    "fault",
    "done at",
    "started again at",
    "serving at",
    "measured from (episode end)",
    "recovered after",
)
MEMORY_HEADER = ("process", "after warm-up", "end", "peak", "growth")


def cell(value: object) -> str:
    """A table cell: thousands separated, a few significant decimals, "—" for none."""
    if value is None:
        return "—"
    if isinstance(value, float):
        decimals = (
            0 if abs(value) >= 100 else 1 if abs(value) >= 10 else 2 if abs(value) >= 1 else 3
        )
        return f"{value:,.{decimals}f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f} s"


@dataclass(frozen=True)
class Check:
    """A figure that must be zero, with what it counts in words."""

    name: str
    count: int
    counts: str  # what one of them is, e.g. "dossiers accepted, then never heard of again"
    fine: str  # said when the count is zero

    @property
    def ok(self) -> bool:
        return self.count == 0


@dataclass(frozen=True)
class Verdict:
    """The figures that must be zero, said first in every report."""

    lost: int
    duplicated: int
    concurrent: int
    unexpected: int
    measured_concurrency: bool  # False: no step lines in the gateways' logs
    not_checked: tuple[str, ...]  # what the audit could not check (agencies not ours)

    @property
    def clean(self) -> bool:
        return all(check.ok for check in self.checks)

    @property
    def checks(self) -> tuple[Check, ...]:
        checks = [
            Check(
                "lost",
                self.lost,
                "dossiers accepted, then never heard of again",
                "no dossier lost",
            ),
            Check(
                "duplicated",
                self.duplicated,
                "effects (a registration, a card, a payment) made twice",
                "no effect made twice",
            ),
            Check(
                "unexpected",
                self.unexpected,
                "dossiers that ended otherwise than planned",
                "every dossier ended as planned",
            ),
        ]
        if self.measured_concurrency or self.concurrent:
            checks.append(
                Check(
                    "concurrent",
                    self.concurrent,
                    "steps run by two gateways at once",
                    "no step run by two gateways at once",
                )
            )
        return tuple(checks)


def started_words(report: Mapping[str, Any]) -> str:
    """When the run started, to the second, in UTC (report.json keeps the
    full ISO stamp)."""
    raw = str(report["started_at"])
    try:
        stamp = dt.datetime.fromisoformat(raw)
    except ValueError:
        return raw
    if stamp.tzinfo is not None:
        stamp = stamp.astimezone(dt.UTC)
    return stamp.strftime("%Y-%m-%d %H:%M:%S UTC")


def run_line(report: Mapping[str, Any]) -> str:
    """The line under the title: start, wall time, throughput, commit."""
    commit = report.get("commit")
    return (
        f"Started {started_words(report)}, {report['wall_seconds']:,.1f} s of wall time; "
        f"{report['throughput_per_s']:,.2f} dossiers ended per second."
        + (f" Commit {commit}." if commit else "")
    )


def verdict(report: Mapping[str, Any]) -> Verdict:
    executions = (report.get("chaos") or {}).get("executions")
    return Verdict(
        lost=report["lost"],
        duplicated=report["duplicated_effects"],
        concurrent=(executions or {}).get("concurrent_step_executions", 0),
        unexpected=sum((report.get("unexpected_outcomes") or {}).values()),
        measured_concurrency=executions is not None,
        not_checked=tuple(report.get("audit_not_checked") or ()),
    )


def scenario_lines(detail: Mapping[str, Any]) -> list[str]:
    """The scenario in sentences: description, sizes, arrival, outages, latency."""
    lines = [
        detail["description"] or "",
        f"seed {detail['seed']}, population {detail['population']:,}, "
        f"births {detail['births_share']:.0%} of declarations, funeral allowance claimed "
        f"in {detail['funeral_claim_share']:.0%} of deaths",
        f"arrival: {len(detail['arrival'])} phase(s) over {detail['duration_s']:,.0f} s, "
        f"{detail['expected_declarations']:,.0f} declarations expected",
    ]
    for outage in detail["outages"]:
        lines.append(
            f"outage: {outage['agency']} down from {outage['at_s']:g} s "
            f"for {outage['duration_s']:g} s"
        )
    for latency in detail["added_latency"]:
        lines.append(
            f"added latency: {latency['agency']} +{latency['latency_ms']:g} ms from "
            f"{latency['at_s']:g} s for {latency['duration_s']:g} s"
        )
    return [line for line in lines if line]


def outcome_rows(report: Mapping[str, Any]) -> list[Row]:
    return [(key, report[key]) for key in OUTCOME_KEYS]


def fault_rows(report: Mapping[str, Any]) -> list[Row]:
    """Planted faults: (kind, planted, caught)."""
    return [(kind, f["expected"], f["observed"]) for kind, f in report["faults"].items()]


def procedure_rows(report: Mapping[str, Any]) -> list[Row]:
    """(procedure, *counts in PROCEDURE_RESULTS' order)."""
    return [
        (name, *(results.get(column, 0) for column in PROCEDURE_RESULTS))
        for name, results in (report.get("procedures") or {}).items()
    ]


def refusal_rows(report: Mapping[str, Any]) -> list[Row]:
    return list((report.get("refusals") or {}).items())


def unexpected_rows(report: Mapping[str, Any]) -> list[Row]:
    """Dossiers that ended otherwise than planned: ("expected -> observed", count)."""
    return sorted((report.get("unexpected_outcomes") or {}).items())


def latency_rows(report: Mapping[str, Any]) -> list[Row]:
    """End to end, then each step: (name, *LATENCY_KEYS) in milliseconds."""
    latency = report["latency_ms"]
    rows: list[Row] = [("end to end", *(latency["end_to_end"][key] for key in LATENCY_KEYS))]
    rows += [(name, *(s[key] for key in LATENCY_KEYS)) for name, s in latency["steps"].items()]
    return rows


def shows_chaos(report: Mapping[str, Any]) -> bool:
    """Whether there is a chaos section: faults done, several gateways, or step executions."""
    chaos = report.get("chaos")
    return bool(chaos and (chaos["faults"] or chaos["gateways"] > 1 or chaos.get("executions")))


def chaos_count_rows(chaos: Mapping[str, Any]) -> list[Row]:
    rows: list[Row] = [
        ("left RECEIVED", chaos["left_received"]),
        ("left in progress", chaos["left_in_progress"]),
        ("left, no gateway answered", chaos["unfinished_states"].get("UNKNOWN", 0)),
        (
            "stored while the broker was away, never acknowledged to the client",
            chaos.get("stored_unacknowledged", 0),
        ),
    ]
    executions = chaos.get("executions")
    if executions is None:
        rows.append(("step executions", "not measured (no step lines in the gateways' logs)"))
    else:
        rows += [
            ("steps run", executions["steps"]),
            ("step executions", executions["executions"]),
            ("steps run more than once", executions["steps_run_more_than_once"]),
            ("concurrent step executions", executions["concurrent_step_executions"]),
        ]
    return rows


def waiting_latency_rows(chaos: Mapping[str, Any]) -> list[Row]:
    """End to end of the dossiers sent inside the agency/broker outages and outside
    them: ("inside" | "outside", *LATENCY_KEYS); none when not measured."""
    by_window = chaos.get("latency_ms_by_window")
    if not by_window:
        return []
    return [
        (said, *(by_window[key][k] for k in LATENCY_KEYS))
        for key, said in (("inside_outages", "inside"), ("outside_outages", "outside"))
    ]


def _episode(fault: Mapping[str, Any]) -> str:
    """The end the recovery counts from: the fault's own, or that of the
    faults it overlaps (marked)."""
    span = fault.get("episode_s")
    if not span:
        return "-"
    end = seconds(span[1])
    return end if span[1] == fault["up_s"] else f"{end} (overlapping faults)"


def chaos_fault_rows(chaos: Mapping[str, Any]) -> list[Row]:
    """Each fault done, in CHAOS_FAULT_HEADER's columns."""
    return [
        (
            f"{f['kind']} {f['target']}" + (f" ({f['error']})" if f["error"] else ""),
            seconds(f["at_s"]),
            seconds(f["restarted_s"]),
            seconds(f["up_s"]),
            _episode(f),
            "never" if f["recovery_s"] is None else seconds(f["recovery_s"]),
        )
        for f in chaos["faults"]
    ]


def memory_rows(memory_mb: Mapping[str, Mapping[str, Any]]) -> list[Row]:
    """Resident MB per process, in MEMORY_HEADER's columns."""
    return [
        (
            name,
            sizes["after_warm_up_mb"],
            sizes["end_mb"],
            sizes["max_mb"],
            sizes["growth_mb"],
        )
        for name, sizes in memory_mb.items()
    ]


_CAPTIONS = {
    "throughput": (
        "Throughput: dossiers submitted and ended per second over the run, against the "
        "planned arrival rate (dashed); outages and added latency shaded."
    ),
    "latency_over_time": (
        "End-to-end latency (p50, p95, p99) by the time each declaration was sent, so a "
        "slow spell lines up with the outage that caused it."
    ),
    "latency_per_step": ("Latency per saga step (p50, p95, p99), and end to end at the bottom."),
}


def plot_name(file_name: str) -> str:
    """ "throughput.png" → "throughput": a plot whatever format it is drawn in."""
    return file_name.rsplit(".", 1)[0]


def plot_caption(file_name: str) -> str:
    return _CAPTIONS.get(plot_name(file_name), plot_name(file_name).replace("_", " "))


def plot_alt(file_name: str, report: Mapping[str, Any]) -> str:
    """A plot's text alternative: its caption's subject and the figures it shows."""
    name = plot_name(file_name)
    latency = report["latency_ms"]
    end_to_end = latency["end_to_end"]
    if name == "throughput":
        return (
            f"Throughput over {report['wall_seconds']:,.0f} s: on average "
            f"{report['throughput_per_s']:,.2f} dossiers ended per second."
        )
    if name == "latency_over_time":
        return (
            f"End-to-end latency by submission time; over the whole run p50 "
            f"{cell(end_to_end['p50'])} ms, p99 {cell(end_to_end['p99'])} ms."
        )
    if name == "latency_per_step":
        timed = {step: s for step, s in latency["steps"].items() if s["p99"] is not None}
        if not timed:
            return "Latency per step: no step was timed."
        slowest = max(timed, key=lambda step: timed[step]["p99"])
        return (
            f"Latency per step, {len(timed)} steps; the slowest at p99 is {slowest} "
            f"({cell(timed[slowest]['p99'])} ms)."
        )
    return plot_caption(file_name)
