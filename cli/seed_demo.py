"""`lienthong seed-demo`: load the example population into a running stack.

scenarios/examples/birth.json and death.json name a mother, a birth
certificate, a deceased pensioner and his death notice; the gateway's steps
refuse a declaration whose people or documents the registries do not know.
Seeding is idempotent: records already present are left as they were.
"""

from __future__ import annotations

from pathlib import Path

import grpc
from rich.console import Console

from cli.demo_data import EXAMPLE
from cli.errors import CliError
from cli.probe import check
from cli.rpc_errors import describe
from cli.seeding import seed
from cli.state import StackState, default_data_dir, read_state


def run_seed_demo(console: Console, *, data_dir: Path | None) -> int:
    recorded = read_state(data_dir or default_data_dir())
    candidates = [s for s in (recorded, StackState.defaults()) if s is not None]
    state = next((s for s in candidates if check(s.agencies["population"], timeout=1.0)), None)
    if state is None:
        raise CliError(
            "no running stack answers (looked at stack.json and the default ports)",
            ["start one with `lienthong up` first"],
        )
    try:
        counts = seed(state.agencies, EXAMPLE)
    except grpc.RpcError as error:
        failure = describe(error)
        raise CliError(
            f"seeding failed: {failure.code.name}: {failure.message}",
            [f"{field}: {text}" for field, text in failure.field_violations],
        ) from None
    console.print(
        f"Seeded the example population into {', '.join(state.agencies.values())}. "
        f"Added households: {counts.households}, citizens: {counts.citizens}, "
        f"facilities: {counts.facilities}, birth certificates: {counts.birth_certificates}, "
        f"death notices: {counts.death_notices}, participants: {counts.participants} "
        "(0: already there).",
        highlight=False,
    )
    console.print("Now: lienthong submit birth scenarios/examples/birth.json", highlight=False)
    return 0
