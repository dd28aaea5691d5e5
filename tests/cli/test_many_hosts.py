"""Many hosts, shown (issue 13): three gateway processes and two replicas of
each registry, each process in a directory of its own as if on a host of its
own, sharing only Kafka and PostgreSQL; a replay of a few hundred
declarations during which one gateway and one registry replica are SIGKILLed
(both started again: the gateway after 1 s, the replica after 8 s, while
its twin carries the calls); then the audit of the registries' own records:
nothing lost, no effect twice.

The oracles are outside the code under test: which files each process holds
open is read from /proc (no two processes share one); what the registries
recorded is read from their PostgreSQL databases by the replay's audit,
against the plan the scenario generated; who answered calls is each
process's own Prometheus counter, scraped over HTTP.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest

from cli.render import make_console
from cli.replay import GATEWAY_ENV, run_scenario
from cli.scale_figures import measure, scrape
from cli.stack import Stack
from common.agencies import AGENCY_NAMES
from databases.postgres import PostgresServer
from scenarios.scenario import load_scenario
from tests.gateway.test_end_to_end import broker_kind

GATEWAYS = 3
REPLICAS = 2
# ~240 declarations at 8/s: enough to cross both kills with work in flight
# on every partition, small enough for the two cores this runs on.
SCENARIO = """
name: many-hosts
seed: 1313
population: 3000
gateways: 3
faults: {}
arrival:
  - {duration_s: 30, rate: 8}
gateway_kill:
  - {every_s: 30, restart_after_s: 1, gateway: gateway-2, from_s: 9, until_s: 10}
agency_kill:
  - {agency: population, at_s: 14, duration_s: 8}
drain_timeout_s: 60
"""

_prefixes = itertools.count(1)


def open_files(pid: int) -> set[str]:
    """The regular files (and directories) a process holds open, by real path."""
    found = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(fd_dir / fd)
        except OSError:
            continue  # closed meanwhile
        # Sockets, pipes, anonymous inodes and devices are not files on a disk.
        if target.startswith("/") and not target.startswith(("/dev/", "/proc/")):
            found.add(os.path.realpath(target))
    return found


def files_of_every_process(stack: Stack) -> dict[str, set[str]]:
    files = {}
    for name in stack.component_names():
        pid = stack.pid(name)
        assert pid is not None, f"{name} is not running"
        files[name] = open_files(pid)
    return files


@pytest.mark.kafka
@pytest.mark.slow
@pytest.mark.timeout(240)
def test_three_gateways_and_two_replicas_each_share_nothing_but_kafka_and_postgres(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    scenario_file = tmp_path / "many-hosts.yaml"
    scenario_file.write_text(SCENARIO)
    scenario = load_scenario(scenario_file)
    # A server we do not own (the test session's): the stack creates its
    # databases there under a prefix of its own.
    prefix = f"hosts{os.getpid()}x{next(_prefixes)}"
    with Stack(
        broker=broker_kind(),
        data_dir=tmp_path / "stack",
        store=postgres_server.url("postgres"),
        gateways=GATEWAYS,
        replicas=REPLICAS,
        separate_hosts=True,
        topic_prefix=prefix,
        verbose_children=False,
        gateway_env=GATEWAY_ENV,
    ) as stack:
        names = stack.component_names()
        assert sorted(names) == sorted(
            ["gateway", "gateway-2", "gateway-3"]
            + [f"{a}{s}" for a in AGENCY_NAMES for s in ("", "-2")]
        )
        # Each process's own directory, and no file open in two processes.
        homes = {name: stack.home(name) for name in names}
        assert len(set(homes.values())) == len(names)
        before = files_of_every_process(stack)
        for name, files in before.items():
            inside = [f for f in files if f.startswith(str(tmp_path))]
            assert inside, f"{name} holds no file of its own: {sorted(files)}"
            outside = [f for f in inside if not f.startswith(str(homes[name]) + "/")]
            assert not outside, f"{name} holds files outside its own directory: {outside}"
        for (a, files_a), (b, files_b) in itertools.combinations(before.items(), 2):
            assert not files_a & files_b, f"{a} and {b} share {sorted(files_a & files_b)}"

        result = run_scenario(make_console(), scenario, stack, show_progress=False)
        figures = measure(stack, result.wall_seconds)
        # Each replica says which one it is in its metrics.
        for name in ("population-2", "gateway-3"):
            about = scrape(stack.metrics_addresses[name])["lienthong_process_info"]
            assert [labels["process"] for labels, _ in about] == [name]
        after = files_of_every_process(stack)
        for (a, files_a), (b, files_b) in itertools.combinations(after.items(), 2):
            assert not files_a & files_b, f"{a} and {b} share {sorted(files_a & files_b)}"

    counts = result.counts
    # Every effect once: nothing lost, nothing twice, every dossier ended as planned.
    assert counts.submitted >= 200
    assert (counts.lost, counts.duplicated_effects, counts.unfinished) == (0, 0, 0)
    assert result.audit.checked >= 200 and not result.audit.not_checked
    assert result.audit.wrong_amounts == 0 and result.audit.unexpected_effects == 0
    assert not result.unexpected_outcomes, result.unexpected_outcomes
    assert result.concurrent_step_executions == 0

    kill, replica = result.faults
    assert (kill["kind"], kill["target"]) == ("gateway_kill", "gateway-2")
    assert (replica["kind"], replica["target"]) == ("agency_kill", "population")
    for fault in (kill, replica):
        assert fault["error"] is None
        assert fault["planned_at_s"] <= fault["at_s"] < fault["restarted_s"]

    # All three gateways ran steps; so did the one killed, after its restart.
    assert result.executions is not None
    assert result.executions.processes == GATEWAYS + 1
    assert all(steps > 0 for steps in figures.steps_by_gateway.values())
    # Both replicas of every registry answered the gateways' calls.
    assert set(figures.calls_by_replica) == {f"{a}{s}" for a in AGENCY_NAMES for s in ("", "-2")}
    assert all(calls > 0 for calls in figures.calls_by_replica.values()), figures
