"""`lienthong status DOSSIER_ID [--watch]`: a dossier's state, timeline and result."""

from __future__ import annotations

import grpc
from google.protobuf import json_format
from rich.console import Console
from rich.live import Live
from rich.markup import escape

from cli.client import GatewayClient
from cli.errors import from_rpc
from cli.render import TERMINAL_STATES, dossier_view, result_lines, timeline_table
from lienthong.gateway.v1 import gateway_pb2 as gw


def run_status(
    console: Console, *, dossier_id: str, gateway: str, watch: bool, as_json: bool
) -> int:
    with GatewayClient(gateway) as client:
        try:
            dossier = client.get(dossier_id)
            if watch and dossier.state not in TERMINAL_STATES:
                dossier = _watch(console, client, dossier, as_json=as_json)
        except grpc.RpcError as error:
            raise from_rpc(error, what=f"read dossier {dossier_id}", address=gateway) from None
    if as_json:
        console.print_json(json_format.MessageToJson(dossier, preserving_proto_field_name=True))
    else:
        console.print(timeline_table(dossier))
        for line in result_lines(dossier):
            # soft_wrap: the terminal wraps long lines; piped output keeps them whole.
            console.print(escape(line), highlight=False, soft_wrap=True)
    # Like a test runner: the exit code tells a script whether it went through
    # (a dossier completed with refusals did not go through in full).
    refused = (gw.DOSSIER_STATE_REJECTED, gw.DOSSIER_STATE_COMPLETED_WITH_REFUSALS)
    return 1 if dossier.state in refused else 0


def _watch(
    console: Console, client: GatewayClient, first: gw.Dossier, *, as_json: bool
) -> gw.Dossier:
    latest = first
    stream = client.watch(first.dossier_id)
    try:
        if as_json or not console.is_terminal:
            # No live redraw off a terminal: the final state is printed by the caller.
            for latest in stream:  # noqa: B007 - the last one is the answer
                pass
            return latest
        # transient: the final view is printed once, below, like the non-live path.
        with Live(dossier_view(first), console=console, transient=True) as live:
            for latest in stream:
                live.update(dossier_view(latest))
        return latest
    finally:
        stream.cancel()
