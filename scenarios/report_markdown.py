"""report.md: the human summary of a replay, rendered from report.json's contents.

It reads only the report's dict, so a report can be re-rendered from a saved
report.json without rerunning anything. What it says comes from
`report_facts.py`, shared with report.html.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from scenarios.report_facts import (
    CHAOS_FAULT_HEADER,
    LATENCY_KEYS,
    MEMORY_HEADER,
    PROCEDURE_RESULTS,
    Row,
    cell,
    chaos_count_rows,
    chaos_fault_rows,
    fault_rows,
    latency_rows,
    memory_rows,
    outcome_rows,
    plot_caption,
    procedure_rows,
    refusal_rows,
    run_line,
    scenario_lines,
    shows_chaos,
    unexpected_rows,
    verdict,
    waiting_latency_rows,
)

__all__ = ["render_markdown"]


def _table(header: Sequence[str], rows: Sequence[Row]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    return [*lines, ""]


def _verdict(report: Mapping[str, Any]) -> str:
    """The numbers that must be zero, said first."""
    said = verdict(report)
    unchecked = "".join(f"\n\n**Not checked:** {line}." for line in said.not_checked)
    unexpected = (
        f"\n\n**{said.unexpected:,} dossier(s) ended otherwise than planned** (listed below)."
        if said.unexpected
        else ""
    )
    if said.lost == 0 and said.duplicated == 0 and said.concurrent == 0:
        return "**No dossier lost, no effect duplicated.**" + unexpected + unchecked
    return (
        (
            f"**Warning: {said.lost:,} dossier(s) lost, {said.duplicated:,} duplicated effect(s), "
            f"{said.concurrent:,} concurrent step execution(s).**"
        )
        + unexpected
        + unchecked
    )


def _chaos_lines(chaos: Mapping[str, Any]) -> list[str]:
    """The faults done, each with its time to recover; executions; waiting latency."""
    lines = ["## Chaos", "", f"{chaos['gateways']} gateway process(es) sharing one saga store.", ""]
    lines += _table(("what", "count"), chaos_count_rows(chaos))
    waiting = waiting_latency_rows(chaos)
    if waiting:
        lines += [
            "End to end (ms) of the dossiers sent while an agency or the broker was down "
            "(they wait for it by design), and of the others:",
            "",
        ]
        lines += _table(("sent", *LATENCY_KEYS), waiting)
    if chaos["faults"]:
        lines += [f"Time to recover: {chaos['recovery_definition']}.", ""]
        lines += _table(CHAOS_FAULT_HEADER, chaos_fault_rows(chaos))
    return lines


def render_markdown(report: Mapping[str, Any]) -> str:
    lines = [
        f"# Replay report: {report['scenario']}",
        "",
        run_line(report),
        "",
        _verdict(report),
        "",
        "## Scenario",
        "",
        *(f"- {line}" for line in scenario_lines(report["scenario_detail"])),
        "",
        "## Outcomes",
        "",
    ]
    lines += _table(("outcome", "dossiers"), outcome_rows(report))
    if report["faults"]:
        lines += ["## Planted faults", ""]
        lines += _table(("fault", "planted", "caught"), fault_rows(report))
    if report.get("procedures"):
        lines += ["## Procedures (each its own result)", ""]
        lines += _table(("procedure", *PROCEDURE_RESULTS), procedure_rows(report))
    if report.get("refusals"):
        lines += _table(("refused", "dossiers"), refusal_rows(report))
    if report.get("unexpected_outcomes"):
        lines += ["## Ended otherwise than planned", ""]
        lines += _table(("planned -> ended", "dossiers"), unexpected_rows(report))
    if shows_chaos(report):
        lines += _chaos_lines(report["chaos"])
    lines += ["## Latency (ms)", ""]
    lines += _table(("", *LATENCY_KEYS), latency_rows(report))
    if report.get("memory_mb"):
        lines += ["## Memory (resident, MB)", ""]
        lines += _table(MEMORY_HEADER, memory_rows(report["memory_mb"]))
    if report.get("plots"):
        lines += ["## Plots", ""]
        lines += [f"![{plot_caption(plot)}]({plot})" for plot in report["plots"]] + [""]
    return "\n".join(lines)
