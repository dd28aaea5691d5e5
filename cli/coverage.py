"""`lienthong coverage PERSONAL_ID [--on DATE]`: a hospital's insurance lookup.

About 13,000 medical facilities accept the chip-based citizen ID card in
place of the health insurance card (163.98 million uses in 2024): the
hospital asks social security (CheckCoverage) whether the person holds a
card valid on the day of care, and learns its group, benefit level and
initial facility, or why not. This command acts as that hospital against the
running stack's insurance registry; `lienthong demo` makes the same lookup
for the newborn, in the same words.

Exit 0 when the registry answered (covered or not, a person it has no record
of included), 1 when it could not be reached or refused, 2 on bad input.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import grpc
from google.protobuf import json_format
from rich.console import Console
from rich.markup import escape

from cli.errors import CliError, from_rpc
from cli.rpc_errors import describe
from cli.state import agency_address
from cli.trust import identity_beside
from common.channels import TlsSettings, sync_channel
from lienthong.insurance.v1 import insurance_pb2 as ins
from lienthong.insurance.v1 import insurance_pb2_grpc as ins_grpc

CALL_TIMEOUT_SECONDS = 10.0
# The beneficiary groups the simulator issues, in words (Decision 1351/QD-BHXH).
GROUP_WORDS = {"TE": "a child under 6, paid by the State"}


def hospital_channel(address: str) -> grpc.Channel:
    """The channel a hospital opens to the insurance registry: the one place
    that decides how the hospital identifies itself (its certificate, once
    the registries speak mutual TLS)."""
    tls = TlsSettings.from_env()
    if tls is None:  # plain text: the CLI was told so (--insecure, an insecure stack)
        return sync_channel(address)
    # The hospital's own certificate, beside the CLI's in the stack's PKI: the
    # access policy grants CheckCoverage to the hospital alone.
    return sync_channel(address, tls=identity_beside(tls, "hospital") or tls)


def lookup(address: str, personal_id: str, on: dt.date | None = None) -> ins.CheckCoverageResponse:
    """Ask the registry at `address`; raises grpc.RpcError as the call failed."""
    request = ins.CheckCoverageRequest(
        personal_id_number=personal_id, on_date=on.isoformat() if on is not None else ""
    )
    with hospital_channel(address) as channel:
        reply: ins.CheckCoverageResponse = ins_grpc.InsuranceRegistryServiceStub(
            channel
        ).CheckCoverage(request, timeout=CALL_TIMEOUT_SECONDS)
    return reply


def _why_not(reply: ins.CheckCoverageResponse) -> str:
    card = reply.card
    if reply.not_covered_reason == ins.NOT_COVERED_REASON_NO_CARD:
        return "insured, but holds no health insurance card"
    if reply.not_covered_reason == ins.NOT_COVERED_REASON_CARD_NOT_YET_VALID:
        return f"the card is valid only from {card.valid_from}"
    if reply.not_covered_reason == ins.NOT_COVERED_REASON_CARD_EXPIRED:
        return f"the card expired after {card.valid_to}"
    if reply.not_covered_reason == ins.NOT_COVERED_REASON_CARD_ENDED:
        return f"the card ended with the holder's death on {card.ended_on}"
    # A reason added to the contract after this CLI was built.
    return f"reason {reply.not_covered_reason}"


def _card_words(card: ins.HealthInsuranceCard) -> str:
    group = card.beneficiary_group
    described = f"{group} ({GROUP_WORDS[group]})" if group in GROUP_WORDS else group
    return (
        f"card {card.card_code or card.social_insurance_number}, group {described}, "
        f"benefit level {card.benefit_level}, initial facility {card.initial_facility_code}, "
        f"valid from {card.valid_from} to {card.valid_to}"
    )


def summary(reply: ins.CheckCoverageResponse) -> str:
    """The answer in words: "covered on 2025-09-15: card TE101…, group TE …"."""
    if reply.covered:
        return f"covered on {reply.on_date}: {_card_words(reply.card)}"
    words = f"not covered on {reply.on_date}: {_why_not(reply)}"
    if reply.HasField("card"):
        words += f" ({_card_words(reply.card)})"
    return words


PARTICIPANT_NOT_FOUND = "PARTICIPANT_NOT_FOUND"
NOT_FOUND_WORDS = "not covered: social security has no record of this personal ID number"


def run_coverage(
    console: Console,
    *,
    personal_id: str,
    on: dt.date | None,
    target: str | None,
    data_dir: Path | None,
    as_json: bool,
) -> int:
    address = agency_address("insurance", target, data_dir)
    try:
        reply = lookup(address, personal_id, on)
    except grpc.RpcError as error:
        failure = describe(error)
        if (failure.code, failure.reason) == (grpc.StatusCode.NOT_FOUND, PARTICIPANT_NOT_FOUND):
            # An answer too: the person is not insured at all.
            if as_json:
                console.print_json(
                    json.dumps(
                        {
                            "personal_id_number": personal_id,
                            "participant_found": False,
                            "covered": False,
                        }
                    )
                )
            else:
                console.print(f"{escape(personal_id)}: {NOT_FOUND_WORDS}.", highlight=False)
            return 0
        if failure.unreachable:
            raise CliError(
                f"cannot reach the insurance registry at {address} ({failure.code.name})",
                ["is a stack running? Start one with `lienthong up`, or pass --target HOST:PORT"],
            ) from None
        raise from_rpc(error, what="look up the coverage", address=address) from None
    if as_json:
        answer = json.loads(
            json_format.MessageToJson(
                reply, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
            )
        )
        console.print_json(
            json.dumps({"personal_id_number": personal_id, "participant_found": True, **answer})
        )
    else:
        # soft_wrap: the terminal wraps the long line; piped output keeps it whole.
        console.print(
            f"{escape(personal_id)}: {escape(summary(reply))}.", highlight=False, soft_wrap=True
        )
    return 0
