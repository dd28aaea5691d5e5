"""Parsing a scenario YAML file into a Scenario (format: scenarios/README.md)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import yaml

from scenarios.faults import FAULT_KINDS
from scenarios.scenario import (
    AGENCIES,
    BIRTHS_SHARE,
    DRAIN_TIMEOUT_S,
    FUNERAL_CLAIM_SHARE,
    ROUND_ROBIN,
    AddedLatency,
    AgencyKill,
    AgencyOutage,
    BrokerRestart,
    DatabaseRestart,
    GatewayKill,
    Phase,
    Scenario,
    gateway_names,
)
from scenarios.scenario_fields import Fields, ScenarioError, check_number

MONTHS = 12
_TOP_KEYS = (
    "name",
    "description",
    "seed",
    "population",
    "mix",
    "faults",
    "arrival",
    "year",
    "outages",
    "added_latency",
    "drain_timeout_s",
    "gateways",
    "gateway_kill",
    "agency_kill",
    "broker_restart",
    "database_restart",
)
# More gateway processes than this on one machine only measure the machine.
MAX_GATEWAYS = 8


def parse_scenario(path: Path) -> Scenario:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as error:
        raise ScenarioError(path, "", f"cannot read the file ({error.strerror or error})") from None
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise ScenarioError(path, "", f"not valid YAML{line}: {error}") from None
    top = Fields(path, "", document)
    # Unknown keys first: `arival:` should read "unknown field", not "arrival is required".
    top.expect(*_TOP_KEYS)
    top.reject_unknown()

    name = top.text("name", default=path.stem)
    description = top.text("description", default="")
    seed = top.integer("seed")
    population = top.integer("population", minimum=1)
    mix = top.mapping("mix") or Fields(path, "mix", {})
    mix.expect("births", "funeral_claims")
    mix.reject_unknown()
    year = top.mapping("year")
    if year is not None:
        arrival, births_share = _year(top, year, mix)
    else:
        arrival = _arrival(top)
        births_share = mix.number("births", BIRTHS_SHARE, maximum=1.0)
    funeral = mix.number("funeral_claims", FUNERAL_CLAIM_SHARE, maximum=1.0)
    faults = _faults(top)
    duration = sum(phase.duration_s for phase in arrival)
    outages = _windows(top, "outages", duration, latency=False)
    latencies = _windows(top, "added_latency", duration, latency=True)
    drain = top.number("drain_timeout_s", DRAIN_TIMEOUT_S, above_minimum=True)
    gateways = top.integer("gateways", 1, minimum=1)
    if gateways > MAX_GATEWAYS:
        raise top.error("gateways", f"must be at most {MAX_GATEWAYS}, got {gateways}")
    kills = _windows(top, "agency_kill", duration, latency=False)
    # An outage and a kill both stop the agency's process: they must not overlap.
    _no_overlap(
        top,
        [("outages", i, o) for i, o in enumerate(outages)]
        + [("agency_kill", i, k) for i, k in enumerate(kills)],
    )
    return Scenario(
        name=name,
        description=description,
        seed=seed,
        population=population,
        births_share=births_share,
        funeral_claim_share=funeral,
        faults=faults,
        arrival=arrival,
        outages=tuple(o for o in outages if isinstance(o, AgencyOutage)),
        latencies=tuple(a for a in latencies if isinstance(a, AddedLatency)),
        drain_timeout_s=drain,
        gateways=gateways,
        gateway_kills=_gateway_kills(top, duration, gateways),
        agency_kills=tuple(AgencyKill(k.agency, k.at_s, k.duration_s) for k in kills),
        broker_restarts=tuple(
            BrokerRestart(at, down) for at, down in _restarts(top, "broker_restart", duration)
        ),
        database_restarts=tuple(
            DatabaseRestart(at, down) for at, down in _restarts(top, "database_restart", duration)
        ),
    )


def _arrival(top: Fields) -> tuple[Phase, ...]:
    if not top.has("arrival"):
        raise top.error("arrival", "is required: a list of phases (or give `year` instead)")
    phases: list[Phase] = []
    for item in top.items("arrival"):
        item.expect("duration_s", "rate", "rate_from", "rate_to")
        item.reject_unknown()
        duration = item.number("duration_s", above_minimum=True)
        if item.has("rate"):
            for key in ("rate_from", "rate_to"):
                if item.has(key):
                    raise item.error(key, "give either `rate` (flat) or `rate_from`/`rate_to`")
            rate_from = rate_to = item.number("rate")
        else:
            if not item.has("rate_from"):
                raise item.error("rate", "is required (or `rate_from` and `rate_to` for a ramp)")
            rate_from = item.number("rate_from")
            rate_to = item.number("rate_to", rate_from)
        phases.append(Phase(duration, rate_from, rate_to))
    if not phases or sum(phase.expected for phase in phases) <= 0:
        raise top.error("arrival", "sends nothing: give at least one phase with a rate above 0")
    return tuple(phases)


def _year(top: Fields, year: Fields, mix: Fields) -> tuple[tuple[Phase, ...], float]:
    """A year of registrations, sampled and compressed into `replay_in_s` seconds."""
    if top.has("arrival"):
        raise top.error("arrival", "cannot be given together with `year`: pick one")
    if mix.has("births"):
        raise mix.error("births", "cannot be given with `year`: it comes from year.births/deaths")
    year.expect("births", "deaths", "sample", "replay_in_s", "monthly_weights")
    year.reject_unknown()
    births = year.number("births")
    deaths = year.number("deaths")
    if births + deaths <= 0:
        raise year.error("deaths", "births and deaths are both 0: the year sends nothing")
    sample = year.number("sample", maximum=1.0, above_minimum=True)
    replay_in = year.number("replay_in_s", above_minimum=True)
    weights = [1.0] * MONTHS
    if year.has("monthly_weights"):
        weights = year.numbers("monthly_weights", length=MONTHS)
        if sum(weights) <= 0:
            raise year.error("monthly_weights", "are all 0: the year sends nothing")
    month_s = replay_in / MONTHS
    total = (births + deaths) * sample
    phases = tuple(Phase(month_s, total * w / sum(weights) / month_s) for w in weights)
    return phases, births / (births + deaths)


def _faults(top: Fields) -> dict[str, float]:
    section = top.mapping("faults")
    if section is None:
        return {}
    faults: dict[str, float] = {}
    for key in list(section.data):
        if key not in FAULT_KINDS:
            raise section.error(str(key), f"unknown fault (known: {', '.join(FAULT_KINDS)})")
        faults[key] = section.number(key, maximum=1.0)
    # The same rule as the generator's (scenarios/fault_shares.py): a declaration
    # carries at most one fault, so the shares together cannot exceed 1.
    total = sum(faults.values())
    if total > 1.0 + 1e-9:
        raise top.error("faults", f"the shares add up to {total:g}; they must not exceed 1")
    return faults


def _windows(
    top: Fields, key: str, duration: float, *, latency: bool
) -> list[AgencyOutage | AddedLatency]:
    windows: list[AgencyOutage | AddedLatency] = []
    for item in top.items(key):
        item.expect("agency", "at_s", "duration_s", *(("latency_ms",) if latency else ()))
        item.reject_unknown()
        agency = item.text("agency")
        if agency not in AGENCIES:
            raise item.error("agency", f"unknown agency {agency!r} (known: {', '.join(AGENCIES)})")
        at = item.number("at_s")
        if at >= duration:
            raise item.error("at_s", f"starts at {at:g} s, after the arrival ends ({duration:g} s)")
        length = item.number("duration_s", above_minimum=True)
        if latency:
            extra = item.number("latency_ms", maximum=3_600_000, above_minimum=True)
            windows.append(AddedLatency(agency, at, length, extra))
        else:
            windows.append(AgencyOutage(agency, at, length))
    _no_overlap(top, [(key, i, w) for i, w in enumerate(windows)])
    return windows


def _no_overlap(top: Fields, windows: list[tuple[str, int, AgencyOutage | AddedLatency]]) -> None:
    for (key_a, i, a), (key_b, j, b) in itertools.combinations(windows, 2):
        if a.agency == b.agency and a.at_s < b.end_s and b.at_s < a.end_s:
            how = "merge the two" if key_a == key_b else "the agency cannot be stopped twice"
            raise ScenarioError(
                top.file, f"{key_b}[{j}]", f"overlaps {key_a}[{i}] for {a.agency}: {how}"
            )


def _restarts(top: Fields, key: str, duration: float) -> list[tuple[float, float]]:
    """A process of the stack's own (the broker, the database server) killed
    at `at_s` and started again `duration_s` later: (at, down) each."""
    restarts: list[tuple[float, float]] = []
    for item in top.items(key):
        item.expect("at_s", "duration_s")
        item.reject_unknown()
        at = item.number("at_s")
        if at >= duration:
            raise item.error("at_s", f"starts at {at:g} s, after the arrival ends ({duration:g} s)")
        down = item.number("duration_s", above_minimum=True)
        restarts.append((at, down))
    for (i, a), (j, b) in itertools.combinations(enumerate(restarts), 2):
        if a[0] < b[0] + b[1] and b[0] < a[0] + a[1]:
            raise ScenarioError(top.file, f"{key}[{j}]", f"overlaps {key}[{i}]")
    return restarts


def _gateway_kills(top: Fields, duration: float, gateways: int) -> tuple[GatewayKill, ...]:
    names = gateway_names(gateways)
    kills: list[GatewayKill] = []
    for item in top.items("gateway_kill"):
        item.expect("every_s", "restart_after_s", "gateway", "from_s", "until_s")
        item.reject_unknown()
        every = item.number("every_s", above_minimum=True)
        low, high = _restart_after(item)
        if high >= every:
            raise item.error(
                "restart_after_s",
                f"must be shorter than every_s ({every:g} s): the gateway is started again "
                f"before the next kill, got {high:g}",
            )
        gateway = item.text("gateway", default=ROUND_ROBIN)
        if gateway != ROUND_ROBIN and gateway not in names:
            raise item.error(
                "gateway",
                f"unknown gateway {gateway!r} (this scenario runs {', '.join(names)}; "
                f"or {ROUND_ROBIN})",
            )
        start = item.number("from_s", every)
        if start >= duration:
            raise item.error(
                "from_s", f"starts at {start:g} s, after the arrival ends ({duration:g} s)"
            )
        until = item.number("until_s", duration, maximum=duration)
        if until <= start:
            raise item.error("until_s", f"must be after from_s ({start:g} s), got {until:g}")
        kills.append(GatewayKill(every, low, high, gateway, start, until))
    for (i, a), (j, b) in itertools.combinations(enumerate(kills), 2):
        same = ROUND_ROBIN in (a.gateway, b.gateway) or a.gateway == b.gateway
        if same and a.from_s < b.until_s and b.from_s < a.until_s:
            raise ScenarioError(
                top.file, f"gateway_kill[{j}]", f"overlaps gateway_kill[{i}]: merge the two"
            )
    return tuple(kills)


def _restart_after(item: Fields) -> tuple[float, float]:
    """`restart_after_s`: one delay, or [shortest, longest] for a seeded random one."""
    raw = item.raw("restart_after_s")
    if isinstance(raw, list):
        if len(raw) != 2:
            raise item.error(
                "restart_after_s", f"expected a number or [shortest, longest], got {len(raw)} items"
            )
        low, high = (
            check_number(
                item.file,
                f"{item.where('restart_after_s')}[{i}]",
                v,
                0.0,
                math.inf,
                above_minimum=True,
            )
            for i, v in enumerate(raw)
        )
        if high < low:
            raise item.error(
                "restart_after_s",
                f"the longest ({high:g} s) is shorter than the shortest ({low:g} s)",
            )
        return low, high
    delay = item.number("restart_after_s", above_minimum=True)
    return delay, delay
