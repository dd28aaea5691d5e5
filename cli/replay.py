"""`lienthong replay SCENARIO`: a fresh stack, the scenario's citizens seeded,
its declarations replayed on schedule, then the report.

The stack is always fresh (its own temporary directory, its own broker): the
audit counts effects in the registries' files, which must hold this run's
records and nothing else. The directory is removed after a clean run and kept,
with every log, after one that lost or duplicated something.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from cli.checkout import checkout_commit
from cli.errors import EXIT_BAD_INPUT, CliError
from cli.fresh_stack import fresh_stack
from cli.memory import MemorySampler, own_pid
from cli.scale import Scale
from cli.stack import Stack
from cli.store import GATEWAY_KIND, POSTGRES, SQLITE
from cli.web.launch import WebConsole, print_address, start_console
from cli.web.replay_stats import final_of, replay_stats
from common import channels, event_loop
from common.clock import SystemClock, vietnam_today
from common.database_url import redacted
from gateway.events import Topics
from scenarios import replay as engine
from scenarios.executions import count_executions, read_executions
from scenarios.report import ReportPaths, write_report
from scenarios.report_facts import MEMORY_HEADER, memory_rows
from scenarios.scenario import Scenario, ScenarioError, load_scenario


class StackFaults:
    """A scenario's outages, kills, broker restarts and added latency, done to
    the stack's processes; `observe(name, status, latency_ms)` is told each
    one (the console shows the agency down, slow, up again)."""

    def __init__(
        self, stack: Stack, observe: Callable[[str, str, float], None] | None = None
    ) -> None:
        self.stack = stack
        self.observe = observe or (lambda name, status, latency_ms: None)

    def stop(self, agency: str) -> None:
        self.observe(agency, "down", 0)
        self.stack.stop_component(agency)

    def start(self, name: str) -> None:
        self.stack.start_component(name)
        self.observe(name, "up", 0)

    def kill(self, name: str) -> None:
        self.observe(name, "down", 0)
        self.stack.kill(name)

    def kill_broker(self) -> None:
        self.stack.kill_broker()

    def start_broker(self) -> None:
        self.stack.start_broker_again()

    def kill_database(self) -> None:
        self.stack.kill_database()

    def start_database(self) -> None:
        self.stack.start_database_again()

    def set_latency(self, agency: str, milliseconds: float) -> None:
        self.stack.inject_latency(agency, milliseconds)
        self.observe(agency, "slow" if milliseconds else "up", milliseconds)


# The gateways log one line per step they run (gateway/executor.py) at INFO:
# the replay counts repeated and concurrent step executions from them.
GATEWAY_ENV = {"LIENTHONG_VERBOSE": "1"}


def load(
    path: Path, *, rate: float | None, duration: float | None, gateways: int | None = None
) -> Scenario:
    try:
        scenario = load_scenario(path)
        if rate is not None:
            scenario = scenario.with_rate(rate)
        if duration is not None:
            scenario = scenario.with_duration(duration)
        if gateways is not None:
            scenario = scenario.with_gateways(gateways)
    except ScenarioError as error:
        raise CliError(str(error), code=EXIT_BAD_INPUT) from None
    except FileNotFoundError:
        raise CliError(f"no scenario file {path}", code=EXIT_BAD_INPUT) from None
    except ValueError as error:
        raise CliError(f"{path}: {error}", code=EXIT_BAD_INPUT) from None
    return scenario


def leave_out(scenario: Scenario, kinds: tuple[str, ...]) -> Scenario:
    """The scenario without its faults of these kinds (`replay --without`):
    e.g. the chaos preset on the embedded broker, which a restart would empty.
    Scenario has a field of each kind, plural (broker_restart → broker_restarts)."""
    emptied: dict[str, Any] = {f"{kind}s": () for kind in kinds}
    return dataclasses.replace(scenario, **emptied)


def check_broker(scenario: Scenario, broker: str, path: Path) -> None:
    """A broker restart needs a broker whose data survives it, and one we run."""
    if scenario.broker_restarts and broker != "apache":
        raise CliError(
            f"{path}: broker_restart: needs --broker apache, whose data survives a restart "
            f"(got --broker {broker}: "
            + (
                "the embedded broker keeps its topics in memory, a restart would lose every "
                "event in flight)"
                if broker == "embedded"
                else "a broker this command does not run cannot be restarted by it)"
            ),
            code=EXIT_BAD_INPUT,
        )


# Past this many declarations the embedded broker's fetches have grown costly
# enough to move the figures: about 4 step outcomes a dossier over 6
# partitions, each fetch costing Tansu ~0.6 us per batch its partition holds
# (python -m brokers.fetch_cost: 1.1 ms a record empty, 14 ms at 20,000
# batches); at 50/s its CPU went 0.3 -> 0.8 of a core within 150 s.
EMBEDDED_DRIFT_DECLARATIONS = 5_000


def broker_note(scenario: Scenario, broker: str) -> str | None:
    """A word before a long replay on the embedded broker, whose fetches cost
    more as its topics grow: the latency it reports drifts upwards over the
    run, an effect of the broker rather than of the interconnection."""
    declarations = scenario.expected_declarations
    if broker != "embedded" or declarations <= EMBEDDED_DRIFT_DECLARATIONS:
        return None
    return (
        f"Note: about {declarations:,.0f} declarations on the embedded broker. It keeps every "
        "record in memory and each fetch costs it more as a partition grows "
        "(python -m brokers.fetch_cost), so latency drifts upwards over a run this long. "
        "For figures to quote, use --broker apache."
    )


def check_database(scenario: Scenario, scale: Scale | None, path: Path) -> None:
    """A database restart needs a server this command runs (`--store postgres`):
    SQLite files have no process to kill, and a given server is not ours."""
    store = scale.store if scale is not None else SQLITE
    if scenario.database_restarts and store != POSTGRES:
        raise CliError(
            f"{path}: database_restart: needs --store postgres, a PostgreSQL server this "
            f"command runs (got --store {redacted(store)}: "
            + (
                "SQLite files have no server to kill)"
                if store == SQLITE
                else "a server this command does not run cannot be restarted by it)"
            ),
            code=EXIT_BAD_INPUT,
        )


def check_external(scenario: Scenario, external: Mapping[str, str], path: Path) -> None:
    """An agency plugged in from elsewhere is not this command's to kill, stop
    or slow down: a scenario that would is refused before anything starts."""
    faults = [
        (kind, fault.agency)
        for kind, faults in (
            ("agency_kill", scenario.agency_kills),
            ("outage", scenario.outages),
            ("latency", scenario.latencies),
        )
        for fault in faults
        if fault.agency in external
    ]
    if faults:
        kind, name = faults[0]
        raise CliError(
            f"{path}: {kind}: {name} is plugged in with --agency ({external[name]}); this "
            "command cannot inject faults into a process it does not run",
            [f"leave them out with --without {kind}"]
            if kind != "latency"
            else ["use a scenario without latency on it"],
            code=EXIT_BAD_INPUT,
        )


def ensure_gateways(stack: Stack, count: int) -> list[str]:
    """Start gateways until `count` run; all share the first one's saga store
    (one SQLite file on one host, or the stack's PostgreSQL database: see
    ARCHITECTURE.md). Returns their names."""
    names = stack.gateway_names
    while len(names) < count:
        names.append(stack.add_gateway(database=stack.database(GATEWAY_KIND)))
    return names


def target_of(stack: Stack) -> engine.ReplayTarget:
    servers = stack.bootstrap_servers
    assert servers is not None
    gateways = tuple(c.address for c in stack.components.values() if c.is_gateway)
    return engine.ReplayTarget(
        gateway=stack.gateway_address,
        agencies=stack.agency_addresses,
        bootstrap_servers=servers,
        settled_topic=Topics.with_prefix(stack.topic_prefix).settled,
        databases={
            name: stack.database(name)
            for name in stack.agency_addresses
            if name not in stack.external
        },
        gateways=gateways,
    )


def _progress_bar(console: Console, planned: int) -> tuple[Progress, object]:
    bar = Progress(
        TextColumn("[bold]{task.fields[phase]}"),
        BarColumn(),
        TextColumn("sent {task.fields[sent]}/{task.total}"),
        TextColumn("ended {task.fields[settled]}"),
        TextColumn("in flight {task.fields[in_flight]}"),
        TextColumn("failed {task.fields[failed]}"),
        TimeElapsedColumn(),
        console=console,
        transient=True,
        disable=not console.is_terminal,
    )
    task = bar.add_task(
        "replay", total=planned, phase="seeding", sent=0, settled=0, in_flight=0, failed=0
    )
    return bar, task


def run_scenario(
    console: Console,
    scenario: Scenario,
    stack: Stack,
    *,
    show_progress: bool = True,
    web: WebConsole | None = None,
) -> engine.ReplayResult:
    """Prepare, seed and replay `scenario` against a started stack (with as
    many gateways as the scenario asks for), under the CLI's identity in the
    stack's PKI (seeding, submissions, the audit's reads); `web`: a console
    shown the replay's progress."""
    with channels.identity(stack.tls()):
        return _run_scenario(console, scenario, stack, show_progress=show_progress, web=web)


def _run_scenario(
    console: Console,
    scenario: Scenario,
    stack: Stack,
    *,
    show_progress: bool,
    web: WebConsole | None,
) -> engine.ReplayResult:
    gateways = ensure_gateways(stack, scenario.gateways)
    with console.status(f"Generating {scenario.population:,} citizens and their declarations…"):
        prepared = engine.prepare(scenario, vietnam_today(SystemClock()))
    target = target_of(stack)
    planned = len(prepared.plan.declarations)
    if web is not None:
        web.replay(
            replay_stats(
                scenario.name, phase="seeding", planned=planned, duration_s=scenario.duration_s
            )
        )
    with console.status(f"Seeding the registries ({scenario.population:,} citizens)…"):
        seeded = event_loop.run(engine.seed(target, prepared))
    if show_progress:
        console.print(
            f"Seeded {seeded[0]:,} records in {seeded[1]:.1f} s; replaying {planned:,} "
            f"declarations over {scenario.duration_s:g} s.",
            highlight=False,
        )
    bar, task = _progress_bar(console, planned)
    last_line = [0.0]

    def on_progress(progress: engine.Progress) -> None:
        if web is not None:
            web.replay(stats_of(scenario, progress))
        if not show_progress:
            return
        in_flight = progress.accepted - progress.settled
        bar.update(
            task,  # type: ignore[arg-type]
            completed=progress.sent,
            phase=progress.phase,
            sent=progress.sent,
            settled=progress.settled,
            in_flight=in_flight,
            failed=progress.failed,
        )
        # Off a terminal (CI, a log file): a plain line every 10 s instead.
        if show_progress and not console.is_terminal and progress.elapsed_s - last_line[0] >= 10:
            last_line[0] = progress.elapsed_s
            console.print(
                f"{progress.elapsed_s:6.0f} s {progress.phase}: sent {progress.sent}/"
                f"{progress.planned}, ended {progress.settled}, in flight {in_flight}, "
                f"failed {progress.failed}",
                highlight=False,
            )

    with bar if show_progress else _nothing(), MemorySampler(lambda: _pids(stack)) as memory:
        result = event_loop.run(
            engine.replay(
                scenario,
                prepared,
                target,
                StackFaults(stack, web.observe_fault if web is not None else None),
                on_progress=on_progress if show_progress or web is not None else None,
                seeded=seeded,
            )
        )
    result.memory_mb = memory.summary()
    executions = count_executions(read_executions(stack.log_file(name) for name in gateways))
    # No step line at all: the gateways logged at WARNING (not measured), not "none ran".
    result.executions = executions if executions.executions else None
    return result


def stats_of(scenario: Scenario, progress: engine.Progress) -> dict[str, Any]:
    """The console's ReplayStats from the replay's progress (cli/web/replay_stats.py)."""
    return replay_stats(
        scenario.name,
        phase=progress.phase,
        planned=progress.planned,
        sent=progress.sent,
        accepted=progress.accepted,
        settled=progress.settled,
        failed=progress.failed,
        elapsed_s=progress.elapsed_s,
        duration_s=progress.duration_s,
        recent_ends=progress.recent_ends,
    )


def _pids(stack: Stack) -> dict[str, int | None]:
    pids = {name: stack.pid(name) for name in stack.components}
    if stack.broker is not None and stack.broker.pid is not None:
        pids[f"kafka ({stack.broker_kind})"] = stack.broker.pid
    if stack.store.pid is not None:
        pids["postgres"] = stack.store.pid
    return pids | own_pid()


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def summary_table(result: engine.ReplayResult) -> Table:
    counts = result.counts
    latency = result.recorder.latency_ms()["end_to_end"]
    table = Table(title="Replay", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")

    def audited(count: int) -> str:
        # Against an agency plugged in from elsewhere some checks cannot be made.
        return f"{count:,}" + (" (not all checked)" if result.audit.not_checked else "")

    rows = [
        ("submitted", f"{counts.submitted:,}"),
        ("completed", f"{counts.completed:,}"),
        ("completed with refusals", f"{counts.completed_with_refusals:,}"),
        ("rejected", f"{counts.rejected:,}"),
        ("needs supplement", f"{counts.needs_supplement:,}"),
        ("unfinished", f"{counts.unfinished:,}"),
        ("lost (registries' records)", audited(counts.lost)),
        ("duplicated effects", audited(counts.duplicated_effects)),
        ("allowances of a wrong amount", audited(result.audit.wrong_amounts)),
        ("throughput", f"{counts.ended / result.wall_seconds:,.1f} dossiers/s"),
    ]
    for name in ("p50", "p95", "p99", "max"):
        value = latency.get(name)
        rows.append((f"end to end {name}", "-" if value is None else f"{value:,.0f} ms"))
    chaos = result.chaos()
    if result.gateways > 1 or result.faults:
        rows.append(("gateways", f"{result.gateways}"))
        executions = result.executions
        rows.append(
            (
                "steps run more than once",
                "not measured"
                if executions is None
                else f"{executions.steps_run_more_than_once:,}",
            )
        )
        rows.append(
            (
                "concurrent step executions",
                "not measured"
                if executions is None
                else f"{executions.concurrent_step_executions:,}",
            )
        )
        rows.append(("left RECEIVED", f"{chaos['left_received']:,}"))
        rows.append(("left in progress", f"{chaos['left_in_progress']:,}"))
        unknown = result.unfinished_states.get("UNKNOWN", 0)
        if unknown:
            rows.append(("left, no gateway answered", f"{unknown:,}"))
        for window, said in (("inside_outages", "inside"), ("outside_outages", "outside")):
            summary = result.latency_by_window.get(window, {})
            p50, p99 = summary.get("p50"), summary.get("p99")
            rows.append(
                (
                    f"end to end, sent {said} outages (p50/p99)",
                    "-" if p50 is None else f"{p50:,.0f} / {p99:,.0f} ms",
                )
            )
    # Each procedure's own result: "health_insurance_card: done 40, refused 4".
    for procedure, results in counts.procedures.items():
        said = ", ".join(
            f"{result.replace('_', ' ')} {n:,}" for result, n in sorted(results.items())
        )
        rows.append((procedure.replace("_", " "), said))
    for label, value in rows:
        table.add_row(label, value)
    return table


def faults_table(result: engine.ReplayResult) -> Table:
    """Each fault and its time to recover; gateway kills summed up in one row."""
    table = Table(title="Faults and time to recover", title_justify="left")
    for column in ("fault", "at", "back at", "recovered after"):
        table.add_column(column, justify="left" if column == "fault" else "right")

    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:,.1f} s"

    kills = [f for f in result.faults if f["kind"] == "gateway_kill"]
    for fault in result.faults:
        if fault["kind"] == "gateway_kill":
            continue
        recovery = fault["recovery_s"]
        table.add_row(
            f"{fault['kind']} {fault['target']}"
            + (f" ({fault['error']})" if fault["error"] else ""),
            seconds(fault["at_s"]),
            seconds(fault["restarted_s"]),
            "never" if recovery is None else seconds(recovery),
        )
    if kills:
        recovered = sorted(f["recovery_s"] for f in kills if f["recovery_s"] is not None)
        said = (
            f"median {recovered[len(recovered) // 2]:,.0f} s, max {recovered[-1]:,.0f} s"
            if recovered
            else "-"
        )
        never = len(kills) - len(recovered)
        table.add_row(
            f"gateway_kill × {len(kills)}",
            "",
            "",
            said + (f", {never} never" if never else ""),
        )
    return table


def memory_table(result: engine.ReplayResult) -> Table:
    table = Table(title="Memory (resident, MB)", title_justify="left")
    for column in MEMORY_HEADER:
        table.add_column(column, justify="left" if column == "process" else "right")
    for name, after_warm_up, end, peak, growth in memory_rows(result.memory_mb):
        table.add_row(
            str(name), f"{after_warm_up:,.0f}", f"{end:,.0f}", f"{peak:,.0f}", f"{growth:+,.0f}"
        )
    return table


def final_stats(scenario: Scenario, result: engine.ReplayResult, directory: Path) -> dict[str, Any]:
    """The last ReplayStats: everything ended, and what the audit found."""
    counts = result.counts
    recorder = result.recorder.latency_ms()["end_to_end"]
    stats = replay_stats(
        scenario.name,
        phase="done",
        planned=counts.submitted,
        sent=counts.submitted,
        accepted=counts.submitted,
        settled=counts.ended,
        elapsed_s=result.wall_seconds,
        duration_s=scenario.duration_s,
    )
    stats["latency_ms"] |= {name: recorder.get(name) for name in ("p50", "p95", "p99")}
    stats["latency_ms"]["window_s"] = round(result.wall_seconds, 1)  # the whole replay's
    stats["final"] = final_of(
        lost=counts.lost,
        duplicated=counts.duplicated_effects,
        completed=counts.completed,
        unexpected=sum(result.unexpected_outcomes.values()),
        report_dir=str(directory),
    )
    return stats


def write(directory: Path, scenario: Scenario, result: engine.ReplayResult) -> ReportPaths:
    return write_report(
        directory,
        scenario=scenario,
        counts=result.counts,
        recorder=result.recorder,
        started_at=result.started_at,
        wall_seconds=result.wall_seconds,
        extra={**result.extra(), "commit": checkout_commit()},
    )


def run_replay(
    console: Console,
    *,
    scenario_file: Path,
    rate: float | None,
    duration: float | None,
    broker: str,
    report_dir: Path | None,
    gateways: int | None = None,
    without: tuple[str, ...] = (),
    keep_stack: bool = False,
    external: Mapping[str, str] | None = None,
    insecure: bool = False,
    scale: Scale | None = None,
    console_port: int | None = None,
) -> int:
    """`console_port`: the web console's (0: a free port; None: no console)."""
    scenario = leave_out(
        load(scenario_file, rate=rate, duration=duration, gateways=gateways), without
    )
    check_broker(scenario, broker, scenario_file)
    check_external(scenario, external or {}, scenario_file)
    check_database(scenario, scale, scenario_file)
    note = broker_note(scenario, broker)
    if note is not None:
        console.print(note, style="yellow", highlight=False)
    directory = report_dir or Path("out") / scenario.name
    with fresh_stack(
        console,
        broker,
        verbose_children=False,
        gateway_env=GATEWAY_ENV,
        external=external,
        insecure=insecure,
        scale=scale,
    ) as stack:
        web = (
            start_console(console, stack, mode="replay", port=console_port)
            if console_port is not None
            else None
        )
        try:
            if web is not None:
                print_address(console, web.address)
            result = run_scenario(console, scenario, stack, web=web)
            if web is not None:
                web.replay(final_stats(scenario, result, directory))
        finally:
            if web is not None:
                web.stop()
        counts = result.counts
        wrong = result.audit.wrong_amounts
        concurrent = result.concurrent_step_executions
        healthy = (
            counts.lost == 0 and counts.duplicated_effects == 0 and counts.unfinished == 0
        ) and (wrong == 0 and concurrent == 0)
        stack.keep_data_dir = keep_stack or not healthy
        if stack.keep_data_dir:
            console.print(f"The stack's logs and databases stay in {escape(str(stack.data_dir))}")
    with console.status("Writing the report…"):
        paths = write(directory, scenario, result)
    console.print(summary_table(result))
    if result.faults:
        console.print(faults_table(result))
    console.print(memory_table(result))
    for what in result.audit.not_checked:
        console.print(f"Not checked: {escape(what)}", highlight=False)
    if result.unexpected_outcomes:
        console.print("Ended otherwise than planned:", highlight=False)
        for label, count in sorted(result.unexpected_outcomes.items()):
            console.print(f"  {count:,} × {escape(label)}", highlight=False)
    console.print(
        f"Report: {escape(str(paths.html))} (one file, opens offline), "
        f"{escape(str(paths.markdown))}, {escape(str(paths.json))} and "
        f"{len(paths.plots)} plots in {escape(str(directory))}",
        highlight=False,
    )
    if not healthy:
        raise CliError(
            f"{counts.lost} lost, {counts.duplicated_effects} duplicated effects, "
            f"{wrong} allowances of a wrong amount, {concurrent} concurrent step executions, "
            f"{counts.unfinished} unfinished dossiers",
            ["see the report and the kept stack logs"],
        )
    return 0
