"""What a command reports when it cannot do its job, and with which exit code.

Commands raise CliError; main() prints it to stderr and exits with its code:
1 when something failed (a dossier rejected, nobody answering), 2 when the
input was wrong (a bad declaration file, a refused argument), the same code
argparse uses for a bad command line.
"""

from __future__ import annotations

import grpc

from cli.rpc_errors import describe

EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


class CliError(Exception):
    def __init__(self, headline: str, details: list[str] | None = None, *, code: int = EXIT_FAILED):
        super().__init__(headline)
        self.headline = headline
        self.details = details or []
        self.code = code


def from_rpc(error: grpc.RpcError, *, what: str, address: str) -> CliError:
    """A failed call to `address` while doing `what`, in words."""
    failure = describe(error)
    if failure.unreachable:
        return CliError(
            f"cannot reach {address} while trying to {what} ({failure.code.name})",
            ["is a stack running? Start one with `lienthong up`, or pass --gateway HOST:PORT"],
        )
    if failure.code == grpc.StatusCode.INVALID_ARGUMENT:
        details = [f"{field}: {description}" for field, description in failure.field_violations]
        return CliError(
            f"refused to {what}: {failure.message}" if not details else f"refused to {what}:",
            details,
            code=EXIT_BAD_INPUT,
        )
    reason = f" [{failure.reason}]" if failure.reason else ""
    return CliError(f"could not {what}: {failure.code.name}: {failure.message}{reason}")
