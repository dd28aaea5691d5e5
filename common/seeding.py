"""Client-streaming bulk loads, shared by the three registries.

A seed stream is a sequence of batches (thousands of records per message, so
gRPC's per-message cost does not dominate). Every batch is checked as it
arrives; rows are written only once the stream has ended, in one transaction,
so a bad record anywhere leaves nothing half-loaded.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from google.protobuf.message import Message

from common.rpc import validate_message

BatchT = TypeVar("BatchT", bound=Message)
RowsT = TypeVar("RowsT")


async def read_batches(
    batches: AsyncIterator[BatchT], to_rows: Callable[[BatchT, int], RowsT]
) -> list[RowsT]:
    """Validate each batch (errors name `batch[N].field`) and convert it to rows."""
    converted: list[RowsT] = []
    index = 0
    async for batch in batches:
        validate_message(batch, prefix=f"batch[{index}]")
        converted.append(to_rows(batch, index))
        index += 1
    return converted
