"""`lienthong bench`: what this machine can carry, and how much of it the
interconnection gets.

(a) A plain gRPC unary echo between two processes (scenarios/baseline.py):
the requests per second this Python and this loopback carry at all.
(b) The highest constant dossier rate the whole stack sustains with p99
end-to-end latency under 2 s and nothing lost: each trial rate runs on a fresh
stack (a backlog left by a failed trial must not slow the next), growing
until a trial fails, then bisected.

(b) runs twice by default (`--trust both`): with the trust layer on, as every
stack runs (mutual TLS, the access policy, the message log), and off (plain
text, no policy, no message log), so what the trust layer costs is measured
on the same machine in the same run.

Scale-out (`--store`, `--gateways N`, `--replicas M`): every trial's stack
has that shape, and each trial also reports dossiers per partition per
second, steps per gateway and calls per registry process per second
(cli/scale_figures.py), the figures a larger machine is extrapolated from.

The last line is `ratio=<dossiers/s ÷ (baseline RPC/s ÷ agency RPCs per dossier)>`
with the trust layer on (off when only off was measured): 1.0 would mean a
dossier costs no more than its agency calls on a bare echo server.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aiokafka.errors import KafkaError
from rich.console import Console

from cli.errors import CliError
from cli.fresh_stack import fresh_stack
from cli.replay import run_scenario
from cli.scale import Scale
from cli.scale_figures import ScaleFigures, measure
from common import message_log
from common.database_url import redacted
from scenarios.baseline import BaselineError, BaselineResult, measure_echo_baseline
from scenarios.replay import ReplayResult
from scenarios.scenario import Scenario

P99_LIMIT_MS = 2000.0
FIRST_RATE = 20.0
GROWTH = 1.5
BISECTIONS = 3
# A trial keeps up when this share of its dossiers ended within the run.
KEEPS_UP = 0.95
DRAIN_SECONDS = 20.0


@dataclass(frozen=True)
class TrustMode:
    """How the stacks of one pass run."""

    name: str
    words: str
    insecure: bool
    env: Mapping[str, str] = field(default_factory=dict)


TRUST_MODES = {
    "on": TrustMode("on", "mutual TLS, the access policy and the message log", insecure=False),
    "off": TrustMode(
        "off",
        "plain text, no access policy, no message log",
        insecure=True,
        env={message_log.ENV_DIR: ""},
    ),
}


@dataclass(frozen=True)
class Trial:
    rate: float
    dossiers: int
    ended_per_s: float
    p99_ms: float | None
    lost: int
    duplicated_effects: int
    unfinished: int
    submit_failures: int
    agency_rpcs_per_dossier: float
    passed: bool
    # Per partition, gateway and registry process (None: not measured).
    scale: dict[str, Any] | None = None

    def describe(self) -> str:
        p99 = "-" if self.p99_ms is None else f"{self.p99_ms:,.0f} ms"
        verdict = "ok" if self.passed else "FAIL"
        return (
            f"  {self.rate:7.1f} dossiers/s: {self.dossiers:,} dossiers, "
            f"{self.ended_per_s:,.1f} ended/s, p99 {p99}, lost {self.lost}, "
            f"duplicated {self.duplicated_effects}, unfinished {self.unfinished} → {verdict}"
        )


def _trial(rate: float, result: ReplayResult, figures: ScaleFigures | None = None) -> Trial:
    counts = result.counts
    p99 = result.recorder.latency_ms()["end_to_end"].get("p99")
    failures = sum(result.submit_failures.values())
    completed = max(counts.completed, 1)
    passed = (
        p99 is not None
        and p99 < P99_LIMIT_MS
        and counts.lost == 0
        and counts.duplicated_effects == 0
        and counts.unfinished == 0
        and failures == 0
        and counts.ended >= KEEPS_UP * counts.submitted
    )
    return Trial(
        rate=rate,
        dossiers=counts.submitted,
        ended_per_s=counts.ended / result.wall_seconds,
        p99_ms=p99,
        lost=counts.lost,
        duplicated_effects=counts.duplicated_effects,
        unfinished=counts.unfinished,
        submit_failures=failures,
        agency_rpcs_per_dossier=result.agency_rpcs / completed,
        passed=passed,
        scale=None if figures is None else figures.as_dict(),
    )


def _run_trial(
    console: Console,
    broker: str,
    rate: float,
    seconds: float,
    mode: TrustMode,
    *,
    scale: Scale | None = None,
) -> Trial:
    declarations = rate * seconds
    scenario = Scenario.constant(
        rate,
        seconds,
        name=f"bench-{rate:g}",
        seed=int(rate * 1000),
        # Enough mothers and deceased for every declaration, with room to spare.
        population=max(5_000, int(declarations * 8)),
        drain_timeout_s=DRAIN_SECONDS,
    )
    with fresh_stack(
        console,
        broker,
        verbose_children=False,
        quiet=True,
        insecure=mode.insecure,
        env=mode.env,
        scale=scale,
    ) as stack:
        result = run_scenario(console, scenario, stack, show_progress=False)
        try:
            figures: ScaleFigures | None = measure(stack, result.wall_seconds)
        except (OSError, KafkaError) as error:
            # A figure the trial could not read is missing, not a failed trial.
            console.print(f"    (per-partition/replica figures not read: {error})")
            figures = None
    trial = _trial(rate, result, figures)
    console.print(trial.describe(), highlight=False)
    for line in figures.describe() if figures is not None else []:
        console.print(line, highlight=False)
    return trial


def find_sustained_rate(
    console: Console,
    broker: str,
    seconds: float,
    mode: TrustMode = TRUST_MODES["on"],
    *,
    scale: Scale | None = None,
    first_rate: float = FIRST_RATE,
) -> list[Trial]:
    trials = []
    rate = first_rate
    good: float | None = None
    bad: float | None = None
    while bad is None:
        trial = _run_trial(console, broker, rate, seconds, mode, scale=scale)
        trials.append(trial)
        if trial.passed:
            good = rate
            rate *= GROWTH
        else:
            bad = rate
    if good is None:
        return trials  # even the first rate failed: report it as is
    for _ in range(BISECTIONS):
        rate = round((good + bad) / 2, 1)
        trial = _run_trial(console, broker, rate, seconds, mode, scale=scale)
        trials.append(trial)
        if trial.passed:
            good = rate
        else:
            bad = rate
    return trials


def run_bench(
    console: Console,
    *,
    broker: str,
    trial_seconds: float,
    report_dir: Path | None,
    trust: str = "both",
    scale: Scale | None = None,
    first_rate: float = FIRST_RATE,
) -> int:
    scale = scale or Scale()
    console.print("Measuring the gRPC unary echo baseline…", highlight=False)
    try:
        baseline: BaselineResult = measure_echo_baseline()
    except BaselineError as error:
        raise CliError(f"the echo baseline failed: {error}") from None
    console.print(baseline.describe(), highlight=False)
    modes = [TRUST_MODES[m] for m in (("on", "off") if trust == "both" else (trust,))]
    results: dict[str, dict[str, object]] = {}
    best_of: dict[str, Trial] = {}
    for mode in modes:
        console.print(
            f"Trust layer {mode.name} ({mode.words}): the highest rate with p99 under "
            f"{P99_LIMIT_MS:,.0f} ms and nothing lost ({trial_seconds:g} s per trial, a fresh "
            f"stack each, broker {broker}{scale.describe()}):",
            highlight=False,
        )
        trials = find_sustained_rate(
            console, broker, trial_seconds, mode, scale=scale, first_rate=first_rate
        )
        passed = [t for t in trials if t.passed]
        if not passed:
            raise CliError(
                f"trust layer {mode.name}: no rate passed, not even {first_rate:g} dossiers/s"
            )
        best = max(passed, key=lambda t: t.rate)
        best_of[mode.name] = best
        ratio = best.rate / (baseline.requests_per_s / best.agency_rpcs_per_dossier)
        console.print(
            f"sustained, trust layer {mode.name}: {best.rate:g} dossiers/s "
            f"(p99 {best.p99_ms:,.0f} ms, {best.agency_rpcs_per_dossier:.2f} agency RPCs "
            f"per dossier, ratio {ratio:.3f})",
            highlight=False,
        )
        results[mode.name] = {
            "trials": [asdict(t) for t in trials],
            "sustained_dossiers_per_s": best.rate,
            "agency_rpcs_per_dossier": best.agency_rpcs_per_dossier,
            "ratio": ratio,
        }
    if {"on", "off"} <= best_of.keys():
        on, off = best_of["on"].rate, best_of["off"].rate
        console.print(
            f"trust layer cost: {on:g} dossiers/s on, {off:g} off "
            f"({(on - off) / off * 100:+.1f} % with it on; the trials' rate steps are "
            "coarse: compare the trials at the same rate too)",
            highlight=False,
        )
    headline = results["on" if "on" in results else "off"]
    if report_dir is not None:
        report_dir.mkdir(parents=True, exist_ok=True)
        (report_dir / "bench.json").write_text(
            json.dumps(
                {
                    "broker": broker,
                    "store": redacted(scale.store),
                    "gateways": scale.gateways,
                    "replicas": scale.replicas,
                    "baseline": asdict(baseline),
                    "trust": results,
                    # The headline figures (the trust layer on, when measured).
                    "sustained_dossiers_per_s": headline["sustained_dossiers_per_s"],
                    "agency_rpcs_per_dossier": headline["agency_rpcs_per_dossier"],
                    "ratio": headline["ratio"],
                },
                indent=2,
            )
            + "\n"
        )
    # Last, alone on its line: scripts read it.
    console.print(f"ratio={headline['ratio']:.3f}", highlight=False)
    return 0
