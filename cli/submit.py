"""`lienthong submit birth|death FILE.json`: send one declaration to the gateway."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
from rich.console import Console
from rich.markup import escape

from cli.client import GatewayClient
from cli.declarations import DeclarationError, idempotency_key, read_declaration
from cli.errors import EXIT_BAD_INPUT, CliError, from_rpc


def run_submit(
    console: Console, *, kind: str, file: Path, gateway: str, key: str | None, as_json: bool
) -> int:
    try:
        declaration = read_declaration(file, kind)
    except DeclarationError as exc:
        raise CliError(exc.headline, [str(p) for p in exc.problems], code=EXIT_BAD_INPUT) from None
    # Without --key the key comes from the content: re-submitting the same
    # file (a retry after a timeout) returns the same dossier, never a second one.
    chosen_key = key or idempotency_key(kind, declaration)
    with GatewayClient(gateway) as client:
        try:
            dossier_id = client.submit(kind, declaration, chosen_key)
        except grpc.RpcError as error:
            raise from_rpc(error, what=f"submit the {kind} declaration", address=gateway) from None
    if as_json:
        console.print_json(json.dumps({"dossier_id": dossier_id, "idempotency_key": chosen_key}))
    else:
        where = escape(str(file))
        console.print(
            f"Submitted {kind} declaration {where}: dossier [bold]{escape(dossier_id)}[/]"
        )
        console.print(f"Follow it with: lienthong status {dossier_id} --watch", highlight=False)
    return 0
