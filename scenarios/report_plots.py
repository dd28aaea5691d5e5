"""The report's plots: throughput, latency percentiles over time, latency per step.

As PNG files beside report.md, and as SVG text for report.html to hold inline.
Drawn with matplotlib's object-oriented API, never pyplot: no global figure
state, no GUI backend, safe in tests and threads.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure

from scenarios.scenario import Scenario

__all__ = ["PLOT_NAMES", "draw_plots", "plot_svgs"]

_SIZE = (9.0, 4.5)
_PERCENTILE_KEYS = ("p50", "p95", "p99")


def _save(figure: Figure, path: Path) -> Path:
    FigureCanvasAgg(figure)  # attaches itself as the figure's canvas
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    return path


def _svg(figure: Figure, name: str) -> str:
    """The figure as an <svg> element, to sit inline in an HTML page."""
    FigureCanvasSVG(figure)
    figure.tight_layout()
    buffer = io.StringIO()
    # Text as <text>, not glyph outlines: the three plots come to about half
    # the bytes (smoke: 65 KiB against 124 KiB), and no glyph <defs> share
    # ids across the page's several SVGs. A fixed salt: the same data, the
    # same clip-path and marker ids (hashed), so the same file.
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": name}):
        figure.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    # Inline in HTML the XML declaration and DOCTYPE have no place; and the
    # element ids are one page's, where matplotlib numbers each figure's
    # groups from 1 (figure_1, axes_1...): each plot's get its name in front,
    # and so do the references to them (clip paths, markers).
    text = text[text.index("<svg") :]
    text = re.sub(r'(\sid="|href="#|url\(#)', rf"\1{name}-", text)
    return text


def _shade_faults(axes: Axes, scenario: Scenario) -> None:
    """Outage and added-latency windows as bands, so effects line up with causes."""
    for outage in scenario.outages:
        axes.axvspan(
            outage.at_s, outage.end_s, color="tab:red", alpha=0.12, label=f"{outage.agency} down"
        )
    for latency in scenario.latencies:
        axes.axvspan(
            latency.at_s,
            latency.end_s,
            color="tab:orange",
            alpha=0.12,
            label=f"{latency.agency} +{latency.latency_ms:g} ms",
        )


def _no_data(axes: Axes) -> None:
    axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes)


def _numbers(values: Sequence[float | None]) -> list[float]:
    return [math.nan if value is None else float(value) for value in values]


def _clip_bursts(axes: Axes, offered: Sequence[float], ended: Sequence[float]) -> None:
    """Keep the offered load readable when a backlog drains in one burst.

    After an outage the queued dossiers all end within a window or two; left
    alone, that spike squeezes the rest of the plot into a flat line.
    """
    top = 2.0 * max(offered, default=0.0)
    burst = max(ended, default=0.0)
    if top > 0 and burst > top:
        axes.set_ylim(0, top)
        axes.annotate(
            f"burst up to {burst:,.0f}/s (off the scale)",
            xy=(0.01, 0.97),
            xycoords="axes fraction",
            va="top",
            fontsize="small",
        )


def _throughput(scenario: Scenario, over_time: Mapping[str, Any]) -> Figure:
    figure = Figure(figsize=_SIZE)
    axes = figure.add_subplot()
    t = over_time["t_s"]
    if t:
        # Plotted at each window's middle: the rate is that window's average.
        middle = [start + over_time["window_s"] / 2 for start in t]
        axes.plot(middle, over_time["submitted_per_s"], label="submitted", drawstyle="steps-mid")
        axes.plot(middle, over_time["ended_per_s"], label="ended", drawstyle="steps-mid")
        steps = 200
        planned_t = [scenario.duration_s * i / steps for i in range(steps + 1)]
        planned = [scenario.rate_at(x) for x in planned_t]
        axes.plot(planned_t, planned, "k--", linewidth=0.8, label="planned rate")
        _shade_faults(axes, scenario)
        _clip_bursts(axes, [*planned, *over_time["submitted_per_s"]], over_time["ended_per_s"])
        axes.legend(loc="upper right", fontsize="small")
    else:
        _no_data(axes)
    axes.set(
        title=f"{scenario.name}: throughput",
        xlabel="seconds from start",
        ylabel="dossiers per second",
    )
    axes.grid(alpha=0.3)
    return figure


def _latency_over_time(scenario: Scenario, over_time: Mapping[str, Any]) -> Figure:
    figure = Figure(figsize=_SIZE)
    axes = figure.add_subplot()
    t = over_time["t_s"]
    series = {key: _numbers(over_time[f"{key}_ms"]) for key in _PERCENTILE_KEYS}
    known = [v for values in series.values() for v in values if not math.isnan(v) and v > 0]
    if known:
        for key, values in series.items():
            axes.plot(t, values, marker=".", markersize=3, label=key)
        # A log scale once latencies span decades (an outage's seconds next to
        # milliseconds), else the normal spell is a flat line at the bottom.
        if max(known) / min(known) > 100:
            axes.set_yscale("log")
        _shade_faults(axes, scenario)
        axes.legend(loc="upper right", fontsize="small")
    else:
        _no_data(axes)
    axes.set(
        title=f"{scenario.name}: end-to-end latency by submission time",
        xlabel="seconds from start (when the declaration was sent)",
        ylabel="milliseconds",
    )
    axes.grid(alpha=0.3)
    return figure


def _latency_per_step(scenario: Scenario, latency_ms: Mapping[str, Any]) -> Figure:
    rows = {name: s for name, s in latency_ms["steps"].items() if s["count"]}
    if latency_ms["end_to_end"]["count"]:
        rows["end to end"] = latency_ms["end_to_end"]
    figure = Figure(figsize=(_SIZE[0], max(_SIZE[1], 0.5 * len(rows) + 1.5)))
    axes = figure.add_subplot()
    if rows:
        names = list(rows)
        height = 0.8 / len(_PERCENTILE_KEYS)
        for i, key in enumerate(_PERCENTILE_KEYS):
            positions = [row + (i - 1) * height for row in range(len(names))]
            axes.barh(positions, [rows[name][key] for name in names], height=height, label=key)
        axes.set_yticks(range(len(names)), names)
        axes.invert_yaxis()  # the first step on top, end to end at the bottom
        values = [rows[name][key] for name in names for key in _PERCENTILE_KEYS]
        if min(values) > 0 and max(values) / min(values) > 100:
            axes.set_xscale("log")
        axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    else:
        _no_data(axes)
    axes.set(title=f"{scenario.name}: latency per step", xlabel="milliseconds")
    axes.grid(alpha=0.3, axis="x")
    return figure


# In the order the reports show them; each is <name>.png beside report.md.
PLOT_NAMES = ("throughput", "latency_over_time", "latency_per_step")


def _figures(
    scenario: Scenario, over_time: Mapping[str, Any], latency_ms: Mapping[str, Any]
) -> dict[str, Callable[[], Figure]]:
    # Built one at a time when asked for: a figure's memory goes with it.
    return {
        "throughput": lambda: _throughput(scenario, over_time),
        "latency_over_time": lambda: _latency_over_time(scenario, over_time),
        "latency_per_step": lambda: _latency_per_step(scenario, latency_ms),
    }


def draw_plots(
    directory: Path,
    *,
    scenario: Scenario,
    over_time: Mapping[str, Any],
    latency_ms: Mapping[str, Any],
) -> list[Path]:
    """Write throughput.png, latency_over_time.png, latency_per_step.png; their paths."""
    figures = _figures(scenario, over_time, latency_ms)
    return [_save(figures[name](), directory / f"{name}.png") for name in PLOT_NAMES]


def plot_svgs(
    *,
    scenario: Scenario,
    over_time: Mapping[str, Any],
    latency_ms: Mapping[str, Any],
) -> dict[str, str]:
    """The same plots as <svg> elements, by name (PLOT_NAMES)."""
    figures = _figures(scenario, over_time, latency_ms)
    return {name: _svg(figures[name](), name) for name in PLOT_NAMES}
