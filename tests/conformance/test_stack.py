"""Our four services as real processes (`Stack`: the three registries, the
gateway, the embedded Kafka broker) each pass their contract's whole kit."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from cli.stack import Stack
from conformance.contracts import CONTRACTS
from conformance.runner import run
from tests.conformance.variants import failed

pytestmark = [pytest.mark.kafka, pytest.mark.slow, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack(broker="embedded") as running:
        yield running


@pytest.mark.parametrize("contract", sorted(CONTRACTS))
async def test_our_process_passes_every_rule(stack: Stack, contract: str) -> None:
    kit = stack.tls("conformance")
    assert kit is not None
    verdicts = await run(
        stack.address(contract), CONTRACTS[contract].rules, credentials=kit.channel_credentials()
    )
    assert failed(verdicts) == {}
    assert len(verdicts) == len(CONTRACTS[contract].rules)
