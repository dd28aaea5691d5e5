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
    executions = (report.get("chaos") or {}).get("executions") or {}
    concurrent = executions.get("concurrent_step_executions", 0)
    not_checked = report.get("audit_not_checked") or []
    unchecked = "".join(f"\n\n**Not checked:** {line}." for line in not_checked)
    if lost == 0 and duplicated == 0 and concurrent == 0:
        return "**No dossier lost, no effect duplicated.**" + unchecked
    return (
        f"**Warning: {lost:,} dossier(s) lost, {duplicated:,} duplicated effect(s), "
        f"{concurrent:,} concurrent step execution(s).**"
    ) + unchecked


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


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:,.1f} s"


def _chaos_lines(chaos: Mapping[str, Any]) -> list[str]:
    """The faults done, each with its time to recover; executions; waiting latency."""
    lines = ["## Chaos", "", f"{chaos['gateways']} gateway process(es) sharing one saga store.", ""]
    executions = chaos.get("executions")
    rows: list[tuple[str, object]] = [
        ("left RECEIVED", chaos["left_received"]),
        ("left in progress", chaos["left_in_progress"]),
        ("left, no gateway answered", chaos["unfinished_states"].get("UNKNOWN", 0)),
        (
            "stored while the broker was away, never acknowledged to the client",
            chaos.get("stored_unacknowledged", 0),
        ),
    ]
    if executions is None:
        rows.append(("step executions", "not measured (no step lines in the gateways' logs)"))
    else:
        rows += [
            ("steps run", executions["steps"]),
            ("step executions", executions["executions"]),
            ("steps run more than once", executions["steps_run_more_than_once"]),
            ("concurrent step executions", executions["concurrent_step_executions"]),
        ]
    lines += _table(("what", "count"), rows)
    by_window = chaos["latency_ms_by_window"]
    if by_window:
        lines += [
            "End to end (ms) of the dossiers sent while an agency or the broker was down "
            "(they wait for it by design), and of the others:",
            "",
        ]
        lines += _table(
            ("sent", *_LATENCY_KEYS),
            [
                (said, *(by_window[key][k] for k in _LATENCY_KEYS))
                for key, said in (("inside_outages", "inside"), ("outside_outages", "outside"))
            ],
        )
    if chaos["faults"]:
        lines += [f"Time to recover: {chaos['recovery_definition']}.", ""]
        faults = [
            (
                f"{f['kind']} {f['target']}" + (f" ({f['error']})" if f["error"] else ""),
                _seconds(f["at_s"]),
                _seconds(f["restarted_s"]),
                _seconds(f["up_s"]),
                _episode(f),
                "never" if f["recovery_s"] is None else _seconds(f["recovery_s"]),
            )
            for f in chaos["faults"]
        ]
        lines += _table(
            (
                "fault",
                "done at",
                "started again at",
                "serving at",
                "measured from (episode end)",
                "recovered after",
            ),
            faults,
        )
    return lines


def _episode(fault: Mapping[str, Any]) -> str:
    """The end the recovery counts from: the fault's own, or that of the
    faults it overlaps (marked)."""
    span = fault.get("episode_s")
    if not span:
        return "-"
    end = _seconds(span[1])
    return end if span[1] == fault["up_s"] else f"{end} (overlapping faults)"


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
    chaos = report.get("chaos")
    if chaos and (chaos["faults"] or chaos["gateways"] > 1 or chaos.get("executions")):
        lines += _chaos_lines(chaos)
    latency = report["latency_ms"]
    lines += ["## Latency (ms)", ""]
    rows = [("end to end", *(latency["end_to_end"][key] for key in _LATENCY_KEYS))]
    rows += [(name, *(s[key] for key in _LATENCY_KEYS)) for name, s in latency["steps"].items()]
    lines += _table(("", *_LATENCY_KEYS), rows)
    if report.get("plots"):
        lines += ["## Plots", ""]
        lines += [f"![{plot}]({plot})" for plot in report["plots"]] + [""]
    return "\n".join(lines)
