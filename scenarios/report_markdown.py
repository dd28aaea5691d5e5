"""report.md: the human summary of a replay, rendered from report.json's contents.

It reads only the report's dict, so a report can be re-rendered from a saved
report.json without rerunning anything.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["render_markdown"]

_LATENCY_KEYS = ("count", "p50", "p95", "p99", "max")


def _cell(value: object) -> str:
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


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
    return [*lines, ""]


def _verdict(report: Mapping[str, Any]) -> str:
    """The two numbers that must be zero, said first."""
    lost, duplicated = report["lost"], report["duplicated_effects"]
    if lost == 0 and duplicated == 0:
        return "**No dossier lost, no effect duplicated.**"
    return f"**Warning: {lost:,} dossier(s) lost, {duplicated:,} duplicated effect(s).**"


def _scenario_lines(detail: Mapping[str, Any]) -> list[str]:
    lines = [
        f"- {detail['description']}" if detail.get("description") else "",
        f"- seed {detail['seed']}, population {detail['population']:,}, "
        f"births {detail['births_share']:.0%} of declarations, funeral allowance claimed "
        f"in {detail['funeral_claim_share']:.0%} of deaths",
        f"- arrival: {len(detail['arrival'])} phase(s) over {detail['duration_s']:,.0f} s, "
        f"{detail['expected_declarations']:,.0f} declarations expected",
    ]
    for outage in detail["outages"]:
        lines.append(
            f"- outage: {outage['agency']} down from {outage['at_s']:g} s "
            f"for {outage['duration_s']:g} s"
        )
    for latency in detail["added_latency"]:
        lines.append(
            f"- added latency: {latency['agency']} +{latency['latency_ms']:g} ms from "
            f"{latency['at_s']:g} s for {latency['duration_s']:g} s"
        )
    return [line for line in lines if line] + [""]


def render_markdown(report: Mapping[str, Any]) -> str:
    detail = report["scenario_detail"]
    lines = [
        f"# Replay report: {report['scenario']}",
        "",
        f"Started {report['started_at']}, {report['wall_seconds']:,.1f} s of wall time; "
        f"{report['throughput_per_s']:,.2f} dossiers ended per second.",
        "",
        _verdict(report),
        "",
        "## Scenario",
        "",
        *_scenario_lines(detail),
        "## Outcomes",
        "",
    ]
    outcome_keys = (
        "submitted",
        "completed",
        "completed_with_refusals",
        "rejected",
        "needs_supplement",
        "unfinished",
        "lost",
        "duplicated_effects",
    )
    lines += _table(("outcome", "dossiers"), [(key, report[key]) for key in outcome_keys])
    if report["faults"]:
        lines += ["## Planted faults", ""]
        rows = [(kind, f["expected"], f["observed"]) for kind, f in report["faults"].items()]
        lines += _table(("fault", "planted", "caught"), rows)
    if report.get("procedures"):
        # Decree 63/2024/ND-CP: each procedure of a group has its own result.
        lines += ["## Procedures (each its own result)", ""]
        columns = ("done", "refused", "skipped", "not_requested", "pending")
        rows = [
            (name, *(results.get(column, 0) for column in columns))
            for name, results in report["procedures"].items()
        ]
        lines += _table(("procedure", *columns), rows)
    if report.get("refusals"):
        lines += _table(("refused", "dossiers"), list(report["refusals"].items()))
    latency = report["latency_ms"]
    lines += ["## Latency (ms)", ""]
    rows = [("end to end", *(latency["end_to_end"][key] for key in _LATENCY_KEYS))]
    rows += [(name, *(s[key] for key in _LATENCY_KEYS)) for name, s in latency["steps"].items()]
    lines += _table(("", *_LATENCY_KEYS), rows)
    if report.get("plots"):
        lines += ["## Plots", ""]
        lines += [f"![{plot}]({plot})" for plot in report["plots"]] + [""]
    return "\n".join(lines)
