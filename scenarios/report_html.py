"""report.html: the replay report as one self-contained page.

The same facts as report.md (from `report_facts.py`, read from report.json's
dict), with the plots inline as SVG and the style inline: one file that opens
offline, to attach to a mail or open on a projector. No script.

Everything that comes from a file (scenario names and descriptions, error
strings, step and process names) is escaped; the plots are matplotlib's own
SVG, whose text matplotlib escapes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

from scenarios.report_facts import (
    CHAOS_FAULT_HEADER,
    LATENCY_KEYS,
    MEMORY_HEADER,
    PROCEDURE_RESULTS,
    Row,
    Verdict,
    cell,
    chaos_count_rows,
    chaos_fault_rows,
    fault_rows,
    latency_rows,
    memory_rows,
    outcome_rows,
    plot_alt,
    plot_caption,
    plot_name,
    procedure_rows,
    refusal_rows,
    run_line,
    scenario_lines,
    shows_chaos,
    started_words,
    unexpected_rows,
    verdict,
    waiting_latency_rows,
)

__all__ = ["render_html"]

# Colours: text on its background at a contrast of at least 7:1 (WCAG AAA),
# and the verdict says its state in words too, never by colour alone.
_STYLE = """
:root { color-scheme: light; }
body { font: 16px/1.45 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif;
  color: #1b1f24; background: #ffffff; margin: 0; }
main, header { max-width: 72rem; margin: 0 auto; padding: 0 1.5rem; }
header { padding-top: 1.2rem; }
h1 { font-size: 1.9rem; margin: 0 0 .3rem; }
h2 { font-size: 1.35rem; margin: 2rem 0 .6rem; border-bottom: 1px solid #d0d7de;
  padding-bottom: .2rem; }
h3 { font-size: 1.1rem; margin: 1.2rem 0 .4rem; }
.meta { color: #3d444d; margin: 0; }
.verdict { border: 2px solid; border-radius: 6px; padding: .6rem 1.2rem; margin-top: 1rem; }
.verdict h2 { border: 0; margin: .2rem 0 .4rem; }
.verdict.ok { background: #e9f7ee; border-color: #116329; color: #0b3d1a; }
.verdict.bad { background: #fdecec; border-color: #a40e26; color: #5c0011; }
.checks { list-style: none; padding: 0; margin: 0 0 .4rem;
  display: flex; flex-wrap: wrap; gap: .4rem 2rem; }
.checks li { font-size: 1.15rem; }
.checks .state { font-weight: 700; }
.checks li.bad .figure { text-decoration: underline; }
table { border-collapse: collapse; margin: .4rem 0 1rem; }
caption { text-align: left; font-weight: 600; padding: .2rem 0; }
th, td { border: 1px solid #d0d7de; padding: .25rem .6rem; vertical-align: top; }
thead th { background: #f0f3f6; text-align: left; }
tbody th { text-align: left; font-weight: 500; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1rem 0 2rem; }
figure svg { max-width: 100%; height: auto; display: block; }
figcaption { color: #3d444d; }
.missing { font-style: italic; }
"""


def _table(
    header: Sequence[str], rows: Sequence[Row], *, caption: str = "", row_headers: bool = True
) -> str:
    """A table: column headers, and each row's first cell its header (its name)."""
    parts = ["<table>"]
    if caption:
        parts.append(f"<caption>{escape(caption)}</caption>")
    parts.append(
        "<thead><tr>"
        + "".join(f'<th scope="col">{escape(name)}</th>' for name in header)
        + "</tr></thead><tbody>"
    )
    for row in rows:
        cells = []
        for index, value in enumerate(row):
            text = escape(cell(value))
            if index == 0 and row_headers:
                cells.append(f'<th scope="row">{text}</th>')
            elif isinstance(value, int | float) or value is None:
                cells.append(f'<td class="number">{text}</td>')
            else:
                cells.append(f"<td>{text}</td>")
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</tbody></table>")
    return "".join(parts)


def _section(ident: str, title: str, *body: str) -> str:
    return (
        f'<section id="{ident}" aria-labelledby="{ident}-title">'
        f'<h2 id="{ident}-title">{escape(title)}</h2>' + "".join(body) + "</section>"
    )


def _verdict(said: Verdict) -> str:
    headline = (
        "No dossier lost, no effect duplicated, every dossier ended as planned"
        if said.clean
        else "Warning: something went wrong"
    )
    items = []
    for check in said.checks:
        state = "OK" if check.ok else "PROBLEM"
        words = check.fine if check.ok else check.counts
        # "lost 0", then its state and what it means, in words.
        items.append(
            f'<li class="{"ok" if check.ok else "bad"}"><span class="figure">'
            f"{escape(check.name)} {check.count:,}</span> "
            f'<span class="state">{state}</span>: {escape(words)}</li>'
        )
    unchecked = "".join(
        f"<p><strong>Not checked:</strong> {escape(line)}.</p>" for line in said.not_checked
    )
    return (
        f'<section id="verdict" class="verdict {"ok" if said.clean else "bad"}"'
        ' aria-labelledby="verdict-title">'
        f'<h2 id="verdict-title">{escape(headline)}</h2>'
        f'<ul class="checks">{"".join(items)}</ul>{unchecked}</section>'
    )


def _figure(file_name: str, report: Mapping[str, Any], svgs: Mapping[str, str]) -> str:
    name = plot_name(file_name)
    caption = escape(plot_caption(file_name))
    svg = svgs.get(name)
    if svg is None:
        return (
            f'<figure><p class="missing">This plot is not in this file; see '
            f"{escape(file_name)} beside it.</p><figcaption>{caption}</figcaption></figure>"
        )
    # The text alternative on the <svg> itself, read out as one image.
    label = escape(plot_alt(file_name, report), quote=True)
    labelled = svg.replace("<svg", f'<svg role="img" aria-label="{label}"', 1)
    return f'<figure id="plot-{escape(name)}">{labelled}<figcaption>{caption}</figcaption></figure>'


def _chaos(chaos: Mapping[str, Any]) -> str:
    parts = [
        f"<p>{chaos['gateways']:,} gateway process(es) sharing one saga store.</p>",
        _table(("what", "count"), chaos_count_rows(chaos), caption="Dossiers left and steps run"),
    ]
    if chaos["faults"]:
        parts.append(
            "<h3>Faults and time to recover</h3>"
            f"<p>Time to recover: {escape(chaos['recovery_definition'])}.</p>"
            + _table(CHAOS_FAULT_HEADER, chaos_fault_rows(chaos))
        )
    return _section("chaos", "Chaos", *parts)


def _latency(report: Mapping[str, Any]) -> str:
    parts = [_table(("", *LATENCY_KEYS), latency_rows(report), caption="End to end and per step")]
    chaos = report.get("chaos") or {}
    waiting = waiting_latency_rows(chaos) if shows_chaos(report) else []
    if waiting:
        parts.append(
            "<h3>Sent inside and outside the outages</h3><p>End to end of the dossiers sent "
            "while an agency or the broker was down (they wait for it by design), and of "
            "the others:</p>" + _table(("sent", *LATENCY_KEYS), waiting)
        )
    return _section("latency", "Latency (ms)", *parts)


def render_html(report: Mapping[str, Any], svgs: Mapping[str, str]) -> str:
    """The page for a report dict; `svgs`: the plots' <svg> elements by plot name
    (a plot without one is named, not drawn)."""
    scenario = str(report["scenario"])
    started = started_words(report)
    commit = report.get("commit")
    title = f"Replay report: {scenario}, {started}" + (f", commit {commit}" if commit else "")
    meta = run_line(report)
    lines = scenario_lines(report["scenario_detail"])
    body = [
        _verdict(verdict(report)),
        _section(
            "scenario",
            "Scenario",
            "<ul>" + "".join(f"<li>{escape(line)}</li>" for line in lines) + "</ul>",
        ),
        _section("outcomes", "Outcomes", _table(("outcome", "dossiers"), outcome_rows(report))),
    ]
    if report["faults"]:
        body.append(
            _section(
                "faults",
                "Planted faults",
                _table(("fault", "planted", "caught"), fault_rows(report)),
            )
        )
    if report.get("procedures") or report.get("refusals"):
        parts = []
        if report.get("procedures"):
            parts.append(_table(("procedure", *PROCEDURE_RESULTS), procedure_rows(report)))
        if report.get("refusals"):
            parts.append(_table(("refused", "dossiers"), refusal_rows(report)))
        body.append(_section("procedures", "Procedures (each its own result)", *parts))
    if report.get("unexpected_outcomes"):
        body.append(
            _section(
                "unexpected",
                "Ended otherwise than planned",
                _table(("planned -> ended", "dossiers"), unexpected_rows(report)),
            )
        )
    if shows_chaos(report):
        body.append(_chaos(report["chaos"]))
    body.append(_latency(report))
    if report.get("memory_mb"):
        body.append(
            _section(
                "memory",
                "Memory (resident, MB)",
                _table(MEMORY_HEADER, memory_rows(report["memory_mb"])),
            )
        )
    if report.get("plots"):
        body.append(
            _section("plots", "Plots", *(_figure(p, report, svgs) for p in report["plots"]))
        )
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<header><h1>Replay report: {escape(scenario)}</h1>"
        f'<p class="meta">{escape(meta)}</p></header>'
        f"<main>{''.join(body)}</main></body></html>\n"
    )
